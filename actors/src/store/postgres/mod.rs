//! The production engine's PostgreSQL half: the pool (`pool.rs`), the read replica
//! ([`replica`]), migrations ([`migrate`]) and every read and write of results ([`results`]).

pub mod migrate;
pub mod operators;
pub mod pool;
pub mod replica;
pub mod results;

pub use pool::pool;
