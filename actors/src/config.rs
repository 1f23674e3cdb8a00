//! The one configuration struct. Load order: compiled defaults (which `config/default.toml`
//! mirrors, checked by a test), then a TOML file, then environment variables. A bad value
//! stops start-up with a message naming the key and what it expects.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Everything podium can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP and WebSocket server binds (`PODIUM_LISTEN`).
    pub listen: String,
    /// HTTP worker threads; 0 means one per core (`PODIUM_WORKERS`).
    pub workers: usize,
    /// Serves `POST /dev/token`. Unset: on with the memory engine (`PODIUM_DEV_MODE`).
    pub dev_mode: Option<bool>,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy you run)
    /// (`PODIUM_TRUST_PROXY`).
    pub trust_proxy: bool,
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
    /// `redis://host:port/db` (`REDIS_URL`).
    pub url: Option<String>,
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
    /// `postgres://user@host:port/db` (`DATABASE_URL`).
    pub url: Option<String>,
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
    /// Sockets open at once on this instance (`WS_MAX_CONNECTIONS`).
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
    pub algorithm: String,
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

/// Anti-cheat rules of one campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRules {
    /// Shortest game the server accepts, measured by the server.
    pub min_duration_ms: u64,
    /// Longest; a later submit is `too_slow` (the session expired).
    pub max_duration_ms: u64,
    pub max_score: u64,
    pub max_score_per_second: u64,
    /// Opening and closing times (Unix ms); unset means always open.
    #[serde(default)]
    pub starts_at_ms: Option<u64>,
    #[serde(default)]
    pub ends_at_ms: Option<u64>,
    /// Days a daily board is kept in Redis.
    #[serde(default = "default_retention_days")]
    pub daily_retention_days: u32,
}

fn default_retention_days() -> u32 {
    7
}

/// The `demo` campaign's rules.
impl Default for CampaignRules {
    fn default() -> Self {
        Self {
            min_duration_ms: 2_000,
            max_duration_ms: 120_000,
            max_score: 100_000,
            max_score_per_second: 50,
            starts_at_ms: None,
            ends_at_ms: None,
            daily_retention_days: default_retention_days(),
        }
    }
}

impl CampaignRules {
    /// How long a daily board is kept.
    pub fn daily_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.daily_retention_days) * 86_400)
    }

    /// Whether the campaign takes games at `ms` (server clock, Unix ms).
    pub fn is_open_at(&self, ms: u64) -> bool {
        self.starts_at_ms.is_none_or(|t| ms >= t) && self.ends_at_ms.is_none_or(|t| ms <= t)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            workers: 0,
            dev_mode: None,
            trust_proxy: false,
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
            campaigns: BTreeMap::from([("demo".to_owned(), CampaignRules::default())]),
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
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
            max_connections: 19_000,
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
            algorithm: "HS256".into(),
            secret: None,
            public_key: None,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            dev_token_ttl_secs: 3_600,
        }
    }
}

impl Default for GameConfig {
    fn default() -> Self {
        Self {
            session_secret: None,
            max_submits_per_minute: 30,
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

/// A configuration value podium cannot use. The message names the key and what it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad configuration: {} expects {}, got {:?}",
            self.key, self.expected, self.got
        )
    }
}

impl std::error::Error for ConfigError {}

fn bad(key: &str, expected: &str, got: impl fmt::Display) -> ConfigError {
    ConfigError {
        key: key.into(),
        expected: expected.into(),
        got: got.to_string(),
    }
}

type Setter = fn(&mut Config, &str, &str) -> Result<(), ConfigError>;

fn num<T: std::str::FromStr>(key: &str, raw: &str, expected: &str) -> Result<T, ConfigError> {
    raw.trim().parse().map_err(|_| bad(key, expected, raw))
}

fn flag(key: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(key, "true or false", raw)),
    }
}

fn text(raw: &str) -> Option<String> {
    (!raw.is_empty()).then(|| raw.to_owned())
}

/// Every environment variable podium reads, with the field it sets. README's table lists
/// the same names; `env_table_matches_readme` keeps them in step.
pub const ENV_VARS: &[(&str, Setter)] = &[
    ("PODIUM_LISTEN", |c, k, v| {
        let _ = k;
        c.listen = v.to_owned();
        Ok(())
    }),
    ("PODIUM_WORKERS", |c, k, v| {
        c.workers = num(k, v, "a whole number of threads (0 = one per core)")?;
        Ok(())
    }),
    ("PODIUM_DEV_MODE", |c, k, v| {
        c.dev_mode = Some(flag(k, v)?);
        Ok(())
    }),
    ("PODIUM_TRUST_PROXY", |c, k, v| {
        c.trust_proxy = flag(k, v)?;
        Ok(())
    }),
    ("LOG_FORMAT", |c, k, v| {
        c.log_format = match v {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(bad(k, "text or json", v)),
        };
        Ok(())
    }),
    ("PODIUM_ENGINE", |c, k, v| {
        c.engine = Some(match v {
            "memory" => EngineKind::Memory,
            "redis" => EngineKind::Redis,
            _ => return Err(bad(k, "memory or redis", v)),
        });
        Ok(())
    }),
    ("REDIS_URL", |c, _, v| {
        c.redis.url = text(v);
        Ok(())
    }),
    ("REDIS_PREFIX", |c, _, v| {
        c.redis.prefix = v.to_owned();
        Ok(())
    }),
    ("REDIS_POOL_SIZE", |c, k, v| {
        c.redis.pool_size = num(k, v, "a whole number of connections")?;
        Ok(())
    }),
    ("REDIS_POOL_WAIT_TIMEOUT", |c, k, v| {
        c.redis.pool_wait_timeout_ms = num(k, v, "a timeout in milliseconds")?;
        Ok(())
    }),
    ("REDIS_COMMAND_TIMEOUT", |c, k, v| {
        c.redis.command_timeout_ms = num(k, v, "a timeout in milliseconds")?;
        Ok(())
    }),
    ("DATABASE_URL", |c, _, v| {
        c.postgres.url = text(v);
        Ok(())
    }),
    ("DATABASE_SCHEMA", |c, _, v| {
        c.postgres.schema = v.to_owned();
        Ok(())
    }),
    ("DATABASE_POOL_SIZE", |c, k, v| {
        c.postgres.pool_size = num(k, v, "a whole number of connections")?;
        Ok(())
    }),
    ("DATABASE_POOL_WAIT_TIMEOUT", |c, k, v| {
        c.postgres.pool_wait_timeout_ms = num(k, v, "a timeout in milliseconds")?;
        Ok(())
    }),
    ("DATABASE_STATEMENT_TIMEOUT", |c, k, v| {
        c.postgres.statement_timeout_ms = num(k, v, "a timeout in milliseconds")?;
        Ok(())
    }),
    ("PERSIST_BATCH_SIZE", |c, k, v| {
        c.persist.batch_size = num(k, v, "a whole number of rows")?;
        Ok(())
    }),
    ("PERSIST_FLUSH_INTERVAL", |c, k, v| {
        c.persist.flush_interval_ms = num(k, v, "an interval in milliseconds")?;
        Ok(())
    }),
    ("PERSIST_PARTITIONS_AHEAD", |c, k, v| {
        c.persist.partitions_ahead_days = num(k, v, "a whole number of days")?;
        Ok(())
    }),
    ("PERSIST_CONSUMER", |c, _, v| {
        c.persist.consumer = text(v);
        Ok(())
    }),
    ("PERSIST_CLAIM_IDLE", |c, k, v| {
        c.persist.claim_idle_ms = num(k, v, "a time in milliseconds")?;
        Ok(())
    }),
    ("WS_MAX_CONNECTIONS", |c, k, v| {
        c.ws.max_connections = num(k, v, "a whole number of sockets")?;
        Ok(())
    }),
    ("WS_MAX_CONNECTIONS_PER_USER", |c, k, v| {
        c.ws.max_connections_per_user = num(k, v, "a whole number of sockets")?;
        Ok(())
    }),
    ("WS_MAX_CONNECTIONS_PER_IP", |c, k, v| {
        c.ws.max_connections_per_ip = num(k, v, "a whole number of sockets (0 = no limit)")?;
        Ok(())
    }),
    ("WS_RATE_LIMIT_WINDOW", |c, k, v| {
        c.ws.rate_limit_window_ms = num(k, v, "a window length in milliseconds")?;
        Ok(())
    }),
    ("WS_RATE_LIMIT_MAX_MESSAGES", |c, k, v| {
        c.ws.rate_limit_max_messages = num(k, v, "a whole number of messages per window")?;
        Ok(())
    }),
    ("WS_RATE_LIMIT_MAX_STRIKES", |c, k, v| {
        c.ws.rate_limit_max_strikes = num(k, v, "a whole number of refused messages per window")?;
        Ok(())
    }),
    ("WS_CLEANUP_INTERVAL", |c, k, v| {
        c.ws.cleanup_interval_ms = num(k, v, "an interval in milliseconds")?;
        Ok(())
    }),
    ("WS_INACTIVE_TIMEOUT", |c, k, v| {
        c.ws.inactive_timeout_ms = num(k, v, "a timeout in milliseconds")?;
        Ok(())
    }),
    ("WS_MAX_PAYLOAD", |c, k, v| {
        c.ws.max_payload_bytes = num(k, v, "a frame size in bytes")?;
        Ok(())
    }),
    ("WS_MAX_MESSAGE_LENGTH", |c, k, v| {
        c.ws.max_message_length = num(k, v, "a length in characters")?;
        Ok(())
    }),
    ("WS_AUTH_TIMEOUT", |c, k, v| {
        c.ws.auth_timeout_ms = num(k, v, "a timeout in milliseconds")?;
        Ok(())
    }),
    ("WS_HEARTBEAT_INTERVAL", |c, k, v| {
        c.ws.heartbeat_interval_ms = num(k, v, "an interval in milliseconds")?;
        Ok(())
    }),
    ("WS_OUTBOUND_QUEUE_MAX", |c, k, v| {
        c.ws.outbound_queue_max_bytes = num(k, v, "a size in bytes")?;
        Ok(())
    }),
    ("WS_SOCKET_SEND_BUFFER", |c, k, v| {
        c.ws.socket_send_buffer_bytes = num(k, v, "a size in bytes (0 = kernel default)")?;
        Ok(())
    }),
    ("JWT_ALGORITHM", |c, _, v| {
        c.jwt.algorithm = v.to_owned();
        Ok(())
    }),
    ("JWT_SECRET", |c, _, v| {
        c.jwt.secret = text(v);
        Ok(())
    }),
    ("JWT_PUBLIC_KEY", |c, _, v| {
        c.jwt.public_key = text(v);
        Ok(())
    }),
    ("JWT_ISSUER", |c, _, v| {
        c.jwt.issuer = text(v);
        Ok(())
    }),
    ("JWT_AUDIENCE", |c, _, v| {
        c.jwt.audience = text(v);
        Ok(())
    }),
    ("JWT_LEEWAY", |c, k, v| {
        c.jwt.leeway_secs = num(k, v, "a number of seconds")?;
        Ok(())
    }),
    ("DEV_TOKEN_TTL", |c, k, v| {
        c.jwt.dev_token_ttl_secs = num(k, v, "a number of seconds")?;
        Ok(())
    }),
    ("SESSION_SECRET", |c, _, v| {
        c.game.session_secret = text(v);
        Ok(())
    }),
    ("GAME_MAX_SUBMITS_PER_MINUTE", |c, k, v| {
        c.game.max_submits_per_minute = num(k, v, "a whole number of submits")?;
        Ok(())
    }),
    ("ROOM_TICK", |c, k, v| {
        c.rooms.tick_ms = num(k, v, "an interval in milliseconds")?;
        Ok(())
    }),
    ("ROOM_TOP_N", |c, k, v| {
        c.rooms.top_n = num(k, v, "a whole number of rows")?;
        Ok(())
    }),
    ("ROOM_MAX_ROOMS", |c, k, v| {
        c.rooms.max_rooms = num(k, v, "a whole number of rooms")?;
        Ok(())
    }),
    ("ROOM_MAX_PER_CONNECTION", |c, k, v| {
        c.rooms.max_rooms_per_connection = num(k, v, "a whole number of rooms")?;
        Ok(())
    }),
];

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl Config {
    /// The engine in use: as configured, else `redis` once either store has a URL.
    pub fn engine_kind(&self) -> EngineKind {
        self.engine
            .unwrap_or(if self.redis.url.is_some() || self.postgres.url.is_some() {
                EngineKind::Redis
            } else {
                EngineKind::Memory
            })
    }

    /// Defaults, then the TOML file at `path` if given, then the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(
                "--config",
                "a readable TOML file",
                format!("{}: {e}", path.display()),
            )
        })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            bad(
                "config file",
                "keys and types as in config/default.toml",
                msg,
            )
        })
    }

    /// Applies environment overrides; `lookup` is `std::env::var` in production and a map in
    /// tests.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for (key, set) in ENV_VARS {
            if let Some(value) = lookup(key) {
                set(self, key, &value)?;
            }
        }
        Ok(())
    }

    /// Range checks that serde cannot express, each naming its environment key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ws = &self.ws;
        let checks: &[(&str, bool, &str, String)] = &[
            (
                "PODIUM_LISTEN",
                self.listen.parse::<std::net::SocketAddr>().is_ok(),
                "host:port such as 127.0.0.1:8080",
                self.listen.clone(),
            ),
            (
                "WS_MAX_CONNECTIONS",
                ws.max_connections >= 1,
                "at least 1",
                ws.max_connections.to_string(),
            ),
            (
                "WS_MAX_CONNECTIONS_PER_USER",
                ws.max_connections_per_user >= 1,
                "at least 1",
                ws.max_connections_per_user.to_string(),
            ),
            (
                "WS_RATE_LIMIT_WINDOW",
                (10..=3_600_000).contains(&ws.rate_limit_window_ms),
                "10 to 3600000 ms",
                ws.rate_limit_window_ms.to_string(),
            ),
            (
                "WS_RATE_LIMIT_MAX_MESSAGES",
                ws.rate_limit_max_messages >= 1,
                "at least 1",
                ws.rate_limit_max_messages.to_string(),
            ),
            (
                "WS_RATE_LIMIT_MAX_STRIKES",
                ws.rate_limit_max_strikes >= 1,
                "at least 1",
                ws.rate_limit_max_strikes.to_string(),
            ),
            (
                "WS_CLEANUP_INTERVAL",
                ws.cleanup_interval_ms >= 100,
                "at least 100 ms",
                ws.cleanup_interval_ms.to_string(),
            ),
            (
                "WS_INACTIVE_TIMEOUT",
                ws.inactive_timeout_ms >= 100,
                "at least 100 ms",
                ws.inactive_timeout_ms.to_string(),
            ),
            (
                "WS_MAX_PAYLOAD",
                (256..=16 << 20).contains(&ws.max_payload_bytes),
                "256 to 16777216 bytes",
                ws.max_payload_bytes.to_string(),
            ),
            (
                "WS_MAX_MESSAGE_LENGTH",
                (8..=4096).contains(&ws.max_message_length),
                "8 to 4096 characters",
                ws.max_message_length.to_string(),
            ),
            (
                "WS_AUTH_TIMEOUT",
                ws.auth_timeout_ms >= 10,
                "at least 10 ms",
                ws.auth_timeout_ms.to_string(),
            ),
            (
                "WS_HEARTBEAT_INTERVAL",
                ws.heartbeat_interval_ms >= 10,
                "at least 10 ms",
                ws.heartbeat_interval_ms.to_string(),
            ),
            (
                "WS_OUTBOUND_QUEUE_MAX",
                ws.outbound_queue_max_bytes >= 1024,
                "at least 1024 bytes",
                ws.outbound_queue_max_bytes.to_string(),
            ),
            (
                "JWT_ALGORITHM",
                ["HS256", "RS256", "ES256"].contains(&self.jwt.algorithm.as_str()),
                "HS256, RS256 or ES256",
                self.jwt.algorithm.clone(),
            ),
            (
                "GAME_MAX_SUBMITS_PER_MINUTE",
                self.game.max_submits_per_minute >= 1,
                "at least 1",
                self.game.max_submits_per_minute.to_string(),
            ),
            (
                "ROOM_TICK",
                (10..=60_000).contains(&self.rooms.tick_ms),
                "10 to 60000 ms",
                self.rooms.tick_ms.to_string(),
            ),
            (
                "ROOM_TOP_N",
                (1..=1000).contains(&self.rooms.top_n),
                "1 to 1000 rows",
                self.rooms.top_n.to_string(),
            ),
            (
                "ROOM_MAX_PER_CONNECTION",
                self.rooms.max_rooms_per_connection >= 1,
                "at least 1",
                self.rooms.max_rooms_per_connection.to_string(),
            ),
            (
                "REDIS_POOL_SIZE",
                self.redis.pool_size >= 1,
                "at least 1",
                self.redis.pool_size.to_string(),
            ),
            (
                "REDIS_COMMAND_TIMEOUT",
                self.redis.command_timeout_ms >= 1,
                "at least 1 ms",
                self.redis.command_timeout_ms.to_string(),
            ),
            (
                "DATABASE_POOL_SIZE",
                self.postgres.pool_size >= 2,
                "at least 2 (the batcher holds one while the pipeline may need another)",
                self.postgres.pool_size.to_string(),
            ),
            (
                "DATABASE_SCHEMA",
                is_identifier(&self.postgres.schema),
                "a schema name of letters, digits and _",
                self.postgres.schema.clone(),
            ),
            (
                "PERSIST_BATCH_SIZE",
                (1..=100_000).contains(&self.persist.batch_size),
                "1 to 100000 rows",
                self.persist.batch_size.to_string(),
            ),
            (
                "PERSIST_FLUSH_INTERVAL",
                self.persist.flush_interval_ms >= 1,
                "at least 1 ms",
                self.persist.flush_interval_ms.to_string(),
            ),
        ];
        for (key, ok, expected, got) in checks {
            if !ok {
                return Err(bad(key, expected, got));
            }
        }
        if self.engine_kind() == EngineKind::Redis {
            if self.redis.url.is_none() {
                return Err(bad(
                    "REDIS_URL",
                    "a redis:// URL (the redis engine needs Redis and PostgreSQL)",
                    "",
                ));
            }
            if self.postgres.url.is_none() {
                return Err(bad(
                    "DATABASE_URL",
                    "a postgres:// URL (the redis engine needs Redis and PostgreSQL)",
                    "",
                ));
            }
        }
        if let Some(secret) = &self.jwt.secret {
            if secret.len() < 16 {
                return Err(bad("JWT_SECRET", "at least 16 characters", "(hidden)"));
            }
        }
        for (name, rules) in &self.campaigns {
            let key = format!("campaigns.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return Err(bad(&key, "a name of letters, digits, - and _", name));
            }
            if rules.min_duration_ms >= rules.max_duration_ms {
                return Err(bad(
                    &format!("{key}.min_duration_ms"),
                    "less than max_duration_ms",
                    rules.min_duration_ms,
                ));
            }
            if rules.max_score == 0 || rules.max_score_per_second == 0 {
                return Err(bad(
                    &format!("{key}.max_score"),
                    "max_score and max_score_per_second above 0",
                    rules.max_score,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut c = Config::default();
        c.apply_env(|k| env.get(k).cloned())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn default_toml_matches_the_struct_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml");
        assert_eq!(Config::from_toml_file(&path).unwrap(), Config::default());
    }

    #[test]
    fn env_overrides_the_operator_names() {
        let c = with_env(&[
            ("WS_MAX_CONNECTIONS", "42"),
            ("WS_MAX_PAYLOAD", "4096"),
            ("WS_RATE_LIMIT_WINDOW", "500"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.ws.max_connections,
                c.ws.max_payload_bytes,
                c.ws.rate_limit_window_ms
            ),
            (42, 4096, 500)
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = with_env(&[("WS_MAX_PAYLOAD", "lots")]).unwrap_err();
        assert_eq!(err.key, "WS_MAX_PAYLOAD");
        assert!(err.to_string().contains("bytes"), "{err}");
        assert_eq!(
            with_env(&[("WS_MAX_PAYLOAD", "10")]).unwrap_err().key,
            "WS_MAX_PAYLOAD"
        );
        assert_eq!(
            with_env(&[("JWT_ALGORITHM", "none")]).unwrap_err().key,
            "JWT_ALGORITHM"
        );
        assert_eq!(
            with_env(&[("PODIUM_LISTEN", "nowhere")]).unwrap_err().key,
            "PODIUM_LISTEN"
        );
        assert_eq!(
            with_env(&[("LOG_FORMAT", "xml")]).unwrap_err().key,
            "LOG_FORMAT"
        );
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = Config::from_toml("[ws]\nmax_conections = 3\n").unwrap_err();
        assert!(err.got.contains("max_conections"), "{err}");
    }

    #[test]
    fn env_table_matches_readme() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        for (key, _) in ENV_VARS {
            assert!(
                readme.contains(&format!("`{key}`")),
                "README's configuration table lacks {key}"
            );
        }
    }
}
