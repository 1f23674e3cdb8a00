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
