//! podium's integration tests: each starts a real server on an ephemeral port and drives it
//! with real WebSocket and HTTP clients. One test binary, one module per area.

// The future of `podium::start` nests the engine's whole start-up (the store's clients for a
// node, Sentinel or a cluster among it), deeper than the compiler's default layout limit.
#![recursion_limit = "256"]

mod common;

mod admin;
mod auth;
mod backup;
mod cluster;
mod compound;
mod connection;
mod counted;
mod failover;
mod faults;
mod games;
mod hostile;
mod http;
mod observe;
mod openapi;
mod persist;
mod public;
mod rooms;
mod store;
