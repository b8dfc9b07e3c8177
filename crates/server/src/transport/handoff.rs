//! [`Handoff`]: a value a response carries to whoever writes it — a streaming body's
//! source, or an accepted WebSocket — so that the writer (the connection front for the
//! connections it answers itself, hyper's service for the others) can take it and drive
//! it on the connection's own stream, instead of through a boxed body or hyper's upgrade
//! machinery. Whoever takes it first has it; the slot is empty afterwards.

use std::sync::{Arc, Mutex, PoisonError};

use axum::response::Response;

/// A slot holding one value until it is taken (a response extension, hence
/// `Clone + Sync`).
#[derive(Debug)]
pub struct Handoff<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for Handoff<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: Send + 'static> Handoff<T> {
    /// A slot holding `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(Mutex::new(Some(value))))
    }

    /// Takes the value, if it is still there.
    pub fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Puts this slot on `resp`, for [`Handoff::claim`].
    pub fn attach(self, resp: &mut Response) {
        resp.extensions_mut().insert(self);
    }

    /// Takes the value of the slot `resp` carries; `None` when it carries none of this
    /// type or the value was taken already.
    pub fn claim(resp: &mut Response) -> Option<T> {
        resp.extensions_mut().remove::<Self>()?.take()
    }
}
