//! The Redis client every Redis-backed part shares: connections per thread, the key prefix
//! and hash tags, and one way to run a command under the command timeout with its latency
//! recorded. Redis is one node (`REDIS_URL`), a master found through Sentinel
//! (`REDIS_SENTINELS`), or a cluster (`REDIS_CLUSTER_NODES`); above this file only the keys'
//! hash tags tell them apart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::{Manager, Pool, Runtime, Timeouts};
use tokio::sync::OnceCell;

use super::slots;
use crate::config::RedisConfig;
use crate::store::error::StoreError;
use crate::telemetry;

/// A connection to one node, or a cluster's connection (which routes each command by its key's
/// slot and follows the cluster's redirections and failovers).
#[derive(Clone)]
pub enum Conn {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the commands go.
enum Target {
    Node(redis::Client),
    /// The master the sentinels name, asked again after a connection to it failed (a failover
    /// moves it; the old master then refuses writes with `READONLY`).
    Sentinel {
        sentinel: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
        master: Mutex<Option<redis::Client>>,
    },
    /// The client, and its seed nodes (for the bus's subscriber, a client of its own).
    Cluster(redis::cluster::ClusterClient, Vec<String>),
}

/// A thread's shared connection, opened by the first command that needs it.
type Shared = Arc<OnceCell<Conn>>;

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
/// exceed `REDIS_POOL_SIZE`. A cluster's streams are read without blocking (see
/// [`RedisStore::blocking_reads`]), so a cluster needs no pool.
struct ThreadConns {
    target: Target,
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

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl ThreadConns {
    /// The client of the node the commands go to (not for a cluster).
    async fn node(&self) -> Result<redis::Client, StoreError> {
        match &self.target {
            Target::Node(client) => Ok(client.clone()),
            Target::Sentinel { sentinel, master } => {
                if let Some(client) = master.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                    return Ok(client);
                }
                let client = sentinel
                    .lock()
                    .await
                    .async_get_client()
                    .await
                    // Mid-failover the sentinels may name no master that answers yet.
                    .map_err(|e| unavailable(format!("no master from the sentinels: {e}")))?;
                *master.lock().unwrap_or_else(|p| p.into_inner()) = Some(client.clone());
                Ok(client)
            }
            Target::Cluster(..) => Err(StoreError::Command("a cluster has no one node".into())),
        }
    }

    async fn open(&self) -> Result<Conn, StoreError> {
        match &self.target {
            Target::Cluster(client, _) => Ok(Conn::Cluster(client.get_async_connection().await?)),
            _ => Ok(Conn::Node(
                self.node()
                    .await?
                    .get_multiplexed_async_connection_with_config(&self.connection)
                    .await?,
            )),
        }
    }

    async fn pool(&self) -> Result<Pool, StoreError> {
        if let Some(pool) = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&std::thread::current().id())
        {
            return Ok(pool.clone());
        }
        let client = self.node().await?;
        let manager = Manager::new_with_config(
            client.get_connection_info().clone(),
            self.connection.clone(),
        )
        .map_err(unavailable)?;
        let pool = Pool::builder(manager)
            .config(deadpool_redis::PoolConfig {
                max_size: self.per_thread - 1,
                ..self.pool
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(std::thread::current().id(), pool.clone());
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
    /// opens a new one (commands already sent on it fail on their own). Behind Sentinel, when
    /// the master refused or dropped us (`moved`: not a mere timeout), the master is asked for
    /// again, and every connection to the old one is dropped.
    fn forget(&self, broken: Option<&Shared>, moved: bool) {
        if let Some(broken) = broken {
            let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let id = std::thread::current().id();
            if shared.get(&id).is_some_and(|s| Arc::ptr_eq(s, broken)) {
                shared.remove(&id);
            }
        }
        if let (true, Target::Sentinel { master, .. }) = (moved, &self.target) {
            if master
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .is_some()
            {
                self.shared
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                self.pools.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
        }
    }
}

/// Cheap to clone: the connections are shared.
#[derive(Clone)]
pub struct RedisStore {
    conns: Arc<ThreadConns>,
    prefix: String,
    timeout: Duration,
    /// The hash tags of the results streams' shards (see [`slots::spread_tags`]).
    shards: Arc<[String]>,
    max_backlog: u64,
    /// Replicas a decision must reach before it is answered (`REDIS_WAIT_REPLICAS`).
    wait_replicas: u8,
}

impl RedisStore {
    /// `threads` is the number of HTTP workers.
    pub fn new(config: &RedisConfig, threads: usize) -> Result<Self, StoreError> {
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
        let target = if !config.cluster_nodes.is_empty() {
            // The cluster client retries a command across a failover itself; podium's own
            // timeout bounds the whole of it.
            let client = redis::cluster::ClusterClientBuilder::new(config.cluster_nodes.clone())
                .connection_timeout(wait)
                .response_timeout(timeout)
                .retries(3)
                .min_retry_wait(20)
                .max_retry_wait(200)
                .build()?;
            Target::Cluster(client, config.cluster_nodes.clone())
        } else if !config.sentinels.is_empty() {
            let name = config.master_name.clone().unwrap_or_default();
            let sentinel = redis::sentinel::SentinelClient::build(
                config.sentinels.clone(),
                name,
                None,
                redis::sentinel::SentinelServerType::Master,
            )?;
            Target::Sentinel {
                sentinel: tokio::sync::Mutex::new(sentinel),
                master: Mutex::new(None),
            }
        } else {
            let url = config
                .url
                .as_deref()
                .ok_or(StoreError::Unavailable("REDIS_URL is not set".into()))?;
            Target::Node(redis::Client::open(url)?)
        };
        // Threads that use Redis: the HTTP workers and the thread running the engine's actors.
        let threads = threads.max(1) + 1;
        let per_thread = (config.pool_size / threads).max(2);
        let conns = Arc::new(ThreadConns {
            target,
            pool,
            connection,
            per_thread,
            pools: Default::default(),
            shared: Default::default(),
        });
        Ok(Self {
            conns,
            prefix: config.prefix.clone(),
            timeout,
            shards: slots::spread_tags(config.shards()).into(),
            // The bound is spread evenly over the shards, each script checking its own.
            max_backlog: config
                .stream_max_backlog
                .div_ceil(u64::from(config.shards().max(1))),
            wait_replicas: config.replicas_to_wait(),
        })
    }

    /// Whether decisions wait for replicas (`REDIS_WAIT_REPLICAS` above 0).
    pub(super) fn waits_for_replicas(&self) -> bool {
        self.wait_replicas > 0
    }

    /// Waits until the replicas hold the decision marked at `mark` before its client is told,
    /// so a failover to a replica cannot lose it: Redis's `WAIT`, for as many of
    /// `REDIS_WAIT_REPLICAS` as the master has (`connected`, counted by the decision's script;
    /// a master without replicas cannot fail over, and its AOF keeps what it acknowledged).
    /// A write to the mark (its expiry again) goes first on the same connection, and a
    /// replica applies writes in order, so the wait covers the decision whichever connection
    /// made it (a retry's included). Not taken in time: `Unavailable`, and the retry answers
    /// the decision.
    pub(super) async fn replicate(
        &self,
        mark: &str,
        ttl_ms: u64,
        connected: u8,
    ) -> Result<(), StoreError> {
        let want = self.wait_replicas.min(connected);
        if want == 0 {
            return Ok(());
        }
        let wait_ms = (self.timeout / 2).as_millis() as u64;
        let (acked,): (u8,) = self
            .run("replicate", async |c| {
                redis::pipe()
                    .cmd("PEXPIRE")
                    .arg(mark)
                    .arg(ttl_ms)
                    .ignore()
                    .cmd("WAIT")
                    .arg(want)
                    .arg(wait_ms)
                    .query_async(c)
                    .await
            })
            .await?;
        if acked < want {
            return Err(StoreError::Unavailable(format!(
                "{acked} of {want} replicas took the decision within {wait_ms} ms"
            )));
        }
        Ok(())
    }

    pub(super) fn command_timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether this is a cluster: a script's keys there must share a slot, so a decision and
    /// its boards are written in two steps (see `boards.rs`).
    pub fn is_cluster(&self) -> bool {
        matches!(self.conns.target, Target::Cluster(..))
    }

    /// Whether the batcher may wait for stream entries in a blocking read: on one node with
    /// one stream. A cluster's connection would hold every command to that node behind it,
    /// and several streams are read one by one.
    pub(super) fn blocking_reads(&self) -> bool {
        !self.is_cluster() && self.shards.len() == 1
    }

    pub(super) fn max_backlog(&self) -> u64 {
        self.max_backlog
    }

    /// The hash tags of the stream shards.
    pub(super) fn shard_tags(&self) -> &[String] {
        &self.shards
    }

    /// The shard of a player's decisions (their marks, bans and stream entries).
    pub(super) fn user_shard(&self, user: &str) -> &str {
        &self.shards[slots::shard_of(user, self.shards.len() as u16)]
    }

    /// `prefix` and `parts` joined by `:`, built in one allocation (a submit builds a dozen).
    pub(super) fn key(&self, parts: &[&str]) -> String {
        self.tagged_key(None, parts)
    }

    /// A key in the slot of `tag`: `prefix{tag}:parts`. Every key one script or pipeline
    /// touches carries the same tag.
    pub(super) fn tagged_key(&self, tag: Option<&str>, parts: &[&str]) -> String {
        let tag_len = tag.map_or(0, |t| t.len() + 3);
        let len = self.prefix.len() + tag_len + parts.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut key = String::with_capacity(len);
        key.push_str(&self.prefix);
        if let Some(tag) = tag {
            key.push('{');
            key.push_str(tag);
            key.push_str("}:");
        }
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
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let shared = self.conns.shared();
        let result = self
            .timed(call, async {
                let conn = shared.get_or_try_init(|| self.conns.open()).await?;
                // A handle: commands sent through clones share the one connection.
                f(&mut conn.clone()).await.map_err(StoreError::from)
            })
            .await;
        match &result {
            Err(StoreError::Unavailable(_)) => self.conns.forget(Some(&shared), true),
            Err(StoreError::Timeout) => self.conns.forget(Some(&shared), false),
            _ => {}
        }
        result
    }

    /// Runs `pipes`, each touching one key's slot, at once, answering each one's reply in
    /// order: a cluster refuses a pipeline across slots, and on one node the shared
    /// connection writes concurrent pipelines together anyway.
    pub async fn run_each<T: redis::FromRedisValue>(
        &self,
        call: &'static str,
        pipes: &[redis::Pipeline],
    ) -> Result<Vec<T>, StoreError> {
        futures_util::future::join_all(
            pipes
                .iter()
                .map(|pipe| self.run(call, async |c| pipe.query_async::<T>(c).await)),
        )
        .await
        .into_iter()
        .collect()
    }

    /// Runs one Redis interaction on a connection of its own from this thread's pool: for a
    /// command that may block (a stream read that waits), which on the shared connection would
    /// hold up every command behind it.
    pub async fn run_alone<T, F>(&self, call: &'static str, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut Conn) -> redis::RedisResult<T>,
    {
        let result = self
            .timed(call, async {
                let pool = self.conns.pool().await?;
                let pooled = pool.get().await.map_err(unavailable)?;
                // A handle on the pooled connection, which goes back to the pool when
                // `pooled` is dropped.
                let mut conn = Conn::Node((*pooled).clone());
                f(&mut conn).await.map_err(StoreError::from)
            })
            .await;
        if let Err(StoreError::Unavailable(_)) = &result {
            self.conns.forget(None, true);
        }
        result
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

    /// Whether Redis takes writes now. On a cluster every slot must be served: a master lost
    /// without a replica to take over leaves its slots unserved, which `/health` and the
    /// fallback treat as Redis down. One node must be a master: after a failover the old
    /// master answers `PING` but refuses every write (`READONLY`), so it counts as down (and
    /// behind Sentinel the master is asked for again).
    pub async fn ping(&self) -> Result<(), StoreError> {
        if self.is_cluster() {
            // `PING` answers even from a cluster that serves no slots; `cluster_state` says
            // whether every slot is served (with the default `cluster-require-full-coverage`).
            let info: String = self
                .run("ping", async |c| {
                    redis::cmd("CLUSTER").arg("INFO").query_async(c).await
                })
                .await?;
            return match info.contains("cluster_state:ok") {
                true => Ok(()),
                false => Err(StoreError::Unavailable(
                    "the cluster does not serve every slot (cluster_state:fail)".into(),
                )),
            };
        }
        let role: Vec<redis::Value> = self
            .run("ping", async |c| redis::cmd("ROLE").query_async(c).await)
            .await?;
        match role.first() {
            Some(redis::Value::BulkString(r)) if r.as_slice() == b"master" => Ok(()),
            _ => {
                self.conns.forget(Some(&self.conns.shared()), true);
                Err(StoreError::Unavailable(
                    "Redis is a replica now (READONLY): its master failed over".into(),
                ))
            }
        }
    }
}

/// The hash tag of a campaign's keys: its boards, their bars and its bus channel.
pub(super) fn campaign_tag(campaign: &str) -> String {
    format!("c:{campaign}")
}

impl RedisStore {
    /// A cluster's seed nodes; `None` on one node or behind Sentinel.
    pub(super) fn cluster_seeds(&self) -> Option<&[String]> {
        match &self.conns.target {
            Target::Cluster(_, seeds) => Some(seeds),
            _ => None,
        }
    }

    /// A pubsub connection to the node the commands go to (found again through Sentinel after
    /// a failover), for the bus's subscriber.
    pub(super) async fn node_pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        let client = self.conns.node().await?;
        let pubsub = client.get_async_pubsub().await;
        if pubsub.is_err() {
            self.conns.forget(None, true);
        }
        Ok(pubsub?)
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
            slot: None,
            any_slot: false,
        }
    }
}

pub(super) struct LuaCall<'a> {
    lua: &'a Lua,
    cmd: redis::Cmd,
    keys_left: usize,
    /// The first key's slot: a cluster runs a script only if every key shares it, so tests
    /// on one node catch a script that would fail there.
    slot: Option<u16>,
    /// Set for a script only ever run on one node (see [`LuaCall::on_one_node`]).
    any_slot: bool,
}

impl LuaCall<'_> {
    pub(super) fn key<K: AsRef<str> + redis::ToRedisArgs>(&mut self, key: K) -> &mut Self {
        debug_assert!(
            self.keys_left > 0,
            "more keys than the call was opened with"
        );
        if cfg!(debug_assertions) && !self.any_slot {
            let slot = slots::slot(key.as_ref().as_bytes());
            let first = *self.slot.get_or_insert(slot);
            debug_assert_eq!(
                first,
                slot,
                "a script's keys in two slots: {}",
                key.as_ref()
            );
        }
        self.keys_left = self.keys_left.saturating_sub(1);
        self.cmd.arg(key);
        self
    }

    /// Lets the keys lie in several slots: for a script that is run on one node only.
    pub(super) fn on_one_node(&mut self) -> &mut Self {
        self.any_slot = true;
        self
    }

    pub(super) fn arg<A: redis::ToRedisArgs>(&mut self, arg: A) -> &mut Self {
        debug_assert_eq!(self.keys_left, 0, "an argument before the last key");
        self.cmd.arg(arg);
        self
    }

    pub(super) async fn invoke<T: redis::FromRedisValue>(
        &self,
        c: &mut Conn,
    ) -> redis::RedisResult<T> {
        debug_assert_eq!(
            self.keys_left, 0,
            "fewer keys than the call was opened with"
        );
        match self.cmd.query_async(c).await {
            Err(e) if is_noscript(&e) => {
                self.load(c).await?;
                self.cmd.query_async(c).await
            }
            other => other,
        }
    }

    async fn load(&self, c: &mut Conn) -> redis::RedisResult<()> {
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&self.lua.code)
            .query_async::<String>(c)
            .await?;
        Ok(())
    }
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// Replies with which Redis says it cannot serve now but will: loading its data, busy with a
/// script, mid-failover (a cluster's slot moving while the client's retries ran out, a master
/// without the replicas `min-replicas-to-write` asks for). A retry will be served, so they are
/// unreachability, not failures.
const NOT_NOW: &[&str] = &[
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "READONLY",
    "MOVED",
    "ASK",
    "NOREPLICAS",
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
