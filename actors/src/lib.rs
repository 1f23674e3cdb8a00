//! podium's engine crate: every actor and the domain they need.
//!
//! Map of the crate:
//! - [`engine`]: the supervisor; builds the actor tree from a [`config::Config`] and owns
//!   shutdown order.
//! - Actors, one per file: [`connection`] (one per WebSocket), [`connection_registry`]
//!   (global/per-IP/per-user counts), [`room_registry`] and [`room`] (boards and their
//!   coalesced diffs), [`results`] (anti-cheat and idempotency).
//! - Domain: [`protocol`] (wire messages), [`board`] (leaderboard order and diffs), [`auth`]
//!   (player JWTs and session tokens), [`error`] (client-facing codes), [`ids`] (newtypes),
//!   [`limits`] (rate windows), [`store`] (boards and idempotency marks: in memory or in
//!   Redis, [`redis_store`]),
//!   [`telemetry`] (metrics and logs, one function per event), [`config`].

pub mod auth;
pub mod board;
pub mod config;
pub mod connection;
pub mod connection_registry;
pub mod engine;
pub mod error;
pub mod ids;
pub mod limits;
pub mod persistence_batcher;
pub mod pg;
pub mod protocol;
pub mod redis_store;
pub mod results;
pub mod room;
pub mod room_registry;
pub mod store;
pub mod telemetry;
pub mod time;
