//! podium's integration tests: each starts a real server on an ephemeral port and drives it
//! with real WebSocket and HTTP clients. One test binary, one module per area.

mod common;

mod admin;
mod auth;
mod backup;
mod cluster;
mod compound;
mod connection;
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
