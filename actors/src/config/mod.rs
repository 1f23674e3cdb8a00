//! Configuration: the one struct ([`schema`]), the environment variables that override it
//! (`env.rs`, one row per key) and the checks that stop start-up on a bad value ([`validate`]).
//! Load order: compiled defaults (which `config/default.toml` mirrors, checked by a test),
//! then a TOML file, then environment variables. A bad value stops start-up with a message
//! naming the key and what it expects.

pub mod env;
pub mod error;
pub mod schema;
pub mod validate;

use std::path::Path;

pub use error::ConfigError;
pub use schema::*;
pub use validate::AdminKey;

use error::bad;

impl Config {
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

    /// Descriptors the process needs besides its sockets (listeners, the bus, log and event
    /// files, and sockets accepted but not yet refused) under a limit of `limit`: a fortieth of
    /// it, at least 64, plus twice the pools that are configured.
    fn descriptor_headroom(&self, limit: u64) -> u64 {
        let redis = self.redis.url.as_ref().map_or(0, |_| self.redis.pool_size);
        let postgres = self
            .postgres
            .url
            .as_ref()
            .map_or(0, |_| self.postgres.pool_size);
        (limit / 40).max(64) + (redis + postgres) as u64 * 2
    }

    /// Fits the socket cap to the process's descriptor limit, so a socket past it is refused
    /// with 503 `server_at_capacity` instead of failing its accept (which would leave the
    /// server short of descriptors for what is already connected). 0 takes what the limit
    /// leaves; a cap the limit cannot hold is a start-up error naming `WS_MAX_CONNECTIONS`.
    pub fn fit_descriptors(&mut self, limit: u64) -> Result<(), ConfigError> {
        let room = limit.saturating_sub(self.descriptor_headroom(limit));
        if room == 0 {
            return Err(bad(
                "WS_MAX_CONNECTIONS",
                "a descriptor limit (ulimit -n) that leaves room for sockets",
                format!("a limit of {limit}"),
            ));
        }
        let ws = &mut self.ws;
        if ws.max_connections == 0 {
            ws.max_connections = room as usize;
        } else if ws.max_connections as u64 > room {
            return Err(bad(
                "WS_MAX_CONNECTIONS",
                &format!("at most {room} under this process's descriptor limit of {limit} (raise ulimit -n, or leave it 0)"),
                ws.max_connections.to_string(),
            ));
        }
        Ok(())
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
}

#[cfg(test)]
mod tests {
    use super::env::ENV_VARS;
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
    fn the_socket_cap_fits_the_descriptor_limit() {
        let mut c = Config::default();
        c.fit_descriptors(20_000).unwrap();
        assert_eq!(c.ws.max_connections, 19_500);
        let mut pooled = Config::default();
        pooled.redis.url = Some("redis://127.0.0.1:6379".into());
        pooled.postgres.url = Some("postgres://127.0.0.1/test".into());
        pooled.fit_descriptors(20_000).unwrap();
        assert_eq!(pooled.ws.max_connections, 19_500 - (16 + 8) * 2);
        let mut small = Config::default();
        small.fit_descriptors(256).unwrap();
        assert_eq!(small.ws.max_connections, 256 - 64);
        let mut set = Config::default();
        set.ws.max_connections = 100;
        set.fit_descriptors(20_000).unwrap();
        assert_eq!(set.ws.max_connections, 100, "a cap the limit holds stays");
        set.ws.max_connections = 19_990;
        assert_eq!(
            set.fit_descriptors(20_000).unwrap_err().key,
            "WS_MAX_CONNECTIONS"
        );
        assert_eq!(
            Config::default().fit_descriptors(64).unwrap_err().key,
            "WS_MAX_CONNECTIONS"
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
        // Processes sharing a port must share their state.
        assert_eq!(
            with_env(&[("PODIUM_REUSE_PORT", "true")]).unwrap_err().key,
            "PODIUM_REUSE_PORT"
        );
        let shared = with_env(&[
            ("PODIUM_REUSE_PORT", "true"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("DATABASE_URL", "postgres://127.0.0.1/test"),
            ("JWT_SECRET", "0123456789abcdef0123"),
        ]);
        assert!(shared.unwrap().reuse_port);
    }

    #[test]
    fn one_way_to_reach_redis_at_a_time() {
        let nodes = "redis://127.0.0.1:7001,redis://127.0.0.1:7002";
        let pg = ("DATABASE_URL", "postgres://127.0.0.1/test");
        let cluster = with_env(&[("REDIS_CLUSTER_NODES", nodes), pg]).unwrap();
        assert_eq!(cluster.engine_kind(), EngineKind::Redis);
        assert_eq!(cluster.redis.cluster_nodes.len(), 2);
        assert_eq!(cluster.redis.shards(), 16, "a cluster spreads its streams");
        assert_eq!(Config::default().redis.shards(), 1);
        let key = |pairs: &[(&str, &str)]| with_env(pairs).unwrap_err().key;
        assert_eq!(
            key(&[
                ("REDIS_CLUSTER_NODES", nodes),
                ("REDIS_URL", "redis://127.0.0.1:6379")
            ]),
            "REDIS_CLUSTER_NODES"
        );
        assert_eq!(
            key(&[("REDIS_CLUSTER_NODES", "127.0.0.1:7001")]),
            "REDIS_CLUSTER_NODES"
        );
        assert_eq!(
            key(&[("REDIS_SENTINELS", "redis://127.0.0.1:26379")]),
            "REDIS_MASTER_NAME"
        );
        assert_eq!(
            key(&[
                ("REDIS_SENTINELS", "redis://127.0.0.1:26379"),
                ("REDIS_MASTER_NAME", "podium"),
                ("REDIS_URL", "redis://127.0.0.1:6379")
            ]),
            "REDIS_SENTINELS"
        );
        assert_eq!(key(&[("REDIS_STREAM_SHARDS", "0")]), "REDIS_STREAM_SHARDS");
        assert_eq!(
            key(&[("REDIS_STREAM_SHARDS", "2000")]),
            "REDIS_STREAM_SHARDS"
        );
        assert_eq!(
            key(&[("REDIS_STREAM_MAX_BACKLOG", "0")]),
            "REDIS_STREAM_MAX_BACKLOG"
        );
        assert_eq!(key(&[("REDIS_PREFIX", "app{1}:")]), "REDIS_PREFIX");
        let sentinel = with_env(&[
            ("REDIS_SENTINELS", "redis://127.0.0.1:26379"),
            ("REDIS_MASTER_NAME", "podium"),
            pg,
        ])
        .unwrap();
        assert_eq!(sentinel.engine_kind(), EngineKind::Redis);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = Config::from_toml("[ws]\nmax_conections = 3\n").unwrap_err();
        assert!(err.got.contains("max_conections"), "{err}");
    }

    #[test]
    fn outside_dev_mode_secrets_must_be_set_long_and_not_known() {
        let good = "0123456789abcdef0123456789abcdef-own";
        let known = |v: &str| v == "a-value-copied-from-the-repository-0123";
        let production = |adjust: &dyn Fn(&mut Config)| {
            let mut c = Config::default();
            c.redis.url = Some("redis://127.0.0.1:6379".into());
            c.postgres.url = Some("postgres://127.0.0.1/test".into());
            c.jwt.secret = Some(good.into());
            c.game.session_secret = Some(format!("{good}-session"));
            c.admin.api_keys = vec![format!("ops:{good}-admin")];
            adjust(&mut c);
            c.check_secrets(known).err().map(|e| (e.key, e.got))
        };
        assert_eq!(production(&|_| {}), None);
        let key = |adjust: &dyn Fn(&mut Config)| production(adjust).map(|(k, _)| k);
        assert_eq!(key(&|c| c.jwt.secret = None).as_deref(), Some("JWT_SECRET"));
        assert_eq!(
            key(&|c| c.jwt.secret = Some("short-0123456789abcdef".into())).as_deref(),
            Some("JWT_SECRET")
        );
        let copied = production(&|c| {
            c.game.session_secret = Some("a-value-copied-from-the-repository-0123".into())
        })
        .unwrap();
        assert_eq!(copied.0, "SESSION_SECRET");
        assert!(
            !copied.1.contains("copied"),
            "the value is never shown: {}",
            copied.1
        );
        assert_eq!(
            key(&|c| c.game.session_secret = None).as_deref(),
            Some("SESSION_SECRET")
        );
        assert_eq!(
            key(&|c| c.admin.api_keys = vec!["ops:0123456789abcdef012345678".into()]).as_deref(),
            Some("ADMIN_API_KEYS (key \"ops\")")
        );
        // An RS256 deployment has no JWT secret to hold.
        assert_eq!(
            production(&|c| {
                c.jwt.algorithm = crate::domain::token::JwtAlgorithm::RS256;
                c.jwt.secret = None;
            }),
            None
        );
        // Dev mode, which hands out tokens to anyone, is not held to it.
        assert!(Config::default().check_secrets(|_| true).is_ok());
    }

    #[test]
    fn a_missing_secret_outside_dev_mode_names_the_key() {
        let err = JwtConfig::default().verifier(None).err().unwrap();
        assert_eq!(err.key, "JWT_SECRET");
        let rs = JwtConfig {
            algorithm: crate::domain::token::JwtAlgorithm::RS256,
            public_key: Some(
                "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----".into(),
            ),
            ..JwtConfig::default()
        };
        assert_eq!(rs.verifier(None).err().unwrap().key, "JWT_PUBLIC_KEY");
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
