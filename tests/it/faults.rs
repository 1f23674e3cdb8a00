//! Outages of PostgreSQL and Redis. Each test runs its own PostgreSQL or Redis on another
//! port (initdb/pg_ctl and redis-server are on the machine), so the shared services are never
//! stopped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn pg_bin(tool: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    let mut dirs: Vec<PathBuf> = versions.map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs.last().unwrap().join("bin").join(tool)
}

/// A PostgreSQL of its own, run as the `postgres` user (it refuses to run as root).
pub struct TempPostgres {
    dir: PathBuf,
    port: u16,
}

impl TempPostgres {
    /// A directory the `postgres` user owns and a free port, with nothing in them yet.
    fn empty() -> Self {
        let dir = std::env::temp_dir().join(format!("podium-pg-{}", unique_tag()));
        std::fs::create_dir_all(&dir).unwrap();
        run("chown", &["-R", "postgres", dir.to_str().unwrap()]);
        Self {
            dir,
            port: free_port(),
        }
    }

    pub fn start() -> Self {
        let pg = Self::empty();
        pg.as_postgres(
            &pg_bin("initdb"),
            &[
                "-D",
                pg.data().as_str(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        pg.up();
        pg
    }

    /// A streaming replica of this primary (`pg_basebackup -R`), started on a port of its own.
    pub fn replica(&self) -> Self {
        let replica = Self::empty();
        let port = self.port.to_string();
        replica.as_postgres(
            &pg_bin("pg_basebackup"),
            &[
                "-D",
                replica.data().as_str(),
                "-R",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
            ],
        );
        replica.up();
        replica
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, tool: &PathBuf, args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{} {args:?} failed", tool.display());
    }

    pub fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").to_string_lossy().into_owned();
        self.as_postgres(
            &pg_bin("pg_ctl"),
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// SIGSTOP on the server and every backend: connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        let postmaster = pid_file.lines().next().unwrap().trim().to_owned();
        let children = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .unwrap()
            .stdout;
        let children = String::from_utf8_lossy(&children);
        let mut pids: Vec<&str> = children.split_whitespace().collect();
        pids.push(&postmaster);
        let mut args = vec![format!("-{signal}")];
        args.extend(pids.iter().map(|p| p.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("kill", &args);
    }

    pub fn down(&self) {
        self.as_postgres(
            &pg_bin("pg_ctl"),
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(cmd: &str, args: &[&str]) {
    assert!(
        Command::new(cmd).args(args).status().unwrap().success(),
        "{cmd} {args:?}"
    );
}

/// A redis-server on `port` with its files in `dir`, AOF on (a restart keeps what was
/// acknowledged) and `extra` arguments; answers once it accepts connections.
pub fn redis_server(port: u16, dir: &std::path::Path, extra: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "redis did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A Redis of its own, with AOF so a restart keeps what was acknowledged.
pub struct TempRedis {
    dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl TempRedis {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("podium-redis-{}", unique_tag()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            dir,
            port: free_port(),
            child: None,
        };
        r.up();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn up(&mut self) {
        self.child = Some(redis_server(self.port, &self.dir, &[]));
    }

    /// SIGKILL: a crash, not a clean shutdown.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for TempRedis {
    fn drop(&mut self) {
        self.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A board of the `quick` campaign as (user, score) rows, from the public page route.
async fn board_rows(server: &TestServer, board: &str) -> Vec<(String, u64)> {
    let (_, page) = server
        .http(
            "GET",
            &format!("/leaderboard/quick/{board}?limit=100"),
            None,
        )
        .await;
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["score"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub async fn health(server: &TestServer) -> serde_json::Value {
    server.http("GET", "/health", None).await.1
}

pub fn has_issue(h: &serde_json::Value, check: &str) -> bool {
    h["issues"]
        .as_array()
        .is_some_and(|a| a.iter().any(|i| i["check"] == check))
}

#[tokio::test]
async fn postgres_down_results_are_still_accepted_and_written_once_when_it_returns() {
    let pg = TempPostgres::start();
    let server = TestServer::redis(|c| {
        c.postgres.url = Some(pg.url());
        c.postgres.pool_wait_timeout_ms = 300;
        c.health.persist_lag_warning_ms = 300;
        c.ws.rate_limit_max_messages = 1_000;
    });
    let mut p = server.player("steady").await;
    for score in 1..=5 {
        assert_eq!(p.play(score).await["status"], "accepted");
    }
    eventually("5 rows before the outage", || async {
        server.pg_count("results").await == 5
    })
    .await;

    pg.down();
    for score in 6..=15 {
        assert_eq!(
            p.play(score).await["status"],
            "accepted",
            "accepted into the stream while PostgreSQL is down"
        );
    }
    eventually(
        "/health warns of the outage and shows the backlog",
        || async {
            let h = health(&server).await;
            h["status"] == "warning"
                && has_issue(&h, "postgres_down")
                && h["metrics"]["persistBacklog"].as_u64() >= Some(10)
        },
    )
    .await;

    pg.up();
    eventually("all 15 rows once PostgreSQL is back", || async {
        server.pg_count("results").await == 15
    })
    .await;
    eventually("the backlog drained", || async {
        health(&server).await["metrics"]["persistBacklog"] == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.pg_count("results").await, 15, "none duplicated");
}

#[tokio::test]
async fn redis_down_falls_back_to_postgres_and_rebuilt_boards_match_postgres() {
    let mut redis = TempRedis::start();
    let server = TestServer::redis(|c| {
        use_redis_at(c, redis.url());
        c.redis.command_timeout_ms = 300;
        c.health.error_rate_warning = 0.01;
    });
    let mut players = Vec::new();
    for name in ["ra", "rb", "rc"] {
        players.push(server.player(name).await);
    }
    for (i, p) in players.iter_mut().enumerate() {
        assert_eq!(p.play(10 + i as u64).await["status"], "accepted");
    }
    eventually("persisted before the crash", || async {
        server.pg_count("results").await == 3
    })
    .await;

    // A game started before the crash is decided in Redis only: while Redis is away its submit
    // is refused with a retryable code and nothing is decided.
    let started_before = players[1].start_game("quick").await;
    redis.crash();
    eventually("/health says warning: redis_down", || async {
        let h = health(&server).await;
        h["status"] == "warning" && has_issue(&h, "redis_down")
    })
    .await;
    let held = players[1].submit(&started_before, 40).await;
    assert_eq!(
        (held["status"].as_str(), held["reason"].as_str()),
        (Some("rejected"), Some("unavailable")),
        "{held}"
    );
    assert!(
        has_issue(&health(&server).await, "error_rate"),
        "a submit the store could not decide is the service's error"
    );
    // Games started now are decided straight in PostgreSQL: ra overtakes everyone, rd is new.
    let r = players[0].play(50).await;
    assert_eq!(r["status"], "accepted", "{r}");
    let mut rd = server.player_in("rd", "eu").await;
    let fallback = rd.play(30).await;
    assert_eq!(fallback["status"], "accepted", "{fallback}");
    assert_eq!(
        server.pg_count("results").await,
        5,
        "acknowledged after the commit"
    );

    redis.up();
    eventually("fallback over", || async {
        !has_issue(&health(&server).await, "redis_down")
    })
    .await;
    // The held game's retry is decided now, once, in Redis.
    let retried = players[1].submit(&started_before, 40).await;
    assert_eq!(retried["status"], "accepted", "{retried}");
    eventually("the retried result in PostgreSQL", || async {
        server.pg_count("results").await == 6
    })
    .await;
    let board = board_rows(&server, "global").await;
    // The same board recomputed from PostgreSQL: best per player, ties to the earlier.
    let pool = podium_actors::store::postgres::pool(&server.config.postgres).unwrap();
    let mut expected = podium_actors::store::postgres::results::bests(&pool, "quick", None, None)
        .await
        .unwrap();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
    let expected: Vec<(String, u64)> = expected.into_iter().map(|(u, s, _)| (u, s)).collect();
    assert_eq!(board, expected);
    assert_eq!(board.first(), Some(&("ra".to_owned(), 50)));
    // The region board too, though its only result arrived during the outage.
    let eu = board_rows(&server, "region:eu").await;
    let expected_eu: Vec<(String, u64)> =
        podium_actors::store::postgres::results::bests(&pool, "quick", None, Some("eu"))
            .await
            .unwrap()
            .into_iter()
            .map(|(u, s, _)| (u, s))
            .collect();
    assert_eq!(eu, expected_eu);
    assert_eq!(eu, vec![("rd".to_owned(), 30)]);
}

#[tokio::test]
async fn a_shutdown_answers_the_submit_in_flight_and_the_batcher_writes_it() {
    let redis = TempRedis::start();
    let server = TestServer::redis(|c| {
        use_redis_at(c, redis.url());
        // Batches wait a minute: only the drain at shutdown can write this one. The command
        // timeout outlasts the batcher's blocking read, so the read returns with the entry.
        c.persist.flush_interval_ms = 60_000;
        c.redis.command_timeout_ms = 120_000;
        // A connection opened during the pause waits it out instead of failing the submit.
        c.redis.pool_wait_timeout_ms = 5_000;
    });
    let mut p = server.player("last-word").await;
    let session = p.start_game("quick").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Redis holds every command for a moment: the submit stays in flight meanwhile.
    run(
        "redis-cli",
        &[
            "-p",
            &redis.port.to_string(),
            "client",
            "pause",
            "700",
            "ALL",
        ],
    );
    p.send(serde_json::json!({"type":"submit","session": session,"score": 77,"id":"s"}))
        .await;
    // The pong proves the submit was read (frames are handled in order) and is waiting.
    p.send(serde_json::json!({"type":"ping","id":"after"}))
        .await;
    assert_eq!(p.recv().await["re"], "after");

    let config = server.config.clone();
    let stopped = tokio::spawn(server.shut_down());
    let result = p.recv().await;
    assert_eq!(
        (result["re"].as_str(), result["status"].as_str()),
        (Some("s"), Some("accepted")),
        "{result}"
    );
    assert_eq!(p.closed().await, (1001, "shutdown".into()));
    stopped.await.unwrap();
    assert_eq!(
        pg_count(&config, "results").await,
        1,
        "the batcher wrote what it held before the engine stopped"
    );
}

#[tokio::test]
async fn an_acknowledgement_redis_refuses_is_not_reported_as_postgres_down() {
    let redis = TempRedis::start();
    let server = TestServer::redis(|c| use_redis_at(c, redis.url()));
    let cli = |args: &[&str]| {
        let port = redis.port.to_string();
        let mut all = vec!["-p", port.as_str()];
        all.extend_from_slice(args);
        run("redis-cli", &all);
    };
    // Redis takes everything but the batcher's XACK: the batch is written, never acknowledged.
    cli(&["acl", "setuser", "default", "-xack"]);
    let mut p = server.player("unacked").await;
    assert_eq!(p.play(5).await["status"], "accepted");
    eventually("the row in PostgreSQL", || async {
        server.pg_count("results").await == 1
    })
    .await;
    eventually("the acknowledgement failed at least once", || async {
        let (_, metrics) = server.http_text("GET", "/metrics", None).await;
        metrics.contains("podium_persist_ack_failures_total")
    })
    .await;
    assert!(
        !has_issue(&health(&server).await, "postgres_down"),
        "PostgreSQL is fine: only Redis refused"
    );
    cli(&["acl", "setuser", "default", "+xack"]);
    eventually(
        "the stream drained once Redis takes the acknowledgement",
        || async { stream_backlog(&server.config).await == 0 },
    )
    .await;
    assert_eq!(
        server.pg_count("results").await,
        1,
        "rewritten, not duplicated"
    );
}

/// The operator's reads go to the read replica while it is up, and to the primary, without an
/// error, once it is stopped.
#[tokio::test]
async fn a_read_replica_serves_the_operators_reads_and_a_stopped_one_hands_them_to_the_primary() {
    let pg = TempPostgres::start();
    let replica = pg.replica();
    let server = TestServer::redis(|c| {
        c.postgres.url = Some(pg.url());
        c.postgres.read_url = Some(replica.url());
    });
    let reads = |on: &'static str| {
        let server = &server;
        async move {
            let (_, metrics) = server.http_text("GET", "/metrics", None).await;
            sample(
                &metrics,
                &format!("podium_postgres_operator_reads_total{{on=\"{on}\"}}"),
            )
            .unwrap_or(0.0)
        }
    };
    let kick = |user: &'static str| {
        let server = &server;
        async move {
            let path = format!("/admin/users/{user}/kick");
            let body = serde_json::json!({"reason": "r"});
            assert_eq!(server.admin("POST", &path, Some(body)).await.0, 200);
        }
    };
    let audited = |user: &'static str| {
        let server = &server;
        async move {
            let (status, page) = server.admin("GET", "/admin/audit?limit=50", None).await;
            assert_eq!(status, 200, "{page}");
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["target"].as_str().is_some_and(|t| t.contains(user)))
        }
    };
    kick("before").await;
    eventually("the audit entry, read on the replica", || async {
        audited("before").await && reads("replica").await > 0.0
    })
    .await;
    replica.down();
    let primary_before = reads("primary").await;
    kick("after").await;
    assert!(
        audited("after").await,
        "read at once, on the primary: the replica is down"
    );
    assert!(reads("primary").await > primary_before);
    eventually("the probe sets the replica aside", || async {
        let (_, metrics) = server.http_text("GET", "/metrics", None).await;
        sample(&metrics, "podium_postgres_replica_in_use") == Some(0.0)
    })
    .await;
}

/// During the fallback every submit is a PostgreSQL transaction; with every connection taken
/// past `DATABASE_POOL_WAIT_TIMEOUT`, a submit is answered the retryable `busy` (nothing
/// decided), never left hanging or `internal`, and its retry is decided once.
#[tokio::test]
async fn a_fallback_storm_past_the_pool_is_answered_busy_and_decided_on_retry() {
    let mut redis = TempRedis::start();
    let server = TestServer::redis(|c| {
        use_redis_at(c, redis.url());
        c.redis.command_timeout_ms = 300;
        c.postgres.pool_size = 1;
        c.postgres.pool_wait_timeout_ms = 5;
        c.ws.rate_limit_max_messages = 100_000;
        c.game.max_submits_per_minute = 100_000;
    });
    redis.crash();
    eventually("in the fallback", || async {
        has_issue(&health(&server).await, "redis_down")
    })
    .await;
    let mut players = Vec::new();
    for i in 0..40 {
        let mut p = server.player(&format!("storm{i}")).await;
        let session = p.start_game("quick").await;
        players.push((p, session));
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let storm = players.into_iter().map(|(mut p, session)| async move {
        let first = p.submit(&session, 7).await;
        let mut last = first.clone();
        for _ in 0..100 {
            if last["reason"] != "busy" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            last = p.submit(&session, 7).await;
        }
        (first, last)
    });
    let answers = futures_util::future::join_all(storm).await;
    let busy = answers
        .iter()
        .filter(|(f, _)| f["reason"] == "busy")
        .count();
    println!("fallback storm: {busy} of 40 first answers busy");
    assert!(busy > 0, "the pool was exceeded: {answers:?}");
    for (first, last) in &answers {
        assert!(
            first["status"] == "accepted" || first["reason"] == "busy",
            "{first}"
        );
        assert_eq!(last["status"], "accepted", "decided on retry: {last}");
    }
    assert_eq!(server.pg_count("results").await, 40, "each decided once");
}

/// A long PostgreSQL outage cannot fill Redis: at `REDIS_STREAM_MAX_BACKLOG` results not yet
/// written, submits are answered the retryable `busy` with nothing decided; when PostgreSQL
/// returns the backlog drains, the held sessions are decided on retry, and nothing
/// acknowledged is lost or trimmed.
#[tokio::test]
async fn postgres_down_with_the_backlog_at_its_bound_is_busy_then_drains_with_nothing_lost() {
    let pg = TempPostgres::start();
    let server = TestServer::redis(|c| {
        c.postgres.url = Some(pg.url());
        c.postgres.pool_wait_timeout_ms = 300;
        c.redis.stream_max_backlog = 4;
        // One stream, so the bound is exactly 4 on a cluster too (it is spread over shards).
        c.redis.stream_shards = Some(1);
        c.ws.rate_limit_max_messages = 1_000;
        c.game.max_submits_per_minute = 1_000;
    });
    let mut p = server.player("bounded").await;
    pg.down();
    let mut held = Vec::new();
    let mut accepted = 0;
    for score in 1..=8 {
        let session = p.start_game("quick").await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let answer = p.submit(&session, score).await;
        match (answer["status"].as_str(), answer["reason"].as_str()) {
            (Some("accepted"), _) => accepted += 1,
            (_, Some("busy")) => held.push((session, score)),
            other => panic!("accepted or busy, not {other:?}: {answer}"),
        }
    }
    assert_eq!(accepted, 4, "the bound: 4 results wait for PostgreSQL");
    assert_eq!(held.len(), 4, "the rest are held back, decided nowhere");
    assert_eq!(stream_backlog(&server.config).await, 4, "nothing trimmed");
    pg.up();
    eventually("the backlog drained", || async {
        stream_backlog(&server.config).await == 0
    })
    .await;
    for (session, score) in &held {
        let retried = p.submit(session, *score).await;
        assert_eq!(retried["status"], "accepted", "decided on retry: {retried}");
    }
    eventually("all 8 results in PostgreSQL, once", || async {
        server.pg_count("results").await == 8
    })
    .await;
    let scores = pg_pairs(&server.config, "SELECT session_id, score FROM results").await;
    let mut scores: Vec<i64> = scores.into_iter().map(|(_, s)| s).collect();
    scores.sort();
    assert_eq!(scores, (1..=8).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_counted_game_decided_in_postgres_while_redis_is_down_keeps_its_evidence() {
    use podium_actors::domain::campaign::CampaignRules;
    use podium_actors::domain::counting::Counting;
    let mut redis = TempRedis::start();
    let server = TestServer::redis(|c| {
        use_redis_at(c, redis.url());
        c.redis.command_timeout_ms = 300;
        let rules = CampaignRules {
            min_duration_ms: 1,
            counting: Some(Counting::default()),
            ..c.campaigns["quick"].clone()
        };
        c.campaigns.insert("quick-counted".into(), rules);
    });
    let mut p = server.player("outage").await;
    redis.crash();
    eventually("/health says redis_down", || async {
        has_issue(&health(&server).await, "redis_down")
    })
    .await;
    p.send(serde_json::json!({"type":"start_game","campaign":"quick-counted"}))
        .await;
    let session = p.recv_type("game_started").await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    p.send(serde_json::json!({"type":"input","session": session,"seq":0,"events":[[0,"tap"],[50,"tap"]]}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let result = p.submit(&session, 5).await;
    assert_eq!(
        (result["status"].as_str(), result["score"].as_u64()),
        (Some("accepted"), Some(2)),
        "{result}"
    );
    // Decided in PostgreSQL and answered after the commit: the evidence is there already.
    let id = result["session_id"].as_str().unwrap();
    let (status, seen) = server
        .admin("GET", &format!("/admin/sessions/{id}"), None)
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        (seen["claimed"].as_u64(), seen["flags"][0]["kind"].as_str()),
        (Some(5), Some("score_mismatch")),
        "{seen}"
    );
    assert_eq!(seen["input"]["events"].as_array().map(Vec::len), Some(2));
    redis.up();
}
