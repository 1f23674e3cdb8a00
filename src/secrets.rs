//! Secrets that cannot be left at a default: outside dev mode podium starts only with its
//! secrets set, 32 bytes or longer, and none of them a value that appears in this repository's
//! files (an example, a test's key, a placeholder), which anyone can read. The rule itself is
//! [`Config::check_secrets`]; this module knows the repository's values, hashed at build time
//! by build.rs.

use podium_actors::config::{Config, ConfigError};

mod known {
    include!(concat!(env!("OUT_DIR"), "/known_values.rs"));
}

/// Whether `value` appears in the repository's files.
pub fn in_repository(value: &str) -> bool {
    known::KNOWN
        .binary_search(&crate::fnv::fnv1a(value.as_bytes()))
        .is_ok()
}

pub fn check(config: &Config) -> Result<(), ConfigError> {
    config.check_secrets(in_repository)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_written_in_the_repository_are_known_and_fresh_ones_are_not() {
        // This very line puts it in the repository.
        assert!(in_repository(
            "a-value-written-in-the-repository-0123456789"
        ));
        let fresh = podium_actors::domain::session::random_secret();
        assert!(!in_repository(&fresh));
    }
}
