//! The one configuration struct, every field documented with the environment variable that
//! overrides it. Compiled defaults here; `config/default.toml` mirrors them (a test checks).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::campaign::CampaignRules;
use crate::domain::token::JwtAlgorithm;

/// Everything podium can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP and WebSocket server binds (`PODIUM_LISTEN`).
    pub listen: String,
    /// HTTP worker threads; 0 means one per core (`PODIUM_WORKERS`).
    pub workers: usize,
    /// Bind with `SO_REUSEPORT`, so several podium processes (the redis engine) share one
    /// port and the kernel spreads new connections over them (`PODIUM_REUSE_PORT`).
    pub reuse_port: bool,
    /// Serves `POST /dev/token`. Unset: on with the memory engine (`PODIUM_DEV_MODE`).
    pub dev_mode: Option<bool>,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy you run)
    /// (`PODIUM_TRUST_PROXY`).
    pub trust_proxy: bool,
    /// TCP connections (HTTP and WebSocket) one address may hold; past it every request on a
    /// new connection is 429. 0 turns it off; behind a trusted proxy it does not apply, since
    /// every connection comes from the proxy (`PODIUM_MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
    /// Origins (`https://game.example.com`) whose pages may call the HTTP API and open
    /// sockets; empty means same-origin only (`CORS_ALLOWED_ORIGINS`, comma-separated).
    pub cors_allowed_origins: Vec<String>,
    /// `text` or `json` log lines (`LOG_FORMAT`).
    pub log_format: LogFormat,
    pub ws: WsConfig,
    pub jwt: JwtConfig,
    pub game: GameConfig,
    pub rooms: RoomConfig,
    pub health: HealthConfig,
    /// `memory` or `redis` (Redis + PostgreSQL, for production). Unset: `redis` when
    /// `REDIS_URL` or `DATABASE_URL` is set, else `memory` (`PODIUM_ENGINE`).
    pub engine: Option<EngineKind>,
    pub redis: RedisConfig,
    pub postgres: PostgresConfig,
    pub persist: PersistConfig,
    pub admin: AdminConfig,
    /// Campaigns by name, with their anti-cheat rules.
    pub campaigns: BTreeMap<String, CampaignRules>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    Memory,
    Redis,
}

/// Redis: boards, idempotency marks, the results stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db` (`REDIS_URL`): one node.
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster, `redis://host:port` each (`REDIS_CLUSTER_NODES`);
    /// instead of `url`.
    pub cluster_nodes: Vec<String>,
    /// Sentinels that name the master, `redis://host:port` each (`REDIS_SENTINELS`); instead of
    /// `url`, with `master_name`.
    pub sentinels: Vec<String>,
    /// The master the sentinels watch (`REDIS_MASTER_NAME`).
    pub master_name: Option<String>,
    /// Results streams the decisions are spread over (`REDIS_STREAM_SHARDS`); unset: 16 on a
    /// cluster, 1 on one node.
    pub stream_shards: Option<u16>,
    /// Replicas that must hold a decision before its client is told (`REDIS_WAIT_REPLICAS`,
    /// Redis's `WAIT`); unset: 1 on a cluster or behind Sentinel, where a master can fail over
    /// to a replica, and 0 on one node.
    pub wait_replicas: Option<u8>,
    /// Entries not yet in PostgreSQL at which submits are answered `busy`
    /// (`REDIS_STREAM_MAX_BACKLOG`), so a long PostgreSQL outage cannot fill Redis.
    pub stream_max_backlog: u64,
    /// Days an ended campaign's boards are kept in Redis after it ended
    /// (`REDIS_CAMPAIGN_TTL_DAYS`; 0 keeps them for ever). PostgreSQL keeps every result.
    pub campaign_ttl_days: u32,
    /// Prefix of every key, so several deployments (or tests) share one Redis (`REDIS_PREFIX`).
    pub prefix: String,
    /// Connections in the pool; never more are opened (`REDIS_POOL_SIZE`).
    pub pool_size: usize,
    /// Longest wait for a free connection before the call fails (`REDIS_POOL_WAIT_TIMEOUT`).
    pub pool_wait_timeout_ms: u64,
    /// Longest a command may take (`REDIS_COMMAND_TIMEOUT`).
    pub command_timeout_ms: u64,
}

/// PostgreSQL: campaigns and every result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db` (`DATABASE_URL`): the primary.
    pub url: Option<String>,
    /// A streaming replica for the operator's reads (`DATABASE_READ_URL`): review pages,
    /// exports, a player's page, archives and the audit log.
    pub read_url: Option<String>,
    /// Replay lag past which the replica is skipped for the primary (`PG_REPLICA_MAX_LAG_MS`).
    pub replica_max_lag_ms: u64,
    /// Days after which a daily partition of `results` is detached and dropped, once every
    /// campaign with rows in it has ended (`PG_RETENTION_DAYS`; 0 keeps everything).
    pub retention_days: u32,
    /// Keep aged-out partitions as detached tables (`archived_results_YYYYMMDD`) instead of
    /// dropping them (`PG_ARCHIVE`).
    pub archive: bool,
    /// Schema podium's tables live in; created if missing (`DATABASE_SCHEMA`).
    pub schema: String,
    /// Connections in the pool; never more are opened (`DATABASE_POOL_SIZE`).
    pub pool_size: usize,
    /// Longest wait for a free connection (`DATABASE_POOL_WAIT_TIMEOUT`).
    pub pool_wait_timeout_ms: u64,
    /// Longest a statement may run, set as the session's statement_timeout
    /// (`DATABASE_STATEMENT_TIMEOUT`).
    pub statement_timeout_ms: u64,
}

/// The write-behind path from the results stream to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersistConfig {
    /// Rows per batch at most (`PERSIST_BATCH_SIZE`).
    pub batch_size: usize,
    /// Oldest a batch may get before it is written (`PERSIST_FLUSH_INTERVAL`).
    pub flush_interval_ms: u64,
    /// Daily partitions of `results` created ahead of today (`PERSIST_PARTITIONS_AHEAD`).
    pub partitions_ahead_days: u32,
    /// Stream entries pending this long on a dead consumer are claimed (`PERSIST_CLAIM_IDLE`).
    pub claim_idle_ms: u64,
    /// This engine's name in the results consumer group; unset: the host name
    /// (`PERSIST_CONSUMER`).
    pub consumer: Option<String>,
}

/// Who may use `/admin/*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `name:key` pairs, the key at least 24 characters; the name is what the audit log shows
    /// (`ADMIN_API_KEYS`, comma-separated). None outside dev mode: `/admin/*` does not exist.
    pub api_keys: Vec<String>,
    /// The claim of a player-style JWT that must equal `admin` for it to open `/admin/*`
    /// (`ADMIN_ROLE_CLAIM`).
    pub role_claim: String,
    /// Failed admin authentications one address may make per minute; past it the address is
    /// answered 429 until the minute is over (`ADMIN_AUTH_FAILURES_PER_MINUTE`).
    pub auth_failures_per_minute: u32,
    /// Cheat refusals (too_fast, score_too_high, score_rate_too_high, bad_session) within
    /// `auto_ban_window_ms` that ban a player; 0 turns it off (`GAME_AUTO_BAN_FLAGS`).
    pub auto_ban_flags: u32,
    /// (`GAME_AUTO_BAN_WINDOW`)
    pub auto_ban_window_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            role_claim: "role".into(),
            auth_failures_per_minute: 10,
            auto_ban_flags: 0,
            auto_ban_window_ms: 3_600_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// WebSocket limits. Env names are the ones operators already know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsConfig {
    /// Sockets open at once on this instance (`WS_MAX_CONNECTIONS`); 0 (the default) takes
    /// what the process's descriptor limit leaves (`Config::fit_descriptors`).
    pub max_connections: usize,
    /// Authenticated sockets per user (`WS_MAX_CONNECTIONS_PER_USER`).
    pub max_connections_per_user: usize,
    /// Sockets per client address; 0 turns the check off (`WS_MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
    /// Length of a rate-limit window (`WS_RATE_LIMIT_WINDOW`).
    pub rate_limit_window_ms: u64,
    /// Messages a user may send per window, across their sockets (`WS_RATE_LIMIT_MAX_MESSAGES`).
    pub rate_limit_max_messages: u32,
    /// Refused messages in one window after which the socket is closed with 4429
    /// (`WS_RATE_LIMIT_MAX_STRIKES`).
    pub rate_limit_max_strikes: u32,
    /// How often stale rate-limit windows and idempotency marks are swept (`WS_CLEANUP_INTERVAL`).
    pub cleanup_interval_ms: u64,
    /// A socket that sends nothing but pings for this long is closed (`WS_INACTIVE_TIMEOUT`).
    pub inactive_timeout_ms: u64,
    /// Largest frame accepted; larger closes with 1009 (`WS_MAX_PAYLOAD`).
    pub max_payload_bytes: usize,
    /// Longest room name, campaign name or message id (`WS_MAX_MESSAGE_LENGTH`).
    pub max_message_length: usize,
    /// Time a new socket has to send `auth` (`WS_AUTH_TIMEOUT`).
    pub auth_timeout_ms: u64,
    /// Server ping interval; silent for two intervals closes the socket (`WS_HEARTBEAT_INTERVAL`).
    pub heartbeat_interval_ms: u64,
    /// Bytes queued for a client that is not reading before it is closed with 4008
    /// (`WS_OUTBOUND_QUEUE_MAX`).
    pub outbound_queue_max_bytes: usize,
    /// SO_SNDBUF of accepted sockets; 0 keeps the kernel's autotuning. A cap bounds the kernel
    /// memory a stalled client can hold before `outbound_queue_max_bytes` applies
    /// (`WS_SOCKET_SEND_BUFFER`).
    pub socket_send_buffer_bytes: usize,
}

/// How player tokens are checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// The only algorithm accepted: `HS256`, `RS256` or `ES256` (`JWT_ALGORITHM`).
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret (`JWT_SECRET`). Unset in dev mode: a random one per process.
    pub secret: Option<String>,
    /// RS256/ES256 public key: PEM text or a path to a PEM file (`JWT_PUBLIC_KEY`).
    pub public_key: Option<String>,
    /// Required `iss`, if set (`JWT_ISSUER`).
    pub issuer: Option<String>,
    /// Required `aud`, if set (`JWT_AUDIENCE`).
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` (`JWT_LEEWAY`).
    pub leeway_secs: u64,
    /// Lifetime of tokens minted by `POST /dev/token` (`DEV_TOKEN_TTL`).
    pub dev_token_ttl_secs: u64,
    /// Dev tokens one address may take per minute (`DEV_TOKENS_PER_MINUTE`); past it, 429.
    pub dev_tokens_per_minute: u32,
}

/// Game sessions and submissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GameConfig {
    /// Key that signs session tokens; every instance must share it (`SESSION_SECRET`).
    /// Unset: a random one per process (fine for one instance).
    pub session_secret: Option<String>,
    /// Submits a user may make per minute (`GAME_MAX_SUBMITS_PER_MINUTE`).
    pub max_submits_per_minute: u32,
    /// How far a counted game's event may be stamped ahead of the server's elapsed time
    /// (`GAME_CLOCK_TOLERANCE_MS`); a campaign's `clock_tolerance_ms` overrides it.
    pub clock_tolerance_ms: u64,
    /// How long after its `t_ms` an event may arrive (`GAME_INPUT_MAX_DELAY_MS`).
    pub input_max_delay_ms: u64,
    /// Intervals more even than this coefficient of variation are `too_regular`
    /// (`GAME_MIN_INTERVAL_CV`).
    pub min_interval_cv: f64,
    /// Events per second above which 2 s of play are `inhuman_rate` (`GAME_HUMAN_MAX_RATE`).
    pub human_max_rate: f64,
    /// Events one counted game's input log keeps (`GAME_INPUT_MAX_EVENTS`).
    pub input_max_events: u32,
}

impl GameConfig {
    pub fn counting(&self) -> crate::domain::counting::CountingDefaults {
        crate::domain::counting::CountingDefaults {
            clock_tolerance_ms: self.clock_tolerance_ms,
            input_max_delay_ms: self.input_max_delay_ms,
            min_interval_cv: self.min_interval_cv,
            human_max_rate: self.human_max_rate,
            input_max_events: self.input_max_events,
        }
    }
}

/// Rooms and their broadcasts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomConfig {
    /// At most one diff per room per tick (`ROOM_TICK`).
    pub tick_ms: u64,
    /// Rows in a room's top list (`ROOM_TOP_N`).
    pub top_n: usize,
    /// Rooms one socket may join (`ROOM_MAX_PER_CONNECTION`).
    pub max_rooms_per_connection: usize,
    /// Rooms on this instance; region boards are named by players, so this bounds them
    /// (`ROOM_MAX_ROOMS`).
    pub max_rooms: usize,
    /// A room with no member for this long stops, and its place counts no more against
    /// `max_rooms` (`ROOM_IDLE_GRACE`).
    pub idle_grace_ms: u64,
}

/// Thresholds behind `/health`'s status, documented in README.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Share of `WS_MAX_CONNECTIONS` in use that makes `warning` / `critical`.
    pub connections_warning_ratio: f64,
    pub connections_critical_ratio: f64,
    /// Share of messages answered with an error frame over the last minute.
    pub error_rate_warning: f64,
    pub error_rate_critical: f64,
    /// Average time to answer a message over the last minute.
    pub response_time_warning_ms: f64,
    pub response_time_critical_ms: f64,
    /// Age of the oldest result not yet in PostgreSQL that makes `warning` (redis engine).
    pub persist_lag_warning_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            workers: 0,
            reuse_port: false,
            dev_mode: None,
            trust_proxy: false,
            max_connections_per_ip: 1_000,
            cors_allowed_origins: Vec::new(),
            log_format: LogFormat::Text,
            ws: WsConfig::default(),
            jwt: JwtConfig::default(),
            game: GameConfig::default(),
            rooms: RoomConfig::default(),
            health: HealthConfig::default(),
            engine: None,
            redis: RedisConfig::default(),
            postgres: PostgresConfig::default(),
            persist: PersistConfig::default(),
            admin: AdminConfig::default(),
            campaigns: BTreeMap::from([
                ("demo".to_owned(), CampaignRules::default()),
                ("tap-rush".to_owned(), CampaignRules::tap_rush()),
            ]),
        }
    }
}

impl RedisConfig {
    /// Whether any way to reach Redis is set.
    pub fn configured(&self) -> bool {
        self.url.is_some() || !self.cluster_nodes.is_empty() || !self.sentinels.is_empty()
    }

    /// Replicas a decision waits for: as set, else 1 where a master can fail over.
    pub fn replicas_to_wait(&self) -> u8 {
        self.wait_replicas.unwrap_or(
            if self.cluster_nodes.is_empty() && self.sentinels.is_empty() {
                0
            } else {
                1
            },
        )
    }

    /// The number of results streams: as set, else 16 on a cluster and 1 on one node.
    pub fn shards(&self) -> u16 {
        self.stream_shards
            .unwrap_or(if self.cluster_nodes.is_empty() { 1 } else { 16 })
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            cluster_nodes: Vec::new(),
            sentinels: Vec::new(),
            master_name: None,
            stream_shards: None,
            wait_replicas: None,
            stream_max_backlog: 1_000_000,
            campaign_ttl_days: 0,
            prefix: "podium:".into(),
            pool_size: 16,
            pool_wait_timeout_ms: 500,
            command_timeout_ms: 1_000,
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            read_url: None,
            replica_max_lag_ms: 5_000,
            retention_days: 0,
            archive: false,
            schema: "public".into(),
            pool_size: 8,
            pool_wait_timeout_ms: 1_000,
            statement_timeout_ms: 5_000,
        }
    }
}

impl Default for PersistConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            flush_interval_ms: 200,
            partitions_ahead_days: 3,
            claim_idle_ms: 30_000,
            consumer: None,
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_connections: 0,
            max_connections_per_user: 5,
            max_connections_per_ip: 500,
            rate_limit_window_ms: 1_000,
            rate_limit_max_messages: 20,
            rate_limit_max_strikes: 20,
            cleanup_interval_ms: 30_000,
            inactive_timeout_ms: 600_000,
            max_payload_bytes: 16_384,
            max_message_length: 128,
            auth_timeout_ms: 10_000,
            heartbeat_interval_ms: 20_000,
            outbound_queue_max_bytes: 262_144,
            socket_send_buffer_bytes: 0,
        }
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::HS256,
            secret: None,
            public_key: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            dev_token_ttl_secs: 3_600,
            dev_tokens_per_minute: 30,
        }
    }
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            session_secret: None,
            max_submits_per_minute: 30,
            clock_tolerance_ms: 1_500,
            input_max_delay_ms: 3_000,
            min_interval_cv: 0.1,
            human_max_rate: 16.0,
            input_max_events: 5_000,
        }
    }
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1_000,
            top_n: 100,
            max_rooms_per_connection: 8,
            max_rooms: 1_000,
            idle_grace_ms: 60_000,
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            connections_warning_ratio: 0.8,
            connections_critical_ratio: 0.95,
            error_rate_warning: 0.05,
            error_rate_critical: 0.25,
            response_time_warning_ms: 250.0,
            response_time_critical_ms: 1_000.0,
            persist_lag_warning_ms: 2_000,
        }
    }
}

impl Config {
    /// The engine in use: as configured, else `redis` once either store has a URL.
    pub fn engine_kind(&self) -> EngineKind {
        self.engine
            .unwrap_or(if self.redis.configured() || self.postgres.url.is_some() {
                EngineKind::Redis
            } else {
                EngineKind::Memory
            })
    }

    /// Whether `POST /dev/token` is served: as configured, else on with the memory engine.
    pub fn dev_mode(&self) -> bool {
        self.dev_mode
            .unwrap_or(self.engine_kind() == EngineKind::Memory)
    }

    /// HTTP worker threads: as configured, or one per core.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1),
            n => n,
        }
    }
}

impl FromStr for EngineKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "memory" => Ok(EngineKind::Memory),
            "redis" => Ok(EngineKind::Redis),
            _ => Err(()),
        }
    }
}

impl FromStr for LogFormat {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(()),
        }
    }
}
