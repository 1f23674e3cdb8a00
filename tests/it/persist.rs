//! The production engine's durability: results reach PostgreSQL once, migrations apply once,
//! a session counts once across engines, and an acknowledged result survives kill -9. These
//! always run on the redis engine, against this machine's Redis and PostgreSQL.

use std::time::Duration;

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn accepted_results_and_refusals_reach_postgres_once() {
    let server = TestServer::redis(|_| {});
    let mut p = server.player("persisted").await;
    for score in 1..=5 {
        assert_eq!(p.play(score).await["status"], "accepted");
    }
    // A retried session is answered again but written once.
    let session = p.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    p.submit(&session, 9).await;
    p.submit(&session, 9).await;
    // Two refusals, recorded for review.
    let s = p.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(p.submit(&s, 5_000_000).await["reason"], "score_too_high");
    assert_eq!(p.submit("forged.token", 1).await["reason"], "bad_session");

    eventually("6 results in PostgreSQL", || async {
        server.pg_count("results").await == 6
    })
    .await;
    // Only the decided refusal is a flagged row; a forged token never names a session.
    eventually("1 flagged row", || async {
        server.pg_count("flagged").await == 1
    })
    .await;
    // The rows hold what the players were told, and nothing is left waiting in the stream.
    let scores = pg_pairs(
        &server.config,
        "SELECT user_id, score FROM results ORDER BY score",
    )
    .await;
    let scores: Vec<i64> = scores.into_iter().map(|(_, score)| score).collect();
    assert_eq!(
        scores,
        vec![1, 2, 3, 4, 5, 9],
        "the retried session kept its score"
    );
    assert_eq!(
        pg_pairs(&server.config, "SELECT reason, score FROM flagged").await,
        vec![("score_too_high".to_owned(), 5_000_000)]
    );
    eventually("every stream entry acknowledged", || async {
        stream_backlog(&server.config).await == 0
    })
    .await;
}

#[tokio::test]
async fn two_engines_starting_together_apply_each_migration_once() {
    let mut shared = podium::Config::default();
    use_redis_engine(&mut shared);
    let (a, b) = (shared.clone(), shared.clone());
    let start = |c: podium::Config| {
        std::thread::spawn(move || {
            TestServer::with(move |cfg| {
                *cfg = Config {
                    listen: "127.0.0.1:0".into(),
                    workers: 1,
                    dev_mode: Some(true),
                    ..c
                }
            })
        })
    };
    let (a, b) = (start(a), start(b));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(
        a.pg_count("schema_migrations").await,
        podium_actors::store::postgres::migrate::MIGRATIONS.len() as i64
    );
    assert_eq!(b.config.postgres.schema, a.config.postgres.schema);
}

#[tokio::test]
async fn the_same_session_submitted_to_two_engines_counts_once() {
    // Every test server signs sessions with the same SESSION_SECRET, as instances must.
    let one = TestServer::redis(|_| {});
    let two = TestServer::with(|c| *c = one.config.clone());
    let mut on_one = one.player("twice").await;
    let mut on_two = two.player("twice").await;
    let session = on_one.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    on_one
        .send(json!({"type":"submit","session": session,"score": 42}))
        .await;
    on_two
        .send(json!({"type":"submit","session": session,"score": 42}))
        .await;
    let (r1, r2) = (
        on_one.recv_type("result").await,
        on_two.recv_type("result").await,
    );
    assert_eq!(r1, r2, "both engines give the same answer");
    assert_eq!(r1["status"], "accepted");
    eventually("the result in PostgreSQL", || async {
        one.pg_count("results").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(one.pg_count("results").await, 1);
}

#[tokio::test]
async fn every_result_acknowledged_before_kill_9_is_in_postgres_after_a_restart() {
    let mut config = podium::Config::default();
    use_redis_engine(&mut config);
    // Batches held back for a minute: the kill lands with every result still unwritten.
    let mut engine = ProcessServer::spawn(
        &config,
        None,
        &[
            ("PERSIST_FLUSH_INTERVAL", "60000"),
            ("PERSIST_BATCH_SIZE", "100000"),
        ],
    )
    .await;
    let url = format!("ws://{}/ws", engine.addr);
    let mut acked = 0;
    for p in 0..4 {
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let mut c = Client { ws };
        c.send(json!({"type":"auth","token": token_with(&format!("k{p}"), now_secs() + 60, jsonwebtoken::Algorithm::HS256, SECRET.as_bytes())})).await;
        c.recv().await;
        for score in 1..=10 {
            if c.play(score).await["status"] == "accepted" {
                acked += 1;
            }
        }
    }
    // A counted game too: its input log is part of what was acknowledged.
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut c = Client { ws };
    c.send(json!({"type":"auth","token": token_with("kc", now_secs() + 60, jsonwebtoken::Algorithm::HS256, SECRET.as_bytes())})).await;
    c.recv().await;
    c.send(json!({"type":"start_game","campaign":"quick-counted"}))
        .await;
    let session = c.recv_type("game_started").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    c.send(json!({"type":"input","session": session,"seq":0,"events":[[0,"tap"],[40,"tap"],[90,"tap"]]}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let counted = c.submit(&session, 3).await;
    assert_eq!(
        (counted["status"].as_str(), counted["score"].as_u64()),
        (Some("accepted"), Some(3)),
        "{counted}"
    );
    assert_eq!(acked, 40);
    assert_eq!(
        pg_count(&config, "results").await,
        0,
        "nothing was written before the kill"
    );
    engine.child.kill().unwrap(); // SIGKILL
    engine.child.wait().unwrap();

    let _restarted = ProcessServer::spawn(&config, None, &[("PERSIST_FLUSH_INTERVAL", "20")]).await;
    eventually("all 41 acknowledged results in PostgreSQL", || async {
        pg_count(&config, "results").await == 41
    })
    .await;
    let logs = pg_pairs(&config, "SELECT session_id, length(log)::int8 FROM inputs").await;
    assert_eq!(logs.len(), 1, "the counted game's input log: {logs:?}");
    assert_eq!(Some(logs[0].0.as_str()), counted["session_id"].as_str());
}

#[tokio::test]
async fn results_left_pending_by_a_dead_engine_are_claimed_and_written_by_another() {
    use podium_actors::domain::decision::Attempt;
    use podium_actors::domain::ids::{BoardKey, CampaignId, UserId};
    use podium_actors::persistence_batcher::GROUP;

    let mut config = podium::Config::default();
    use_redis_engine(&mut config);
    // An engine that read three results and died before writing them: they are pending on
    // its consumer name in the group.
    let store = podium_actors::store::durable::Durable::connect(&config).unwrap();
    store.redis.ensure_group(GROUP).await.unwrap();
    let now = podium_actors::domain::clock::now_ms();
    let campaign = CampaignId::new("quick");
    let boards = [(BoardKey::all_for(&campaign, now, None).remove(0), None)];
    for i in 0..3 {
        let user = UserId::parse(&format!("orphan{i}")).unwrap();
        let session = format!("orphaned-{i}");
        let attempt = Attempt {
            session_id: &session,
            user: &user,
            campaign: &campaign,
            score: 10 + i,
            started_ms: now - 1_000,
            now_ms: now,
            keep_until_ms: now + 60_000,
            refused: None,
            region: None,
            boards: &boards,
            fallback: false,
            limit: None,
            counted: None,
        };
        store.redis.decide(&attempt).await.unwrap();
    }
    let taken = store
        .redis
        .read_group(GROUP, "dead-engine", 10, false, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(taken.len(), 3);

    // Another engine, with its own consumer name, takes them over once they are idle.
    let survivor = TestServer::with(|c| {
        *c = Config {
            listen: "127.0.0.1:0".into(),
            workers: 1,
            dev_mode: Some(true),
            ..config.clone()
        };
        c.persist.consumer = Some("survivor".into());
        c.persist.claim_idle_ms = 200;
        c.persist.flush_interval_ms = 20;
    });
    eventually("the orphaned results in PostgreSQL", || async {
        survivor.pg_count("results").await == 3
    })
    .await;
    assert_eq!(
        pg_pairs(
            &survivor.config,
            "SELECT user_id, score FROM results ORDER BY score"
        )
        .await,
        vec![
            ("orphan0".into(), 10),
            ("orphan1".into(), 11),
            ("orphan2".into(), 12)
        ]
    );
    eventually("nothing left pending", || async {
        stream_backlog(&survivor.config).await == 0
    })
    .await;
}

/// `PG_RETENTION_DAYS`: a day's partitions of `results` and `flagged` older than the retention
/// are detached and dropped (or kept detached with `PG_ARCHIVE`) once every campaign in them has
/// ended; a partition holding a row of a campaign that has not ended stays, however old.
#[tokio::test]
async fn old_partitions_of_ended_campaigns_age_out_and_others_stay() {
    use podium_actors::domain::ids::utc_date;
    use podium_actors::store::postgres::results::age_out;
    let server = TestServer::redis(|_| {});
    let (status, body) = server
        .admin(
            "POST",
            "/admin/campaigns",
            Some(serde_json::json!({
                "name": "oldie", "title": "Old", "starts_at": null, "ends_at": null,
                "rules": {"min_duration_ms": 0, "max_duration_ms": 60000, "max_score": 500,
                          "max_score_per_second": 1000000}
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let pool = podium_actors::store::postgres::pool(&server.config.postgres).unwrap();
    let client = pool.get().await.unwrap();
    let now = podium_actors::domain::clock::now_ms();
    let day = |ago: u64| utc_date(now - ago * 86_400_000);
    // Days 10 and 8 ago hold only `oldie`, which ends below; day 9 ago holds a `quick` result
    // and a `quick` refusal too, and `quick` never ends. Each day has a result and a refusal.
    for (ago, campaigns) in [
        (10, &["oldie"][..]),
        (9, &["oldie", "quick"]),
        (8, &["oldie"]),
    ] {
        let (from, to) = (day(ago), day(ago - 1));
        for table in ["results", "flagged"] {
            let name = format!("{table}_{}", from.replace('-', ""));
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ('{from} 00:00+00') TO ('{to} 00:00+00')"
                ))
                .await
                .unwrap();
        }
        for c in campaigns {
            let at = format!("{from} 01:00+00");
            client
                .execute(
                    "INSERT INTO results (session_id, started_at, user_id, campaign_id, score, accepted_at)
                     VALUES ($1, $2::text::timestamptz, 'u', $3, 1, $2::text::timestamptz)",
                    &[&format!("s-{c}-{ago}"), &at, c],
                )
                .await
                .unwrap();
            client
                .execute(
                    "INSERT INTO flagged (session_id, user_id, campaign_id, reason, score, started_at, flagged_at)
                     VALUES ($1, 'u', $3, 'too_fast', 1, $2::text::timestamptz, $2::text::timestamptz)",
                    &[&format!("f-{c}-{ago}"), &at, c],
                )
                .await
                .unwrap();
        }
    }
    let (results_before, flagged_before) = (
        server.pg_count("results").await,
        server.pg_count("flagged").await,
    );
    assert!(
        age_out(&pool, now, 3, false).await.unwrap().is_empty(),
        "oldie has not ended yet: nothing ages out"
    );
    client
        .execute(
            "UPDATE campaigns SET closed_at = now() - interval '20 days' WHERE id = 'oldie'",
            &[],
        )
        .await
        .unwrap();
    let name = |table: &str, ago: u64| format!("{table}_{}", day(ago).replace('-', ""));
    assert_eq!(
        age_out(&pool, now, 9, false).await.unwrap(),
        vec![name("results", 10), name("flagged", 10)],
        "of the ended campaign's days, only the one past 9 days"
    );
    assert_eq!(
        age_out(&pool, now, 3, true).await.unwrap(),
        vec![name("results", 8), name("flagged", 8)],
        "kept detached; day 9 holds rows of quick, which has not ended"
    );
    let tables = pg_pairs(
        &server.config,
        "SELECT relname::text, 0::int8 FROM pg_class WHERE relnamespace = current_schema()::regnamespace
           AND relkind IN ('r', 'p') AND relname ~ '(results|flagged)_2' ORDER BY 1",
    )
    .await;
    let tables: Vec<&str> = tables.iter().map(|(t, _)| t.as_str()).collect();
    for table in ["results", "flagged"] {
        assert!(
            tables.contains(&format!("archived_{}", name(table, 8)).as_str()),
            "{tables:?}"
        );
        assert!(
            !tables.contains(&name(table, 10).as_str()),
            "dropped: {tables:?}"
        );
        assert!(
            tables.contains(&name(table, 9).as_str()),
            "quick's day stays: {tables:?}"
        );
    }
    assert_eq!(server.pg_count("results").await, results_before - 2);
    assert_eq!(server.pg_count("flagged").await, flagged_before - 2);
}

#[tokio::test]
async fn an_ended_campaigns_boards_expire_in_redis_and_come_back_rebuilt_when_it_reopens() {
    use podium_actors::domain::clock::now_ms;
    use podium_actors::domain::ids::{BoardKey, BoardKind, CampaignId, Region};
    use podium_actors::store::durable::Durable;
    use podium_actors::store::postgres::operators;
    use std::sync::Arc;
    let server = TestServer::redis(|c| c.redis.campaign_ttl_days = 1);
    let mut amy = server.player_in("amy", "eu").await;
    assert_eq!(amy.play(300).await["status"], "accepted");
    let mut zed = server.player_in("zed", "eu").await;
    assert_eq!(zed.play(900).await["status"], "accepted");
    // A banned player's best is held aside, to come back when the ban is lifted.
    let (status, _) = server
        .admin(
            "POST",
            "/admin/users/zed/ban",
            Some(json!({"reason": "bot"})),
        )
        .await;
    assert_eq!(status, 200);
    eventually("both results in PostgreSQL", || async {
        server.pg_count("results").await == 2 && stream_backlog(&server.config).await == 0
    })
    .await;
    let store = Durable::connect(&server.config).unwrap();
    // Read in Redis, not through the HTTP read cache.
    let board = |name: &'static str| {
        let store = store.clone();
        async move {
            let kind = match name.strip_prefix("region:") {
                Some(r) => BoardKind::Region(Region::parse(r).unwrap()),
                None => BoardKind::Global,
            };
            let key = BoardKey::of(&CampaignId::new("quick"), &kind, now_ms());
            let top = store.redis.top(&key, 10).await.unwrap();
            top.into_iter()
                .map(|e| e.user.as_str().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let quick = operators::campaign(&store.pg, "quick")
        .await
        .unwrap()
        .expect("the configured campaign");
    let sweep = |c: &podium_actors::domain::campaign::Campaign| {
        let (store, c) = (store.clone(), Arc::new(c.clone()));
        async move { store.expire_ended(&[c], now_ms()).await }
    };
    let ended_expiring_in = |ms: u64| {
        let mut c = quick.clone();
        c.rules.ends_at_ms = Some(now_ms() + ms - 86_400_000);
        c
    };

    // Ended a day ago but for 2 s: the boards stay until then, then Redis drops them with no
    // further sweep.
    let ended = ended_expiring_in(2_000);
    sweep(&ended).await;
    assert_eq!(board("global").await, ["amy"]);
    assert_eq!(board("region:eu").await, ["amy"]);
    eventually("the ended campaign's boards expired", || async {
        board("global").await.is_empty() && board("region:eu").await.is_empty()
    })
    .await;
    // Built again past the deadline (`podium rebuild`, a recovery): the next sweep drops them.
    store
        .rebuild_boards("quick", &ended.rules, now_ms(), false)
        .await
        .unwrap();
    assert_eq!(board("global").await, ["amy"]);
    sweep(&ended).await;
    assert!(board("global").await.is_empty());
    assert!(board("region:eu").await.is_empty());

    // Reopened: rebuilt from PostgreSQL, still without the banned player, who comes back
    // with the ban lifted (the held best outlived the boards).
    sweep(&quick).await;
    assert_eq!(board("global").await, ["amy"]);
    assert_eq!(board("region:eu").await, ["amy"]);
    server.admin("DELETE", "/admin/users/zed/ban", None).await;
    assert_eq!(board("global").await, ["zed", "amy"]);

    // Ended, then reopened before the deadline: the boards lose their deadline.
    let ending = ended_expiring_in(1_500);
    sweep(&ending).await;
    sweep(&quick).await;
    let deadline = ending.rules.ends_at_ms.unwrap() + 86_400_000;
    tokio::time::sleep(Duration::from_millis(
        deadline.saturating_sub(now_ms()) + 500,
    ))
    .await;
    assert_eq!(board("global").await, ["zed", "amy"]);
    assert_eq!(board("region:eu").await, ["zed", "amy"]);
}

#[tokio::test]
async fn a_counted_results_claim_flags_and_input_log_are_in_postgres_once_acknowledged() {
    use podium_actors::domain::counting::Drop;
    use podium_actors::domain::input_log::{Fate, InputLog};
    let server = TestServer::redis(|_| {});
    let mut p = server.player("evidence").await;
    p.send(json!({"type":"start_game","campaign":"tap-rush"}))
        .await;
    let session = p.recv_type("game_started").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    // Two taps on time, one stamped before the last (dropped), then a claim of 50.
    p.send(json!({"type":"input","session": session,"seq":0,"events":[[5,"tap"],[200,"tap"],[100,"tap"]]}))
        .await;
    tokio::time::sleep(Duration::from_millis(2_050)).await;
    let result = p.submit(&session, 50).await;
    assert_eq!(
        (result["score"].as_u64(), result["status"].as_str()),
        (Some(2), Some("accepted"))
    );
    let id = result["session_id"].as_str().unwrap().to_owned();
    eventually("the result, its flag and its log in PostgreSQL", || async {
        server.pg_count("inputs").await == 1 && server.pg_count("result_flags").await == 1
    })
    .await;
    let rows = pg_pairs(
        &server.config,
        &format!("SELECT kind || ':' || value || ':' || limit_value, events::int8 FROM result_flags WHERE session_id = '{id}'"),
    )
    .await;
    assert_eq!(rows, [("score_mismatch:50:2".to_owned(), 2)]);
    let claimed = pg_pairs(
        &server.config,
        &format!("SELECT 'claimed', claimed_score FROM results WHERE session_id = '{id}'"),
    )
    .await;
    assert_eq!(claimed, [("claimed".to_owned(), 50)]);
    let pool = podium_actors::store::postgres::pool(&server.config.postgres).unwrap();
    let row = pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT log, dropped::text FROM inputs WHERE session_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let log = InputLog::decode(row.get::<_, &[u8]>(0)).unwrap();
    let fates: Vec<(i64, Fate)> = log.events.iter().map(|e| (e.t_ms, e.fate)).collect();
    assert_eq!(
        fates,
        [
            (5, Fate::Counted),
            (200, Fate::Counted),
            (100, Fate::Dropped(Drop::Backwards))
        ]
    );
    assert_eq!(row.get::<_, &str>(1), r#"{"backwards": 1}"#);
}
