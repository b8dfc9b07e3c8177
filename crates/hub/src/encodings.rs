//! [`Encodings`]: the values one message caches, one per key type, each made at most once
//! and then shared by every reader. The cache does not know what the values are: the key
//! is a type chosen by the caller (see [`crate::message::Encoding`]).
//!
//! It is a list that only grows, each link a `OnceLock`. A lookup walks the links set so
//! far, one atomic load and one type check per link; a message has as many links as
//! formats it was sent in (usually one or two), so the walk is short and allocates
//! nothing. Adding a value sets the first empty link to a new node, then makes the value
//! in that node's own `OnceLock`: racing readers of the same key wait for the one making
//! it, and making one value may look up (or add) another key, never its own.
//!
//! Costs: an empty cache is one link (24 bytes in the message, nothing on the heap); each
//! value adds one allocation, its node: the value in a `OnceLock` and the next link
//! (24 bytes more than the value plus its `OnceLock` state, e.g. 64 bytes for a `Bytes`).

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::OnceLock;

type Link = OnceLock<Box<dyn Entry>>;

/// A node of any key and value type.
trait Entry: Any + Send + Sync {
    fn next(&self) -> &Link;
}

/// The value of key `K`; `K` is only a name (`fn() -> K` keeps the node `Send + Sync`
/// whatever `K` is).
struct Node<K, T> {
    value: OnceLock<T>,
    next: Link,
    key: PhantomData<fn() -> K>,
}

impl<K: 'static, T: Send + Sync + 'static> Entry for Node<K, T> {
    fn next(&self) -> &Link {
        &self.next
    }
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
        let mut link = &self.head;
        let node = loop {
            let entry: &dyn Entry = &**link.get_or_init(|| {
                Box::new(Node::<K, T> {
                    value: OnceLock::new(),
                    next: OnceLock::new(),
                    key: PhantomData,
                })
            });
            let any: &dyn Any = entry;
            if let Some(node) = any.downcast_ref::<Node<K, T>>() {
                break node;
            }
            link = entry.next();
        };
        node.value.get_or_init(init)
    }

    /// How many values are cached.
    fn len(&self) -> usize {
        let mut n = 0;
        let mut link = &self.head;
        while let Some(entry) = link.get() {
            n += 1;
            link = entry.next();
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
        assert_eq!(std::mem::size_of::<Node<A, Bytes>>(), 64);
    }
}
