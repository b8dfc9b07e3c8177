//! The broker a server runs on: in memory by default; Redis when `redis` is configured
//! (`--redis URL`), which needs the cargo feature `redis`.

use std::io;
use std::sync::Arc;

use switchboard_hub::{Broker, MemoryBroker};

use crate::config::Config;

/// The broker `config` asks for, connected. A Redis server that cannot be reached now is
/// an error: a node that starts without its cluster would serve a split view.
pub async fn from_config(config: &Config) -> io::Result<Arc<dyn Broker>> {
    match &config.redis {
        None => Ok(Arc::new(MemoryBroker::with_limits(config.memory_limits()))),
        Some(url) => redis(url).await,
    }
}

#[cfg(feature = "redis")]
async fn redis(url: &str) -> io::Result<Arc<dyn Broker>> {
    use switchboard_redis::{RedisBroker, RedisOptions};
    match RedisBroker::connect(url, RedisOptions::default()).await {
        Ok(b) => Ok(Arc::new(b)),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("--redis: cannot use Redis ({e}); check that it runs and the URL is right"),
        )),
    }
}

#[cfg(not(feature = "redis"))]
async fn redis(_url: &str) -> io::Result<Arc<dyn Broker>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--redis: this build has no Redis support; build with \
         `cargo build --release -p switchboard-server --features redis`, \
         or run without --redis for the in-memory broker",
    ))
}
