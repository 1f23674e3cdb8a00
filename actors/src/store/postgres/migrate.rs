//! Migrations: the numbered files of `migrations/`, compiled in, applied in order under an
//! advisory lock so engines starting together apply each once.

use super::pool::{self, pg_err, timed};
use crate::store::error::StoreError;
use deadpool_postgres::Pool;

/// Every migration, in order. A test checks this lists every file of `migrations/`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../../migrations/0001_init.sql"),
    ),
    (
        2,
        "region",
        include_str!("../../../../migrations/0002_region.sql"),
    ),
    (
        3,
        "operators",
        include_str!("../../../../migrations/0003_operators.sql"),
    ),
    (
        4,
        "review",
        include_str!("../../../../migrations/0004_review.sql"),
    ),
    (
        5,
        "rebuild_index",
        include_str!("../../../../migrations/0005_rebuild_index.sql"),
    ),
    (
        6,
        "flagged_by_day",
        include_str!("../../../../migrations/0006_flagged_by_day.sql"),
    ),
    (
        7,
        "counted",
        include_str!("../../../../migrations/0007_counted.sql"),
    ),
    (
        8,
        "prizes",
        include_str!("../../../../migrations/0008_prizes.sql"),
    ),
];

/// Arbitrary but fixed: the advisory lock key that serializes migrations across engines.
const MIGRATION_LOCK: i64 = 0x706f_6469_756d; // "podium"

/// Creates the schema if needed and applies the migrations not yet recorded. Safe to run from
/// several engines at once. Answers the versions it applied.
pub async fn migrate(pool: &Pool, schema: &str) -> Result<Vec<i32>, StoreError> {
    timed("migrate", async {
        let mut client = pool::get(pool).await?;
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
    })
    .await
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
