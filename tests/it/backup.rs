//! Backups that restore: scripts/backup of a database holding results, an operator's campaign,
//! a flagged attempt and a ban; scripts/restore into a fresh database and an empty Redis
//! prefix; the boards rebuilt there are the boards the original served, and every table
//! holds what it held.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::*;

const TABLES: [&str; 5] = ["results", "flagged", "campaigns", "bans", "audit"];

async fn boards(server: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    for campaign in ["quick", "spring"] {
        let (status, body) = server
            .http("GET", &format!("/leaderboard/{campaign}/global"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        out.push(body["rows"].clone());
    }
    out
}

fn script(name: &str, envs: &[(&str, &str)], arg: &str) {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/").to_owned() + name)
        .arg(arg)
        .envs(envs.iter().copied())
        .output()
        .expect("run the script");
    assert!(
        out.status.success(),
        "scripts/{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_backup_restored_into_a_fresh_database_rebuilds_the_same_boards() {
    let original = TestServer::redis(|_| {});
    let (status, body) = original
        .admin(
            "POST",
            "/admin/campaigns",
            Some(
                json!({"name": "spring", "title": "Spring", "starts_at": null, "ends_at": null,
                "rules": {"min_duration_ms": 0, "max_duration_ms": 60000, "max_score": 500,
                          "max_score_per_second": 1000000}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for (i, user) in ["ann", "bob", "cid", "dee"].iter().enumerate() {
        let mut p = original.player(user).await;
        assert_eq!(p.play(100 + i as u64 * 10).await["status"], "accepted");
        let session = p.start_game("spring").await;
        assert_eq!(
            p.submit(&session, 50 + i as u64).await["status"],
            "accepted"
        );
    }
    // A refused attempt, kept for review, and a banned player, off every board.
    let mut cheat = original.player("eve").await;
    let session = cheat.start_game("spring").await;
    assert_eq!(
        cheat.submit(&session, 5_000).await["reason"],
        "score_too_high"
    );
    let (status, body) = original
        .admin(
            "POST",
            "/admin/users/dee/ban",
            Some(json!({"reason": "bot", "until": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    eventually("every result is in PostgreSQL", || async {
        stream_backlog(&original.config).await == 0
    })
    .await;
    let before = boards(&original).await;
    assert_eq!(before[0].as_array().unwrap().len(), 3, "{before:?}");
    let mut counts = Vec::new();
    for table in TABLES {
        counts.push(original.pg_count(table).await);
    }
    assert!(counts.iter().all(|&n| n > 0), "{TABLES:?}: {counts:?}");

    let dump = std::env::temp_dir().join(format!("podium-backup-{}.dump", unique_tag()));
    let dump = dump.to_str().unwrap();
    let pg = &original.config.postgres;
    let url = pg.url.clone().unwrap();
    script(
        "backup",
        &[("DATABASE_URL", &url), ("DATABASE_SCHEMA", &pg.schema)],
        dump,
    );

    // A fresh database on the same server, and an empty Redis prefix.
    let fresh_db = format!("r_{}", unique_tag());
    let admin_db = podium_actors::store::postgres::pool(pg).unwrap();
    let client = admin_db.get().await.unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {fresh_db}"))
        .await
        .unwrap();
    let fresh_url = format!("{}/{fresh_db}", url.rsplit_once('/').unwrap().0);
    let fresh_prefix = format!("test:{}:", unique_tag());
    let (redis_key, redis_at) = redis_env(&original.config);
    script(
        "restore",
        &[
            ("DATABASE_URL", &fresh_url),
            ("DATABASE_SCHEMA", &pg.schema),
            (redis_key, &redis_at),
            ("REDIS_PREFIX", &fresh_prefix),
            ("PODIUM_BIN", env!("CARGO_BIN_EXE_podium")),
        ],
        dump,
    );
    // Restoring over a database that holds the schema is refused.
    let again = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/restore"))
        .arg(dump)
        .envs([
            ("DATABASE_URL", fresh_url.as_str()),
            ("DATABASE_SCHEMA", pg.schema.as_str()),
            (redis_key, redis_at.as_str()),
        ])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a restore over data went ahead");

    let restored = TestServer::redis(|c| {
        c.postgres.url = Some(fresh_url.clone());
        c.postgres.schema = original.config.postgres.schema.clone();
        c.redis.prefix = fresh_prefix.clone();
    });
    assert_eq!(boards(&restored).await, before);
    for (table, count) in TABLES.iter().zip(&counts) {
        assert_eq!(restored.pg_count(table).await, *count, "{table}");
    }
    restored.shut_down().await;
    drop(client);
    let _ = std::fs::remove_file(dump);
    let client = admin_db.get().await.unwrap();
    let _ = client
        .batch_execute(&format!("DROP DATABASE {fresh_db} WITH (FORCE)"))
        .await;
}
