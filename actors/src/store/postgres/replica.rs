//! The read replica (`DATABASE_READ_URL`): a streaming replica of the primary that serves the
//! operator's reads (the review queue, exports, a player's page, archives, the audit log), so
//! they never take the connections the batcher needs to keep the backlog at zero. What must
//! see the latest write reads the primary: deciding (the fallback's earlier-decision check),
//! rebuilds (a lagging replica would miss results and leave boards short), campaigns (an edit
//! checks the version it read) and bans (a ban must hold from the moment it was recorded).
//!
//! A probe every second measures the replay lag; a replica down, lagging past
//! `PG_REPLICA_MAX_LAG_MS` or failing a read is skipped for the primary, never an error.

use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;

use super::pool;
use crate::store::error::StoreError;
use crate::telemetry;

/// How far behind the replica's replay is, ms: 0 when it has replayed all it received (an
/// idle primary sends nothing, so the time since the last replayed commit is no lag).
const LAG: &str = "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
    ELSE COALESCE((extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::int8, 0) END";

pub struct Replica {
    pool: Pool,
    max_lag_ms: u64,
    /// Up and within the lag bound at the last probe (and no read failed since).
    usable: AtomicBool,
}

impl Replica {
    pub fn new(pool: Pool, max_lag_ms: u64) -> Self {
        Self {
            pool,
            max_lag_ms,
            usable: AtomicBool::new(false),
        }
    }

    /// Measures the lag and decides whether the replica serves reads until the next probe.
    pub async fn probe(&self) {
        let lag: Result<i64, StoreError> = pool::timed("replica_lag", async {
            let client = pool::get(&self.pool).await?;
            let row = client.query_one(LAG, &[]).await.map_err(pool::pg_err)?;
            Ok(row.get(0))
        })
        .await;
        let usable = lag
            .as_ref()
            .is_ok_and(|&ms| ms.max(0) as u64 <= self.max_lag_ms);
        if usable != self.usable.swap(usable, Ordering::Relaxed) {
            match &lag {
                Ok(ms) if usable => tracing::info!(lag_ms = ms, "read replica in use"),
                Ok(ms) => tracing::warn!(
                    lag_ms = ms,
                    max = self.max_lag_ms,
                    "read replica lags; reading the primary"
                ),
                Err(err) => tracing::warn!(%err, "read replica unreachable; reading the primary"),
            }
        }
        telemetry::replica_state(lag.ok(), usable);
    }

    /// Runs an operator's read here if the replica is usable; `None` when it is not, or when
    /// the read failed (which also sets it aside until the next probe).
    pub async fn read<T>(&self, what: &impl AsyncFn(&Pool) -> Result<T, StoreError>) -> Option<T> {
        if !self.usable.load(Ordering::Relaxed) {
            return None;
        }
        match what(&self.pool).await {
            Ok(v) => Some(v),
            Err(err) => {
                tracing::warn!(%err, "a read on the replica failed; reading the primary");
                self.usable.store(false, Ordering::Relaxed);
                None
            }
        }
    }
}
