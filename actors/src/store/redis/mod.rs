//! The production engine's Redis half: one shared client (`client.rs`) for one node, a
//! Sentinel-watched master or a cluster, the cluster's slots (`slots.rs`), and a file per concern:
//! boards and idempotency marks ([`boards`]), per-user socket places ([`presence`]), message
//! windows ([`windows`]), the results stream with its consumer group ([`stream`]), and the
//! cluster bus's channel and instance heartbeats ([`bus`]).

pub mod boards;
pub mod bus;
mod client;
pub mod presence;
mod slots;
pub mod stream;
pub mod windows;

pub use client::RedisStore;
pub use stream::StreamEntry;
