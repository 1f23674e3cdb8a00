//! The Redis client every Redis-backed part shares: connections per thread, the key prefix,
//! and one way to run a command under the command timeout with its latency recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Manager, Pool, Runtime, Timeouts};
use tokio::sync::OnceCell;

use crate::config::RedisConfig;
use crate::store::error::StoreError;
use crate::telemetry;

/// A thread's shared connection, opened by the first command that needs it.
type Shared = Arc<OnceCell<MultiplexedConnection>>;

/// Connections per thread that uses Redis. A connection's I/O task runs on the thread that
/// opened it, so connections shared by every thread would put every command of every
/// connection actor through whichever thread opened them first. Split this way, each HTTP
/// worker talks to Redis from its own thread.
///
/// Each thread has one shared connection, which every command but a blocking one uses at the
/// same time: the commands of concurrent submits are pipelined on it (written together,
/// answered in order), so a busy thread sends many in one write and reads many answers in
/// one read, and no command waits for a connection or pays the pool's check (`PING`) when it
/// takes one. A blocking read (the batcher's stream read) would hold up every command behind
/// it there, so it takes a connection of its own from the thread's pool. Together they never
/// exceed `REDIS_POOL_SIZE`.
struct ThreadConns {
    client: redis::Client,
    /// The pool settings every thread's pool is built with (its size is `per_thread - 1`).
    pool: deadpool_redis::PoolConfig,
    /// redis-rs times out each reply itself (500 ms by default), under every timeout podium
    /// sets; it is set to the command timeout, so `REDIS_COMMAND_TIMEOUT` is the one that
    /// holds (and the batcher's blocking stream read may wait its whole interval).
    connection: redis::AsyncConnectionConfig,
    per_thread: usize,
    pools: Mutex<HashMap<ThreadId, Pool>>,
    shared: Mutex<HashMap<ThreadId, Shared>>,
}

impl ThreadConns {
    fn pool(&self) -> Result<Pool, StoreError> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&std::thread::current().id()) {
            return Ok(pool.clone());
        }
        let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
        let manager = Manager::new_with_config(
            self.client.get_connection_info().clone(),
            self.connection.clone(),
        )
        .map_err(|e| unavailable(&e))?;
        let pool = Pool::builder(manager)
            .config(deadpool_redis::PoolConfig {
                max_size: self.per_thread - 1,
                ..self.pool
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| unavailable(&e))?;
        pools.insert(std::thread::current().id(), pool.clone());
        Ok(pool)
    }

    fn shared(&self) -> Shared {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        shared
            .entry(std::thread::current().id())
            .or_default()
            .clone()
    }

    /// Forgets this thread's shared connection if it is still `broken`, so the next command
    /// opens a new one (commands already sent on it fail on their own).
    fn forget(&self, broken: &Shared) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let id = std::thread::current().id();
        if shared.get(&id).is_some_and(|s| Arc::ptr_eq(s, broken)) {
            shared.remove(&id);
        }
    }
}

/// Cheap to clone: the connections are shared.
#[derive(Clone)]
pub struct RedisStore {
    conns: Arc<ThreadConns>,
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
        let client = redis::Client::open(url.as_str())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let conns = ThreadConns {
            client,
            pool,
            connection,
            per_thread,
            pools: Default::default(),
            shared: Default::default(),
        };
        Ok(Self {
            conns: Arc::new(conns),
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

    /// `prefix` and `parts` joined by `:`, built in one allocation (a submit builds a dozen).
    pub(super) fn key(&self, parts: &[&str]) -> String {
        let len = self.prefix.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut key = String::with_capacity(len);
        key.push_str(&self.prefix);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            key.push_str(part);
        }
        key
    }

    /// Runs one Redis interaction on this thread's shared connection, bounded by the command
    /// timeout and timed under `call` (`podium_redis_call_seconds{call}`). Never for a
    /// blocking command (see [`Self::run_alone`]).
    pub async fn run<T, F>(&self, call: &'static str, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    {
        let shared = self.conns.shared();
        let result = self
            .timed(call, async {
                let conn = shared
                    .get_or_try_init(|| {
                        self.conns
                            .client
                            .get_multiplexed_async_connection_with_config(&self.conns.connection)
                    })
                    .await
                    .map_err(StoreError::from)?;
                // A handle: commands sent through clones share the one connection.
                f(&mut conn.clone()).await.map_err(StoreError::from)
            })
            .await;
        if matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::Timeout)
        ) {
            self.conns.forget(&shared);
        }
        result
    }

    /// Runs one Redis interaction on a connection of its own from this thread's pool: for a
    /// command that may block (a stream read that waits), which on the shared connection would
    /// hold up every command behind it.
    pub async fn run_alone<T, F>(&self, call: &'static str, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    {
        self.timed(call, async {
            let pool = self.conns.pool()?;
            let mut conn = pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&mut conn).await.map_err(StoreError::from)
        })
        .await
    }

    /// `interaction` under the command timeout, its latency and outcome recorded.
    async fn timed<T>(
        &self,
        call: &'static str,
        interaction: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, interaction)
            .await
            .unwrap_or(Err(StoreError::Timeout));
        telemetry::redis_call(call, started.elapsed(), result.is_ok());
        result
    }

    /// The connections open, idle, waited for, and the cap: each thread's shared connection
    /// counts as open and never idle (it is always in use, by every command of its thread).
    pub fn pool_usage(&self) -> telemetry::PoolUsage {
        let shared = {
            let shared = self.conns.shared.lock().unwrap_or_else(|p| p.into_inner());
            shared.values().filter(|s| s.initialized()).count()
        };
        let pools = self.conns.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.values().map(|p| p.status()).fold(
            telemetry::PoolUsage {
                size: shared,
                max: shared,
                ..Default::default()
            },
            |u, s| telemetry::PoolUsage {
                size: u.size + s.size,
                idle: u.idle + s.available,
                waiting: u.waiting + s.waiting,
                max: u.max + s.max_size,
            },
        )
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", async |c| redis::cmd("PING").query_async(c).await)
            .await
    }
}

/// A Lua script, called by its hash (`EVALSHA`) and loaded when Redis does not know it yet.
/// A call's keys and arguments go straight into the one command that is sent: redis-rs's
/// `ScriptInvocation` gathers them in vectors of their own and copies them into a command at
/// each call, which showed in the ingest profile (docs/PERFORMANCE.md).
pub(super) struct Lua {
    code: String,
    hash: String,
}

impl Lua {
    pub(super) fn new(code: impl Into<String>) -> Self {
        let code = code.into();
        let hash = redis::Script::new(&code).get_hash().to_owned();
        Self { code, hash }
    }

    /// A call with `keys` keys: give the keys first, then the arguments (Redis tells them
    /// apart by the count).
    pub(super) fn call(&self, keys: usize) -> LuaCall<'_> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.hash).arg(keys);
        LuaCall {
            lua: self,
            cmd,
            keys_left: keys,
        }
    }
}

pub(super) struct LuaCall<'a> {
    lua: &'a Lua,
    cmd: redis::Cmd,
    keys_left: usize,
}

impl LuaCall<'_> {
    pub(super) fn key<K: redis::ToRedisArgs>(&mut self, key: K) -> &mut Self {
        debug_assert!(
            self.keys_left > 0,
            "more keys than the call was opened with"
        );
        self.keys_left = self.keys_left.saturating_sub(1);
        self.cmd.arg(key);
        self
    }

    pub(super) fn arg<A: redis::ToRedisArgs>(&mut self, arg: A) -> &mut Self {
        debug_assert_eq!(self.keys_left, 0, "an argument before the last key");
        self.cmd.arg(arg);
        self
    }

    pub(super) async fn invoke<T: redis::FromRedisValue>(
        &self,
        c: &mut MultiplexedConnection,
    ) -> redis::RedisResult<T> {
        debug_assert_eq!(
            self.keys_left, 0,
            "fewer keys than the call was opened with"
        );
        match self.cmd.query_async(c).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(&self.lua.code)
                    .query_async::<String>(c)
                    .await?;
                self.cmd.query_async(c).await
            }
            other => other,
        }
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
