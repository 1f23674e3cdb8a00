//! podium's engine crate, in one-way layers: imports point down this list, never up.
//!
//! 1. [`domain`]: what podium means, with no I/O (no actix, Redis or PostgreSQL): ids, the
//!    client errors and their codes, the wire protocol, boards and diffs, campaign rules and
//!    refusal reasons, decisions, game sessions, player tokens, rate windows, the clock.
//! 2. [`config`] (the one config struct, its env table, validation) and [`telemetry`]
//!    (metrics and logs, one function per event): they import the domain only.
//! 3. [`store`]: where state lives. [`store::Store`] is the seam (memory, or Redis +
//!    PostgreSQL with the fallback inside) and the one place the engine kind is chosen; its
//!    shared [`store::counters`] hold socket places and message windows.
//! 4. The actors, one per file, which use all of the above:
//!
//! ```text
//! Engine (engine.rs: wiring and shutdown order)
//! ├── ConnectionRegistry   global / per-IP / per-user counts, kicks at shutdown
//! ├── RoomRegistry         creates a Room per campaign/board on first join
//! │   └── Room             members, top-N, one diff per tick, encoded once
//! ├── ResultsPipeline      one per core: anti-cheat checks, the decision in the Store
//! └── PersistenceBatcher   results stream -> PostgreSQL (redis engine)
//! Connection (connection/, one per WebSocket): auth, limits, parse -> route, outbound cap;
//!   given a Gateway (what it needs), and receiving the messages of connection/inbox.rs
//! ```
//!
//! The life of a score: `/ws` upgrades ([`connection::upgrade`]); `auth` checks the token and
//! the per-user cap; `join` makes the room send a snapshot; `start_game` signs a session;
//! `submit` goes to the socket's ResultsPipeline, which checks the rules and has the Store
//! decide once (mark, boards, results stream) before the client is answered; the
//! PersistenceBatcher writes the stream to PostgreSQL and acknowledges after commit; each
//! room's next tick sends the diff, on every instance (rooms poll their board's version).
//!
//! A message type lives with the actor that receives it; where a lower actor must name a
//! higher one's message (a Room pushing frames to Connections), the message sits in a file of
//! its own beside its receiver (`connection/inbox.rs`), so no import runs in a circle. The
//! `layers` test checks both rules.

pub mod cluster_bus;
pub mod config;
pub mod connection;
pub mod connection_registry;
pub mod domain;
pub mod engine;
pub mod persistence_batcher;
pub mod results;
pub mod room;
pub mod room_registry;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod layers;
