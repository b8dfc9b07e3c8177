//! Async Rust client for every Switchboard transport.
