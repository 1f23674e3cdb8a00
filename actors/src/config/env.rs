//! Every environment variable podium reads: one row per key, naming the field it sets, how
//! the value is read and what it expects. README's table lists the same names
//! (`env_table_matches_readme` keeps them in step).

use std::str::FromStr;

use super::error::{bad, ConfigError};
use super::schema::Config;

type Setter = fn(&mut Config, &str, &str) -> Result<(), ConfigError>;

/// A value read with `FromStr` (numbers, and the names of enums).
fn parsed<T: FromStr>(key: &str, raw: &str, expected: &str) -> Result<T, ConfigError> {
    raw.trim().parse().map_err(|_| bad(key, expected, raw))
}

fn some_parsed<T: FromStr>(key: &str, raw: &str, expected: &str) -> Result<Option<T>, ConfigError> {
    parsed(key, raw, expected).map(Some)
}

fn flag(key: &str, raw: &str, expected: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(key, expected, raw)),
    }
}

fn some_flag(key: &str, raw: &str, expected: &str) -> Result<Option<bool>, ConfigError> {
    flag(key, raw, expected).map(Some)
}

/// Any text, as given.
fn string(_: &str, raw: &str, _: &str) -> Result<String, ConfigError> {
    Ok(raw.to_owned())
}

/// Optional text: empty means unset.
fn text(_: &str, raw: &str, _: &str) -> Result<Option<String>, ConfigError> {
    Ok((!raw.is_empty()).then(|| raw.to_owned()))
}

/// A comma-separated list; blanks dropped.
fn list(_: &str, raw: &str, _: &str) -> Result<Vec<String>, ConfigError> {
    Ok(raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

macro_rules! env_table {
    ($($key:literal => $($field:ident).+ : $read:ident $expected:literal,)*) => {
        /// (key, setter) for every environment variable, in README's order.
        pub const ENV_VARS: &[(&str, Setter)] = &[$(
            ($key, |c, k, v| {
                c.$($field).+ = $read(k, v, $expected)?;
                Ok(())
            }),
        )*];
    };
}

env_table! {
    "PODIUM_LISTEN" => listen: string "host:port",
    "PODIUM_WORKERS" => workers: parsed "a whole number of threads (0 = one per core)",
    "PODIUM_REUSE_PORT" => reuse_port: flag "true or false",
    "PODIUM_DEV_MODE" => dev_mode: some_flag "true or false",
    "PODIUM_TRUST_PROXY" => trust_proxy: flag "true or false",
    "PODIUM_MAX_CONNECTIONS_PER_IP" => max_connections_per_ip: parsed "a whole number of connections (0 = no limit)",
    "CORS_ALLOWED_ORIGINS" => cors_allowed_origins: list "origins, comma-separated",
    "LOG_FORMAT" => log_format: parsed "text or json",
    "PODIUM_ENGINE" => engine: some_parsed "memory or redis",
    "REDIS_URL" => redis.url: text "a redis:// URL",
    "REDIS_CLUSTER_NODES" => redis.cluster_nodes: list "redis:// URLs of cluster nodes, comma-separated",
    "REDIS_SENTINELS" => redis.sentinels: list "redis:// URLs of sentinels, comma-separated",
    "REDIS_MASTER_NAME" => redis.master_name: text "the name the sentinels know the master by",
    "REDIS_STREAM_SHARDS" => redis.stream_shards: some_parsed "a whole number of streams from 1 to 1024",
    "REDIS_WAIT_REPLICAS" => redis.wait_replicas: some_parsed "a whole number of replicas (0 = do not wait)",
    "REDIS_STREAM_MAX_BACKLOG" => redis.stream_max_backlog: parsed "a whole number of entries (at least 1)",
    "REDIS_CAMPAIGN_TTL_DAYS" => redis.campaign_ttl_days: parsed "a whole number of days (0 = keep for ever)",
    "REDIS_PREFIX" => redis.prefix: string "a key prefix",
    "REDIS_POOL_SIZE" => redis.pool_size: parsed "a whole number of connections",
    "REDIS_POOL_WAIT_TIMEOUT" => redis.pool_wait_timeout_ms: parsed "a timeout in milliseconds",
    "REDIS_COMMAND_TIMEOUT" => redis.command_timeout_ms: parsed "a timeout in milliseconds",
    "DATABASE_URL" => postgres.url: text "a postgres:// URL",
    "DATABASE_READ_URL" => postgres.read_url: text "a postgres:// URL of a streaming replica",
    "PG_REPLICA_MAX_LAG_MS" => postgres.replica_max_lag_ms: parsed "a lag in milliseconds",
    "PG_RETENTION_DAYS" => postgres.retention_days: parsed "a whole number of days (0 = keep all)",
    "PG_ARCHIVE" => postgres.archive: flag "true or false",
    "DATABASE_SCHEMA" => postgres.schema: string "a schema name",
    "DATABASE_POOL_SIZE" => postgres.pool_size: parsed "a whole number of connections",
    "DATABASE_POOL_WAIT_TIMEOUT" => postgres.pool_wait_timeout_ms: parsed "a timeout in milliseconds",
    "DATABASE_STATEMENT_TIMEOUT" => postgres.statement_timeout_ms: parsed "a timeout in milliseconds",
    "PERSIST_BATCH_SIZE" => persist.batch_size: parsed "a whole number of rows",
    "PERSIST_FLUSH_INTERVAL" => persist.flush_interval_ms: parsed "an interval in milliseconds",
    "PERSIST_PARTITIONS_AHEAD" => persist.partitions_ahead_days: parsed "a whole number of days",
    "PERSIST_CONSUMER" => persist.consumer: text "a consumer name",
    "PERSIST_CLAIM_IDLE" => persist.claim_idle_ms: parsed "a time in milliseconds",
    "WS_MAX_CONNECTIONS" => ws.max_connections: parsed "a whole number of sockets",
    "WS_MAX_CONNECTIONS_PER_USER" => ws.max_connections_per_user: parsed "a whole number of sockets",
    "WS_MAX_CONNECTIONS_PER_IP" => ws.max_connections_per_ip: parsed "a whole number of sockets (0 = no limit)",
    "WS_RATE_LIMIT_WINDOW" => ws.rate_limit_window_ms: parsed "a window length in milliseconds",
    "WS_RATE_LIMIT_MAX_MESSAGES" => ws.rate_limit_max_messages: parsed "a whole number of messages per window",
    "WS_RATE_LIMIT_MAX_STRIKES" => ws.rate_limit_max_strikes: parsed "a whole number of refused messages per window",
    "WS_CLEANUP_INTERVAL" => ws.cleanup_interval_ms: parsed "an interval in milliseconds",
    "WS_INACTIVE_TIMEOUT" => ws.inactive_timeout_ms: parsed "a timeout in milliseconds",
    "WS_MAX_PAYLOAD" => ws.max_payload_bytes: parsed "a frame size in bytes",
    "WS_MAX_MESSAGE_LENGTH" => ws.max_message_length: parsed "a length in characters",
    "WS_AUTH_TIMEOUT" => ws.auth_timeout_ms: parsed "a timeout in milliseconds",
    "WS_HEARTBEAT_INTERVAL" => ws.heartbeat_interval_ms: parsed "an interval in milliseconds",
    "WS_OUTBOUND_QUEUE_MAX" => ws.outbound_queue_max_bytes: parsed "a size in bytes",
    "WS_SOCKET_SEND_BUFFER" => ws.socket_send_buffer_bytes: parsed "a size in bytes (0 = kernel default)",
    "JWT_ALGORITHM" => jwt.algorithm: parsed "HS256, RS256 or ES256",
    "JWT_SECRET" => jwt.secret: text "a secret",
    "JWT_PUBLIC_KEY" => jwt.public_key: text "a PEM public key or a path to one",
    "JWT_ISSUER" => jwt.issuer: text "an issuer",
    "JWT_AUDIENCE" => jwt.audience: text "an audience",
    "JWT_LEEWAY" => jwt.leeway_secs: parsed "a number of seconds",
    "DEV_TOKEN_TTL" => jwt.dev_token_ttl_secs: parsed "a number of seconds",
    "DEV_TOKENS_PER_MINUTE" => jwt.dev_tokens_per_minute: parsed "a number of tokens",
    "SESSION_SECRET" => game.session_secret: text "a secret",
    "GAME_MAX_SUBMITS_PER_MINUTE" => game.max_submits_per_minute: parsed "a whole number of submits",
    "GAME_CLOCK_TOLERANCE_MS" => game.clock_tolerance_ms: parsed "a tolerance in milliseconds",
    "GAME_INPUT_MAX_DELAY_MS" => game.input_max_delay_ms: parsed "a delay in milliseconds",
    "GAME_MIN_INTERVAL_CV" => game.min_interval_cv: parsed "a number from 0 to 1",
    "GAME_HUMAN_MAX_RATE" => game.human_max_rate: parsed "events per second",
    "GAME_INPUT_MAX_EVENTS" => game.input_max_events: parsed "a whole number of events",
    "GAME_AUTO_BAN_FLAGS" => admin.auto_ban_flags: parsed "a whole number of refusals (0 = off)",
    "GAME_AUTO_BAN_WINDOW" => admin.auto_ban_window_ms: parsed "a window in milliseconds",
    "ADMIN_API_KEYS" => admin.api_keys: list "name:key pairs, comma-separated",
    "ADMIN_ROLE_CLAIM" => admin.role_claim: string "a claim name",
    "ADMIN_AUTH_FAILURES_PER_MINUTE" => admin.auth_failures_per_minute: parsed "a whole number of failures",
    "ROOM_TICK" => rooms.tick_ms: parsed "an interval in milliseconds",
    "ROOM_TOP_N" => rooms.top_n: parsed "a whole number of rows",
    "ROOM_MAX_ROOMS" => rooms.max_rooms: parsed "a whole number of rooms",
    "ROOM_MAX_PER_CONNECTION" => rooms.max_rooms_per_connection: parsed "a whole number of rooms",
    "ROOM_IDLE_GRACE" => rooms.idle_grace_ms: parsed "a time in milliseconds",
}

impl Config {
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
}
