//! [`Encodings`]: the values one message caches, one per key type, each made at most once
//! and then shared by every reader. The cache does not know what the values are: the key
//! is a type chosen by the caller (see [`crate::message::Encoding`]).
//!
//! It is a list that only grows, each link a `OnceLock`. Each node holds its key's
//! `TypeId` beside the link to the next node, so a lookup walks the nodes made so far with
//! one atomic load and one comparison each, and no call; only the node found is downcast
//! (one call). A message has as many nodes as encodings it was sent in (usually one or
//! two), so the walk is short, and it allocates nothing. Adding a value sets the first
//! empty link to a new node, then makes the value in that node's own `OnceLock`: racing
//! readers of the same key wait for the one making it, and making one value may look up
//! (or add) another key, never its own.
//!
//! Costs: an empty cache is one link (24 bytes in the message, nothing on the heap); each
//! value adds one allocation, its node: the value in a `OnceLock`, its key and the next
//! link (40 bytes more than the value plus its `OnceLock` state, e.g. 80 bytes for a
//! `Bytes`).

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::OnceLock;

type Link = OnceLock<Box<Node<dyn Any + Send + Sync>>>;

/// One value; `value` is a `OnceLock<T>` whose type the key names (made unsized once
/// boxed, so nodes of every value type form one list).
struct Node<V: ?Sized> {
    key: TypeId,
    next: Link,
    value: V,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Encodings {
    head: Link,
}

impl Encodings {
    /// The value of key `K`, made by `init` if this is its first lookup. `init` must not
    /// look up `K` itself (that would wait for itself).
    pub(crate) fn get_or_init<K: 'static, T: Send + Sync + 'static>(
        &self,
        init: impl FnOnce() -> T,
    ) -> &T {
        // The key names the value type too, so a node with this key holds a `OnceLock<T>`.
        let key = TypeId::of::<(K, T)>();
        let mut link = &self.head;
        loop {
            let node = link.get_or_init(|| {
                Box::new(Node {
                    key,
                    next: OnceLock::new(),
                    value: OnceLock::<T>::new(),
                })
            });
            if node.key == key {
                if let Some(cell) = node.value.downcast_ref::<OnceLock<T>>() {
                    return cell.get_or_init(init);
                }
            }
            link = &node.next;
        }
    }

    /// What caching one value of type `T` adds besides the value's own heap bytes: its
    /// node.
    pub(crate) const fn node_size<T: Send + Sync + 'static>() -> usize {
        std::mem::size_of::<Node<OnceLock<T>>>()
    }

    /// How many values are cached.
    fn len(&self) -> usize {
        let mut n = 0;
        let mut link = &self.head;
        while let Some(node) = link.get() {
            n += 1;
            link = &node.next;
        }
        n
    }
}

impl fmt::Debug for Encodings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encodings")
            .field("cached", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    struct A;
    struct B;
    struct C;

    #[test]
    fn one_value_per_key_made_once() {
        let cache = Encodings::default();
        assert_eq!(cache.len(), 0);
        let calls = AtomicUsize::new(0);
        let make = |v: u32| {
            calls.fetch_add(1, Ordering::Relaxed);
            v
        };
        assert_eq!(*cache.get_or_init::<A, u32>(|| make(1)), 1);
        assert_eq!(
            *cache.get_or_init::<B, u32>(|| make(2)),
            2,
            "same type, other key"
        );
        assert_eq!(*cache.get_or_init::<A, u32>(|| make(3)), 1);
        assert_eq!(*cache.get_or_init::<B, u32>(|| make(4)), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 2);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_value_may_be_made_from_another() {
        let cache = Encodings::default();
        let outer = cache.get_or_init::<A, String>(|| {
            let inner = cache.get_or_init::<B, String>(|| "inner".into());
            format!("{inner}+outer")
        });
        assert_eq!(outer, "inner+outer");
        assert_eq!(cache.get_or_init::<B, String>(|| "again".into()), "inner");
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn racing_threads_share_one_value_per_key() {
        let cache = Encodings::default();
        let calls = AtomicUsize::new(0);
        let barrier = Barrier::new(6);
        std::thread::scope(|s| {
            for t in 0..6 {
                let (cache, calls, barrier) = (&cache, &calls, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let bytes = |v: &'static [u8]| {
                        calls.fetch_add(1, Ordering::Relaxed);
                        Bytes::from_static(v)
                    };
                    // Threads add the keys in different orders, so links race too.
                    for k in 0..3 {
                        match (t + k) % 3 {
                            0 => assert_eq!(&cache.get_or_init::<A, _>(|| bytes(b"a"))[..], b"a"),
                            1 => assert_eq!(&cache.get_or_init::<B, _>(|| bytes(b"b"))[..], b"b"),
                            _ => assert_eq!(&cache.get_or_init::<C, _>(|| bytes(b"c"))[..], b"c"),
                        }
                    }
                });
            }
        });
        assert_eq!(calls.load(Ordering::Relaxed), 3, "each value made once");
        assert_eq!(cache.len(), 3, "one node per key");
    }

    /// The costs the module docs state.
    #[test]
    fn costs() {
        assert_eq!(std::mem::size_of::<Encodings>(), 24);
        assert_eq!(std::mem::size_of::<Node<OnceLock<Bytes>>>(), 80);
        // A value of one pointer, such as a prepared WebSocket frame.
        assert_eq!(
            std::mem::size_of::<Node<OnceLock<std::sync::Arc<u8>>>>(),
            56
        );
    }
}
