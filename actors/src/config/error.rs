//! A configuration value podium cannot use: the message names the key and what it expects.

use std::fmt;

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

/// The error for `key`, which expected `expected` and was given `got`.
pub fn bad(key: &str, expected: &str, got: impl fmt::Display) -> ConfigError {
    ConfigError {
        key: key.into(),
        expected: expected.into(),
        got: got.to_string(),
    }
}
