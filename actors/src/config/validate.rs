//! Checks serde cannot express, each naming its environment key, and the JWT key material,
//! read and parsed at start so a bad key stops start-up instead of refusing every player.

use super::error::{bad, ConfigError};
use super::schema::{AdminConfig, Config, EngineKind, JwtConfig};
use crate::domain::ids::CampaignId;
use crate::domain::token::{JwtAlgorithm, TokenRules, TokenVerifier};

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

impl Config {
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
                "GAME_MAX_SUBMITS_PER_MINUTE",
                self.game.max_submits_per_minute >= 1,
                "at least 1",
                self.game.max_submits_per_minute.to_string(),
            ),
            (
                "GAME_CLOCK_TOLERANCE_MS",
                self.game.clock_tolerance_ms <= 60_000,
                "0 to 60000 ms",
                self.game.clock_tolerance_ms.to_string(),
            ),
            (
                "GAME_INPUT_MAX_DELAY_MS",
                (100..=60_000).contains(&self.game.input_max_delay_ms),
                "100 to 60000 ms",
                self.game.input_max_delay_ms.to_string(),
            ),
            (
                "GAME_MIN_INTERVAL_CV",
                (0.0..=1.0).contains(&self.game.min_interval_cv),
                "a number from 0 to 1",
                self.game.min_interval_cv.to_string(),
            ),
            (
                "GAME_HUMAN_MAX_RATE",
                self.game.human_max_rate > 0.0 && self.game.human_max_rate <= 1_000.0,
                "a number above 0, at most 1000",
                self.game.human_max_rate.to_string(),
            ),
            (
                "GAME_INPUT_MAX_EVENTS",
                (100..=100_000).contains(&self.game.input_max_events),
                "100 to 100000 events",
                self.game.input_max_events.to_string(),
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
                "ADMIN_AUTH_FAILURES_PER_MINUTE",
                self.admin.auth_failures_per_minute >= 1,
                "at least 1",
                self.admin.auth_failures_per_minute.to_string(),
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
        self.check_redis()?;
        if self.engine_kind() == EngineKind::Redis {
            if !self.redis.configured() {
                return Err(bad(
                    "REDIS_URL",
                    "a redis:// URL, or REDIS_CLUSTER_NODES or REDIS_SENTINELS (the redis engine needs Redis and PostgreSQL)",
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
        if self.reuse_port && self.engine_kind() == EngineKind::Memory {
            // Each process would keep boards, marks and windows of its own: a player's retry
            // landing on another process would be decided twice.
            return Err(bad(
                "PODIUM_REUSE_PORT",
                "false with the memory engine (processes share state only through Redis)",
                "true",
            ));
        }
        if let Some(secret) = &self.jwt.secret {
            if secret.len() < 16 {
                return Err(bad("JWT_SECRET", "at least 16 characters", "(hidden)"));
            }
        }
        for (name, rules) in &self.campaigns {
            let key = format!("campaigns.{name}");
            if CampaignId::parse(name).is_none() {
                return Err(bad(
                    &key,
                    "a name of 1 to 64 letters, digits, - and _",
                    name,
                ));
            }
            if let Some((field, expected)) = rules.problem() {
                let got = serde_json::to_value(rules)
                    .ok()
                    .and_then(|v| v.get(field).map(|v| v.to_string()))
                    .unwrap_or_default();
                return Err(bad(&format!("{key}.{field}"), expected, got));
            }
        }
        self.admin.keys().map(|_| ())
    }
}

/// Shortest secret accepted outside dev mode: JWT_SECRET, SESSION_SECRET and each admin key.
pub const MIN_SECRET_BYTES: usize = 32;

impl Config {
    /// Outside dev mode, every secret must be set (JWT_SECRET with HS256, SESSION_SECRET),
    /// [`MIN_SECRET_BYTES`] or longer, and not a value anyone can read (`known`: the
    /// repository's files). The error names the key, never the value. Dev mode, which serves
    /// `POST /dev/token` to anyone anyway, is not held to it.
    pub fn check_secrets(&self, known: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        if self.dev_mode() {
            return Ok(());
        }
        let rule = |key: &str, value: &str| {
            if value.len() < MIN_SECRET_BYTES {
                Err(bad(
                    key,
                    "a secret of at least 32 bytes (scripts/dev-secrets makes some)",
                    format!("{} bytes", value.len()),
                ))
            } else if known(value) {
                Err(bad(
                    key,
                    "a secret of your own (scripts/dev-secrets makes some)",
                    "a value that appears in podium's repository, which anyone can read",
                ))
            } else {
                Ok(())
            }
        };
        let missing = |key: &str| {
            bad(
                key,
                "a secret of at least 32 bytes (required outside dev mode)",
                "nothing",
            )
        };
        if self.jwt.algorithm == JwtAlgorithm::HS256 {
            rule(
                "JWT_SECRET",
                self.jwt
                    .secret
                    .as_deref()
                    .ok_or_else(|| missing("JWT_SECRET"))?,
            )?;
        }
        let session = self.game.session_secret.as_deref();
        rule(
            "SESSION_SECRET",
            session.ok_or_else(|| missing("SESSION_SECRET"))?,
        )?;
        for key in self.admin.keys()? {
            rule(&format!("ADMIN_API_KEYS (key {:?})", key.name), &key.secret)?;
        }
        Ok(())
    }
}

impl JwtConfig {
    /// The verifier these settings describe. `generated_secret` stands in for a missing HS256
    /// secret (dev mode only).
    pub fn verifier(&self, generated_secret: Option<&str>) -> Result<TokenVerifier, ConfigError> {
        let rules = TokenRules {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway_secs,
            dev_ttl_secs: self.dev_token_ttl_secs,
        };
        let key = match self.algorithm {
            JwtAlgorithm::HS256 => self
                .secret
                .as_deref()
                .or(generated_secret)
                .ok_or_else(|| {
                    bad(
                        "JWT_SECRET",
                        "a secret of at least 16 characters (required outside dev mode)",
                        "",
                    )
                })?
                .to_owned(),
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => {
                let raw = self.public_key.as_deref().ok_or_else(|| {
                    bad("JWT_PUBLIC_KEY", "a PEM public key or a path to one", "")
                })?;
                if raw.trim_start().starts_with("-----BEGIN") {
                    raw.to_owned()
                } else {
                    std::fs::read_to_string(raw).map_err(|e| {
                        bad(
                            "JWT_PUBLIC_KEY",
                            "a PEM public key or a readable path to one",
                            format!("{raw}: {e}"),
                        )
                    })?
                }
            }
        };
        TokenVerifier::new(self.algorithm, key.as_bytes(), &rules).map_err(|e| {
            bad(
                "JWT_PUBLIC_KEY",
                &format!("a valid {} public key in PEM", self.algorithm),
                e,
            )
        })
    }
}

/// One admin API key: the name the audit log shows, and the secret a request presents.
#[derive(Clone)]
pub struct AdminKey {
    pub name: String,
    pub secret: String,
}

/// Shortest admin key accepted.
pub const MIN_ADMIN_KEY_LEN: usize = 24;

impl AdminConfig {
    /// The configured keys, each `name:secret`. A bad entry stops start-up naming
    /// `ADMIN_API_KEYS` and the entry's name, never its secret.
    pub fn keys(&self) -> Result<Vec<AdminKey>, ConfigError> {
        let mut keys: Vec<AdminKey> = Vec::new();
        for entry in &self.api_keys {
            let Some((name, secret)) = entry.split_once(':') else {
                return Err(bad(
                    "ADMIN_API_KEYS",
                    "name:key pairs (the name is what the audit log shows)",
                    "an entry without a name",
                ));
            };
            let valid_name = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid_name {
                return Err(bad(
                    "ADMIN_API_KEYS",
                    "key names of 1 to 32 letters, digits, -, _ and .",
                    name,
                ));
            }
            if secret.chars().count() < MIN_ADMIN_KEY_LEN {
                return Err(bad(
                    "ADMIN_API_KEYS",
                    "keys of at least 24 characters",
                    format!("key {name:?} is shorter"),
                ));
            }
            if keys.iter().any(|k| k.name == name) {
                return Err(bad("ADMIN_API_KEYS", "distinct key names", name));
            }
            keys.push(AdminKey {
                name: name.to_owned(),
                secret: secret.to_owned(),
            });
        }
        Ok(keys)
    }
}

impl Config {
    /// One way to reach Redis at a time, and keys that cannot move a hash tag.
    fn check_redis(&self) -> Result<(), ConfigError> {
        let r = &self.redis;
        if !r.cluster_nodes.is_empty() && r.url.is_some() {
            return Err(bad(
                "REDIS_CLUSTER_NODES",
                "to be set without REDIS_URL (a cluster is reached through its seed nodes)",
                r.cluster_nodes.join(","),
            ));
        }
        if !r.sentinels.is_empty() && (r.url.is_some() || !r.cluster_nodes.is_empty()) {
            return Err(bad(
                "REDIS_SENTINELS",
                "to be set without REDIS_URL and REDIS_CLUSTER_NODES (the sentinels name the master)",
                r.sentinels.join(","),
            ));
        }
        if !r.sentinels.is_empty() && r.master_name.is_none() {
            return Err(bad(
                "REDIS_MASTER_NAME",
                "the name the sentinels know the master by (REDIS_SENTINELS is set)",
                "",
            ));
        }
        for node in r.cluster_nodes.iter().chain(&r.sentinels) {
            if !node.starts_with("redis://") && !node.starts_with("rediss://") {
                let key = if r.cluster_nodes.contains(node) {
                    "REDIS_CLUSTER_NODES"
                } else {
                    "REDIS_SENTINELS"
                };
                return Err(bad(key, "redis://host:port URLs, comma-separated", node));
            }
        }
        if !(1..=1024).contains(&r.shards()) {
            return Err(bad(
                "REDIS_STREAM_SHARDS",
                "a whole number of streams from 1 to 1024",
                r.shards(),
            ));
        }
        if r.stream_max_backlog == 0 {
            return Err(bad(
                "REDIS_STREAM_MAX_BACKLOG",
                "a whole number of entries (at least 1)",
                0,
            ));
        }
        // A brace in the prefix would become the hash tag of every key, putting them all in
        // one cluster slot.
        if r.prefix.contains(['{', '}']) {
            return Err(bad(
                "REDIS_PREFIX",
                "a key prefix without { or }",
                &r.prefix,
            ));
        }
        Ok(())
    }
}
