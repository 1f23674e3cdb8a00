//! The Redis client every Redis-backed part shares: pools per thread, the key prefix, and one
//! way to run a command under the command timeout with its latency recorded.

use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::{Manager, Pool, Runtime, Timeouts};

use crate::config::RedisConfig;
use crate::store::error::StoreError;
use crate::telemetry;

/// One pool per thread that uses Redis. A connection's I/O task runs on the thread that
/// opened it, so a single shared pool would put every command of every connection actor
/// through whichever thread opened the connections first. Split this way, each HTTP worker
/// talks to Redis from its own thread, and the pools together never exceed
/// `REDIS_POOL_SIZE`.
struct ThreadPools {
    url: String,
    /// The pool settings every thread's pool is built with (its size is `per_thread`).
    pool: deadpool_redis::PoolConfig,
    /// redis-rs times out each reply itself (500 ms by default), under every timeout podium
    /// sets; it is set to the command timeout, so `REDIS_COMMAND_TIMEOUT` is the one that
    /// holds (and the batcher's blocking stream read may wait its whole interval).
    connection: redis::AsyncConnectionConfig,
    per_thread: usize,
    pools: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, Pool>>,
}

impl ThreadPools {
    fn get(&self) -> Result<Pool, StoreError> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&std::thread::current().id()) {
            return Ok(pool.clone());
        }
        let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
        let manager = Manager::new_with_config(self.url.as_str(), self.connection.clone())
            .map_err(|e| unavailable(&e))?;
        let pool = Pool::builder(manager)
            .config(deadpool_redis::PoolConfig {
                max_size: self.per_thread,
                ..self.pool
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| unavailable(&e))?;
        pools.insert(std::thread::current().id(), pool.clone());
        Ok(pool)
    }
}

/// Cheap to clone: the pools are shared.
#[derive(Clone)]
pub struct RedisStore {
    pools: std::sync::Arc<ThreadPools>,
    /// For connections outside the pools (the bus's subscriber).
    url: std::sync::Arc<str>,
    prefix: String,
    timeout: Duration,
}

impl RedisStore {
    /// `threads` is the number of HTTP workers.
    pub fn new(config: &RedisConfig, threads: usize) -> Result<Self, StoreError> {
        let url = config
            .url
            .clone()
            .ok_or(StoreError::Unavailable("REDIS_URL is not set".into()))?;
        let mut pool = deadpool_redis::PoolConfig::new(config.pool_size);
        let wait = Duration::from_millis(config.pool_wait_timeout_ms);
        pool.timeouts = Timeouts {
            wait: Some(wait),
            create: Some(wait),
            recycle: Some(wait),
        };
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let connection = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(wait))
            .set_response_timeout(Some(timeout));
        // Threads that use Redis: the HTTP workers and the thread running the engine's actors.
        let threads = threads.max(1) + 1;
        let per_thread = (config.pool_size / threads).max(2);
        let pools = ThreadPools {
            url: url.clone(),
            pool,
            connection,
            per_thread,
            pools: Default::default(),
        };
        Ok(Self {
            pools: std::sync::Arc::new(pools),
            url: url.into(),
            prefix: config.prefix.clone(),
            timeout,
        })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn command_timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    /// Runs one Redis interaction with a pooled connection, bounded by the command timeout.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
    {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            let pool = self.pools.get()?;
            let mut conn = pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&mut conn).await.map_err(StoreError::from)
        })
        .await
        .unwrap_or(Err(StoreError::Timeout));
        telemetry::redis_call(started.elapsed(), result.is_ok());
        result
    }

    /// The pool's connections, idle ones, and its cap.
    pub fn pool_usage(&self) -> (usize, usize, usize) {
        let pools = self.pools.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .values()
            .map(|p| p.status())
            .fold((0, 0, 0), |(a, b, c), s| {
                (a + s.size, b + s.available, c + s.max_size)
            })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(async |c| redis::cmd("PING").query_async(c).await)
            .await
    }
}

/// Replies with which Redis says it cannot serve now but will: loading its data, busy with a
/// script, mid-failover. A retry will be served, so they are unreachability, not failures.
const NOT_NOW: &[&str] = &[
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "READONLY",
];

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        let not_now = e.code().is_some_and(|code| NOT_NOW.contains(&code));
        if not_now || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Command(e.to_string())
        }
    }
}
