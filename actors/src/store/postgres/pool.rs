//! The PostgreSQL pool. It never opens more than `DATABASE_POOL_SIZE` connections and waits at
//! most `DATABASE_POOL_WAIT_TIMEOUT` for one; every statement runs under the session's
//! `statement_timeout`, and with the schema on the search path.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::PostgresConfig;
use crate::store::error::StoreError;
use crate::telemetry;

/// The primary's pool.
pub fn pool(config: &PostgresConfig) -> Result<Pool, StoreError> {
    let url = config
        .url
        .as_deref()
        .ok_or(StoreError::Unavailable("DATABASE_URL is not set".into()))?;
    pool_at(config, url)
}

/// A pool of `url` with `config`'s size, timeouts and schema.
pub fn pool_at(config: &PostgresConfig, url: &str) -> Result<Pool, StoreError> {
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Unavailable(format!("DATABASE_URL: {e}")))?;
    pg.options(format!(
        "-c search_path={} -c statement_timeout={}",
        config.schema, config.statement_timeout_ms
    ));
    pg.connect_timeout(Duration::from_millis(
        config.pool_wait_timeout_ms.max(1_000),
    ));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let wait = Duration::from_millis(config.pool_wait_timeout_ms);
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait.max(Duration::from_secs(2))))
        .recycle_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// A connection from `pool`. Every connection staying taken past `DATABASE_POOL_WAIT_TIMEOUT`
/// is `Busy` (the caller is answered the retryable `busy`, not left hanging); failing to open
/// one is PostgreSQL unavailable.
pub async fn get(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    use deadpool_postgres::{PoolError, TimeoutType};
    pool.get().await.map_err(|e| match e {
        PoolError::Timeout(TimeoutType::Wait) => {
            telemetry::pg_pool_exhausted();
            StoreError::Busy("every PostgreSQL connection stayed in use")
        }
        e => pg_err(e),
    })
}

pub fn pg_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Runs one PostgreSQL interaction and records its latency and outcome.
pub async fn timed<T>(
    what: &'static str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = call.await;
    telemetry::pg_call(what, started.elapsed(), result.is_ok());
    result
}

pub fn pool_usage(pool: &Pool) -> telemetry::PoolUsage {
    let s = pool.status();
    telemetry::PoolUsage {
        size: s.size,
        idle: s.available,
        waiting: s.waiting,
        max: s.max_size,
    }
}

pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    timed("ping", async {
        get(pool)
            .await?
            .execute("SELECT 1", &[])
            .await
            .map_err(pg_err)?;
        Ok(())
    })
    .await
}
