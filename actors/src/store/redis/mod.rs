//! The production engine's Redis half: one shared client (`client.rs`) and a file per concern:
//! boards and idempotency marks ([`boards`]), per-user socket places ([`presence`]), message
//! windows ([`windows`]) and the results stream with its consumer group ([`stream`]).

pub mod boards;
mod client;
pub mod presence;
pub mod stream;
pub mod windows;

pub use client::RedisStore;
pub use stream::StreamEntry;
