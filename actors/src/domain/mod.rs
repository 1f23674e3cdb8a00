//! What podium means, with no I/O: no actor framework, no network, no database. Every other
//! layer imports this one; it imports nothing of podium's.

pub mod board;
pub mod campaign;
pub mod clock;
pub mod counting;
pub mod decision;
pub mod error;
pub mod fuzzing;
pub mod ids;
pub mod input_log;
pub mod operator;
pub mod protocol;
pub mod session;
pub mod token;
pub mod window;
