//! Why a store call failed.

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store timed out")]
    Timeout,
    #[error("store command failed: {0}")]
    Command(String),
    #[error("corrupt {0} in the store")]
    Corrupt(&'static str),
    /// Over a bound the store keeps (the results stream's backlog, the database pool's wait):
    /// nothing was decided; the client retries later.
    #[error("store busy: {0}")]
    Busy(&'static str),
    /// The player is banned: nothing was decided.
    #[error("the player is banned")]
    Banned,
}

impl StoreError {
    /// The store could not be reached (as opposed to refusing a command): the case the
    /// PostgreSQL fallback is for.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout)
    }
}

/// How a store failure reaches a client: a ban the store saw is `banned`, a store out of reach
/// is the retryable `unavailable` and a store over its bound the retryable `busy` (nothing was
/// decided or changed in either), anything else `internal`.
impl From<StoreError> for crate::domain::error::ClientError {
    fn from(err: StoreError) -> Self {
        use crate::domain::error::ClientError;
        match err {
            StoreError::Banned => ClientError::Banned,
            StoreError::Busy(what) => {
                tracing::debug!(what, "store busy; the client retries");
                ClientError::Busy
            }
            err if err.is_unreachable() => {
                tracing::debug!(%err, "store unreachable; the client retries");
                ClientError::Unavailable
            }
            err => {
                tracing::warn!(%err, "store failed");
                ClientError::Internal
            }
        }
    }
}
