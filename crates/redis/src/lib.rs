//! The Redis broker of Switchboard: channel logs (offsets, epochs, history), presence and
//! the live feed kept in a Redis server, so that several `switchboard serve` nodes behind
//! a load balancer act as one. Any node answers any poll or resume; a message published
//! on one node reaches the subscribers of every node.
//!
//! - [`RedisBroker`] implements the hub's [`switchboard_hub::Broker`] (module `broker`),
//!   on one Redis server or a Redis Cluster: the URL forms and the connections (module
//!   `connect`), the live feed's connection and push handler (module `feed`), what only
//!   a cluster needs: its primaries and health (module `cluster`), `/api/channels` on one
//!   server or every shard (module `channels`).
//! - Keys, entries and feed messages are pure functions (module `entry`); the log
//!   operations are Lua scripts, one atomic step each (module `scripts`).
//! - Presence of a node that dies expires through a heartbeat per node (module
//!   `presence`); cluster-wide commands such as disconnect travel on a reserved feed
//!   (module `control`).
//! - [`test_server`]: a throwaway `redis-server` for tests, here and in the server's.

mod broker;
mod calls;
mod channels;
mod cluster;
mod connect;
mod control;
mod entry;
mod feed;
mod presence;
mod scripts;
pub mod test_server;

pub use broker::{RedisBroker, RedisOptions};
