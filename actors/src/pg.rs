//! PostgreSQL: the pool, migrations, daily partitions and the batched writes of results.
//!
//! The pool never opens more than `DATABASE_POOL_SIZE` connections and waits at most
//! `DATABASE_POOL_WAIT_TIMEOUT` for one; every statement runs under the session's
//! `statement_timeout`. Migrations are the numbered files of `migrations/`, compiled in,
//! applied in order under an advisory lock so engines starting together apply each once.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::PostgresConfig;
use crate::store::StoreError;

/// Every migration, in order. A test checks this lists every file of `migrations/`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "region",
        include_str!("../../migrations/0002_region.sql"),
    ),
];

/// Arbitrary but fixed: the advisory lock key that serializes migrations across engines.
const MIGRATION_LOCK: i64 = 0x706f_6469_756d; // "podium"

/// A result or a refused attempt read from the results stream, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub score: i64,
    pub started_ms: i64,
    pub at_ms: i64,
    /// `None` for an accepted result, else the refusal code.
    pub reason: Option<String>,
    /// The player's region, if their token named one.
    pub region: Option<String>,
}

pub fn pool(config: &PostgresConfig) -> Result<Pool, StoreError> {
    let url = config
        .url
        .as_deref()
        .ok_or(StoreError::Unavailable("DATABASE_URL is not set".into()))?;
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

fn pg_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Runs one PostgreSQL interaction and records its latency and outcome.
async fn timed<T>(
    what: &'static str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = call.await;
    crate::telemetry::pg_call(what, started.elapsed(), result.is_ok());
    result
}

/// The pool's connections, idle ones, and its cap.
pub fn pool_usage(pool: &Pool) -> (usize, usize, usize) {
    let s = pool.status();
    (s.size, s.available, s.max_size)
}

pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    pool.get()
        .await
        .map_err(pg_err)?
        .execute("SELECT 1", &[])
        .await
        .map_err(pg_err)?;
    Ok(())
}

/// Creates the schema if needed and applies the migrations not yet recorded. Safe to run from
/// several engines at once. Answers the versions it applied.
pub async fn migrate(pool: &Pool, schema: &str) -> Result<Vec<i32>, StoreError> {
    let mut client = pool.get().await.map_err(pg_err)?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .await
        .map_err(pg_err)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    let result = apply(&mut client).await;
    // Released even when a migration failed, so the next engine can try.
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    result
}

async fn apply(client: &mut deadpool_postgres::Object) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg_err)?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Command(format!("migration {version} ({name}): {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        tracing::info!(version, name, "migration applied");
        applied.push(*version);
    }
    Ok(applied)
}

/// Records the configured campaigns and their rules, so reports can join results to them.
pub async fn record_campaigns(
    pool: &Pool,
    campaigns: &std::collections::BTreeMap<String, crate::config::CampaignRules>,
) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(pg_err)?;
    for (id, r) in campaigns {
        let ms = |v: u64| v as i64;
        client
            .execute(
                "INSERT INTO campaigns (id, min_duration_ms, max_duration_ms, max_score, max_score_per_second, starts_at, ends_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, to_timestamp($6::int8 / 1000.0), to_timestamp($7::int8 / 1000.0), now())
                 ON CONFLICT (id) DO UPDATE SET min_duration_ms = $2, max_duration_ms = $3, max_score = $4,
                   max_score_per_second = $5, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, updated_at = now()",
                &[id, &ms(r.min_duration_ms), &ms(r.max_duration_ms), &ms(r.max_score), &ms(r.max_score_per_second), &r.starts_at_ms.map(ms), &r.ends_at_ms.map(ms)],
            )
            .await
            .map_err(pg_err)?;
    }
    Ok(())
}

/// Creates the daily partitions of `results` from yesterday to `ahead` days after today.
pub async fn ensure_partitions(pool: &Pool, now_ms: u64, ahead: u32) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(pg_err)?;
    for day in -1..=i64::from(ahead) {
        let start = crate::ids::utc_date((now_ms as i64 + day * 86_400_000).max(0) as u64);
        let end = crate::ids::utc_date((now_ms as i64 + (day + 1) * 86_400_000).max(0) as u64);
        let name = format!("results_{}", start.replace('-', ""));
        let sql = format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF results FOR VALUES FROM ('{start}') TO ('{end}')");
        if let Err(err) = client.batch_execute(&sql).await {
            // Rows for that day already sit in the default partition; they stay there and
            // remain correct, only unpartitioned.
            tracing::warn!(partition = name, %err, "could not create a results partition");
        }
    }
    Ok(())
}

/// Writes a batch in one transaction: accepted results into `results`, refusals into
/// `flagged`. Replays of rows already written are skipped, so a batch may be retried whole.
/// Answers how many rows were new.
pub async fn write_batch(pool: &Pool, rows: &[Row]) -> Result<u64, StoreError> {
    timed("write_batch", write_batch_untimed(pool, rows)).await
}

/// One column of a batch, for an `UNNEST($n::type[])` parameter.
fn column<T>(rows: &[&Row], field: fn(&Row) -> T) -> Vec<T> {
    rows.iter().map(|r| field(r)).collect()
}

async fn write_batch_untimed(pool: &Pool, rows: &[Row]) -> Result<u64, StoreError> {
    let mut client = pool.get().await.map_err(pg_err)?;
    let tx = client.transaction().await.map_err(pg_err)?;
    let (results, flagged): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.reason.is_none());
    let mut written = 0;
    if !results.is_empty() {
        let (col, num) = (
            |f: fn(&Row) -> String| column(&results, f),
            |f: fn(&Row) -> i64| column(&results, f),
        );
        written += tx
            .execute(
                "INSERT INTO results (session_id, started_at, user_id, campaign_id, score, accepted_at, region)
                 SELECT s, to_timestamp(st / 1000.0), u, c, sc, to_timestamp(at / 1000.0), NULLIF(r, '')
                 FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[]) AS t(s, st, u, c, sc, at, r)
                 ON CONFLICT DO NOTHING",
                &[&col(|r| r.session_id.clone()), &num(|r| r.started_ms), &col(|r| r.user_id.clone()), &col(|r| r.campaign_id.clone()), &num(|r| r.score), &num(|r| r.at_ms), &col(|r| r.region.clone().unwrap_or_default())],
            )
            .await
            .map_err(pg_err)?;
    }
    if !flagged.is_empty() {
        let (col, num) = (
            |f: fn(&Row) -> String| column(&flagged, f),
            |f: fn(&Row) -> i64| column(&flagged, f),
        );
        written += tx
            .execute(
                "INSERT INTO flagged (session_id, user_id, campaign_id, reason, score, started_at, flagged_at)
                 SELECT s, u, c, r, sc, to_timestamp(st / 1000.0), to_timestamp(at / 1000.0)
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[]) AS t(s, u, c, r, sc, st, at)
                 ON CONFLICT DO NOTHING",
                &[&col(|r| r.session_id.clone()), &col(|r| r.user_id.clone()), &col(|r| r.campaign_id.clone()), &col(|r| r.reason.clone().unwrap_or_default()), &num(|r| r.score), &num(|r| r.started_ms), &num(|r| r.at_ms)],
            )
            .await
            .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(written)
}

/// Records an attempt straight in PostgreSQL, for when Redis is unreachable (fallback): the
/// client is answered after the commit. The primary keys make it idempotent: a session
/// already decided keeps its first outcome. Best and rank are unknown without the boards, so
/// they are `None`.
pub async fn decide_directly(
    pool: &Pool,
    a: &crate::store::Attempt<'_>,
) -> Result<crate::store::Outcome, StoreError> {
    let client = pool.get().await.map_err(pg_err)?;
    let (started, at) = (a.started_ms as i64, a.now_ms as i64);
    let (user, campaign) = (a.user.as_str(), a.campaign.as_str());
    // An earlier outcome of the session, in either table, stands; only a session never
    // decided gets this attempt's verdict.
    const PRIOR: &str = "prior AS (
            SELECT score, NULL::text AS reason FROM results WHERE session_id = $1 AND started_at = to_timestamp($2::int8 / 1000.0)
            UNION ALL SELECT score, reason FROM flagged WHERE session_id = $1)";
    let sql = match a.refused {
        None => format!(
            "WITH {PRIOR}, ins AS (
                INSERT INTO results (session_id, started_at, user_id, campaign_id, score, accepted_at, region)
                SELECT $1, to_timestamp($2::int8 / 1000.0), $3, $4, $5, to_timestamp($6::int8 / 1000.0), $7
                WHERE NOT EXISTS (SELECT 1 FROM prior)
                ON CONFLICT DO NOTHING RETURNING score, NULL::text AS reason)
             SELECT score, reason FROM prior UNION ALL SELECT score, reason FROM ins LIMIT 1"
        ),
        Some(_) => format!(
            "WITH {PRIOR}, ins AS (
                INSERT INTO flagged (session_id, user_id, campaign_id, reason, score, started_at, flagged_at)
                SELECT $1, $3, $4, $7, $5, to_timestamp($2::int8 / 1000.0), to_timestamp($6::int8 / 1000.0)
                WHERE NOT EXISTS (SELECT 1 FROM prior)
                ON CONFLICT DO NOTHING RETURNING score, reason)
             SELECT score, reason FROM prior UNION ALL SELECT score, reason FROM ins LIMIT 1"
        ),
    };
    // $7 is the refusal for `flagged`, the region for `results`.
    let seventh: Option<&str> = match a.refused {
        Some(reason) => Some(reason),
        None => a.region.map(|r| r.as_str()),
    };
    let score = a.score as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &a.session_id,
        &started,
        &user,
        &campaign,
        &score,
        &at,
        &seventh,
    ];
    let params = &params[..];
    // Two engines racing on one session in fallback: the loser sees neither row and fails;
    // the client's retry then finds the winner's.
    let first = client.query_opt(&sql, params).await.map_err(pg_err)?;
    let row = first.ok_or(StoreError::Corrupt("fallback insert answered no row"))?;
    let score: i64 = row.get(0);
    let refused: Option<String> = row.get(1);
    Ok(crate::store::Outcome {
        user: a.user.clone(),
        score: score as u64,
        refused,
        best: None,
        rank: None,
    })
}

/// Each player's best in one campaign, with when they first reached it, from `since_ms` on:
/// what a board holds, recomputed from PostgreSQL.
pub async fn bests(
    pool: &Pool,
    campaign: &str,
    since_ms: Option<u64>,
    region: Option<&str>,
) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let client = pool.get().await.map_err(pg_err)?;
    let since = since_ms.map_or(0, |ms| ms as i64);
    let rows = client
        .query(
            "SELECT DISTINCT ON (user_id) user_id, score, (extract(epoch FROM accepted_at) * 1000)::int8
             FROM results
             WHERE campaign_id = $1 AND accepted_at >= to_timestamp($2::int8 / 1000.0) AND ($3::text IS NULL OR region = $3)
             ORDER BY user_id, score DESC, accepted_at ASC",
            &[&campaign, &since, &region],
        )
        .await
        .map_err(pg_err)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                r.get::<_, i64>(1) as u64,
                r.get::<_, i64>(2) as u64,
            )
        })
        .collect())
}

/// The regions a campaign's results came from (one board each).
pub async fn regions(pool: &Pool, campaign: &str) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await.map_err(pg_err)?;
    let rows = client
        .query(
            "SELECT DISTINCT region FROM results WHERE campaign_id = $1 AND region IS NOT NULL",
            &[&campaign],
        )
        .await
        .map_err(pg_err)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_compiled_in() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = super::MIGRATIONS
            .iter()
            .map(|(v, n, _)| format!("{v:04}_{n}.sql"))
            .collect();
        assert_eq!(files, listed);
    }
}
