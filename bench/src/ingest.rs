//! `ingest` (redis engine): M players submitting as fast as the rules allow; accepted/s, ack
//! latency p50/p99, PostgreSQL lag, and a check that the rows in PostgreSQL equal the acks.
//! Then the naive path in the same run: one INSERT and one ZADD per result, no batching, as
//! the older service did; and the ratio. With `--counted`, each player plays whole counted
//! games instead, streaming its taps, and the cost is per input event and per result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use anyhow::bail;

use crate::client::{cpu_s, health, ms, next_json, open, run_tag, Common};

#[derive(Clone)]
pub struct Db {
    pub url: String,
    pub schema: String,
}

impl Db {
    async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        client
            .batch_execute(&format!("SET search_path = {}", self.schema))
            .await?;
        Ok(client)
    }
}

/// Waits (up to 2 minutes) for the engine's backlog to drain, then counts the rows PostgreSQL
/// holds for users matching `pattern` (SQL LIKE); answers the seconds waited and the rows.
/// The backlog gauge is sampled once a second, so an empty one is believed once the rows
/// stop growing across two samples.
pub async fn persisted(common: &Common, db: &Db, pattern: &str) -> anyhow::Result<(f64, i64)> {
    let client = db.connect().await?;
    let count = async || -> anyhow::Result<i64> {
        Ok(client
            .query_one(
                "SELECT count(*) FROM results WHERE user_id LIKE $1",
                &[&pattern],
            )
            .await?
            .get(0))
    };
    let drain_started = Instant::now();
    let mut last = -1;
    while drain_started.elapsed() < Duration::from_secs(120) {
        let drained = health(&common.addr)
            .await
            .is_some_and(|h| h["metrics"]["persistBacklog"] == 0);
        let rows = count().await?;
        if drained && rows == last {
            break;
        }
        last = rows;
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let drain = drain_started.elapsed().as_secs_f64();
    Ok((drain, count().await?))
}

/// One player: keeps `pipeline` games in flight on one socket until `until`.
async fn ingest_player(
    common: Common,
    user: String,
    campaign: String,
    pipeline: usize,
    until: Instant,
    acks: Arc<AtomicU64>,
    latency: Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<()> {
    let (mut ws, _) = open(&common, &user).await?;
    let mut local = Histogram::<u64>::new(3).unwrap();
    let mut score = 0u64;
    while Instant::now() < until {
        for i in 0..pipeline {
            ws.feed(Message::Text(
                json!({"type":"start_game","campaign": campaign,"id": i})
                    .to_string()
                    .into(),
            ))
            .await?;
        }
        ws.flush().await?;
        let mut sessions = Vec::with_capacity(pipeline);
        while sessions.len() < pipeline {
            let v = next_json(&mut ws).await?;
            match v["type"].as_str() {
                Some("game_started") => {
                    sessions.push(v["session"].as_str().unwrap_or_default().to_owned())
                }
                Some("error") => bail!("start_game refused: {v}"),
                _ => {}
            }
        }
        // The server measures each game: it must last at least 1 ms to score at all.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut sent = std::collections::HashMap::with_capacity(pipeline);
        for (i, session) in sessions.iter().enumerate() {
            score += 1;
            sent.insert(i as u64, Instant::now());
            ws.feed(Message::Text(
                json!({"type":"submit","session": session,"score": score,"id": i})
                    .to_string()
                    .into(),
            ))
            .await?;
        }
        ws.flush().await?;
        while !sent.is_empty() {
            let v = next_json(&mut ws).await?;
            if v["type"] == "result" {
                let at = v["re"].as_u64().and_then(|i| sent.remove(&i));
                if let Some(at) = at {
                    local.record(at.elapsed().as_micros() as u64).ok();
                }
                if v["status"] == "accepted" {
                    acks.fetch_add(1, Ordering::Relaxed);
                } else if v["reason"] != "rate_limited" {
                    bail!("refused: {v}");
                }
            } else if v["type"] == "error" {
                bail!("error: {v}");
            }
        }
    }
    latency.lock().unwrap().add(&local).ok();
    let _ = ws.close(None).await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    common: Common,
    players: usize,
    seconds: u64,
    pipeline: usize,
    campaign: String,
    naive_seconds: u64,
    db: Db,
    redis_url: String,
) -> anyhow::Result<()> {
    let acks = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let cpu_before = cpu_s(common.server_pid);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for p in 0..players {
        let user = format!("ingest-{}-{p}", run_tag());
        tasks.push(tokio::spawn(ingest_player(
            common.clone(),
            user,
            campaign.clone(),
            pipeline,
            until,
            acks.clone(),
            latency.clone(),
        )));
    }
    // PostgreSQL lag as the engine reports it, once a second.
    let mut lag = Histogram::<u64>::new(3).unwrap();
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(h) = health(&common.addr).await {
            lag.record(h["metrics"]["persistLagMs"].as_u64().unwrap_or(0))
                .ok();
        }
    }
    let mut failed = 0;
    for t in tasks {
        if let Ok(Err(err)) = t.await {
            failed += 1;
            eprintln!("player failed: {err}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let acked = acks.load(Ordering::Relaxed);
    let (drain, rows) = persisted(&common, &db, &format!("ingest-{}-%", run_tag())).await?;
    // Over the run and the drain: persisting what was accepted is part of its cost.
    let cpu = match (cpu_before, cpu_s(common.server_pid)) {
        (Some(a), Some(b)) if acked > 0 => format!(
            "server_cpu={:.1}s cpu_per_accepted={:.0}us",
            b - a,
            (b - a) * 1e6 / acked as f64
        ),
        _ => "server_cpu=n/a".into(),
    };
    let l = latency.lock().unwrap().clone();
    let rate = acked as f64 / elapsed;
    println!(
        "ingest: players={players} pipeline={pipeline} accepted={acked} accepted_per_s={rate:.0} ack p50={:.2}ms p99={:.2}ms pg_lag p50={}ms max={}ms drain_after={drain:.1}s rows_in_postgres={rows} lost={} failed_players={failed} {cpu}",
        ms(&l, 0.5),
        ms(&l, 0.99),
        lag.value_at_quantile(0.5),
        lag.max(),
        acked as i64 - rows,
    );
    if naive_seconds > 0 {
        let naive = naive_path(&db, &redis_url, players, naive_seconds).await?;
        println!("naive: one INSERT + one ZADD per result, {players} workers: writes_per_s={naive:.0}; podium/naive ratio={:.1}", rate / naive);
    }
    Ok(())
}

/// What each player of a counted run plays.
pub struct CountedGame {
    pub campaign: String,
    pub game_ms: u64,
    pub taps_per_s: u64,
}

/// One player of a counted run: whole games, one at a time, until `until`; each streams its
/// taps every 250 ms, then submits their number. Counts the events sent and the acks whose
/// count equals the claim.
async fn counted_player(
    common: Common,
    user: String,
    game: Arc<CountedGame>,
    until: Instant,
    acks: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let (mut ws, _) = open(&common, &user).await?;
    // 0: no input at all, the same games' cost without their events (in a claimed campaign,
    // the claimed baseline).
    let per_flush = game.taps_per_s / 4;
    while Instant::now() < until {
        ws.send(Message::Text(
            json!({"type":"start_game","campaign": game.campaign})
                .to_string()
                .into(),
        ))
        .await?;
        let session = loop {
            let v = next_json(&mut ws).await?;
            match v["type"].as_str() {
                Some("game_started") => break v["session"].as_str().unwrap_or_default().to_owned(),
                Some("error") => bail!("start_game refused: {v}"),
                _ => {}
            }
        };
        let started = Instant::now();
        let (mut seq, mut taps) = (0u64, 0u64);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.tick().await;
        while started.elapsed() < Duration::from_millis(game.game_ms) {
            tick.tick().await;
            if per_flush == 0 {
                continue;
            }
            let now = started.elapsed().as_millis() as u64;
            // Spread over the last 250 ms, a little uneven, as a hand is.
            let batch: Vec<_> = (0..per_flush)
                .map(|i| {
                    json!([
                        now.saturating_sub(240 - i * 240 / per_flush - (taps % 7) * 3),
                        "tap"
                    ])
                })
                .collect();
            taps += per_flush;
            ws.send(Message::Text(
                json!({"type":"input","session": session,"seq": seq,"events": batch})
                    .to_string()
                    .into(),
            ))
            .await?;
            seq += 1;
        }
        events.fetch_add(taps, Ordering::Relaxed);
        ws.send(Message::Text(
            json!({"type":"submit","session": session,"score": taps})
                .to_string()
                .into(),
        ))
        .await?;
        loop {
            let v = next_json(&mut ws).await?;
            match v["type"].as_str() {
                Some("result") if v["status"] == "accepted" && v["score"] == taps => {
                    acks.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some("result") | Some("error") => bail!("not counted whole: {v}"),
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// `ingest --counted`: players playing whole counted games; the server's CPU per input event
/// and per result, and every ack's row in PostgreSQL.
pub async fn run_counted(
    common: Common,
    players: usize,
    seconds: u64,
    game: CountedGame,
    db: Db,
) -> anyhow::Result<()> {
    let (acks, events) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let game = Arc::new(game);
    let cpu_before = cpu_s(common.server_pid);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for p in 0..players {
        let user = format!("counted-{}-{p}", run_tag());
        tasks.push(tokio::spawn(counted_player(
            common.clone(),
            user,
            game.clone(),
            until,
            acks.clone(),
            events.clone(),
        )));
        // Starts spread over a flush, so the frames do not all arrive in one instant.
        tokio::time::sleep(Duration::from_micros(250_000 / players.max(1) as u64)).await;
    }
    let mut failed = 0;
    for t in tasks {
        if let Ok(Err(err)) = t.await {
            failed += 1;
            eprintln!("player failed: {err}");
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (acked, sent) = (acks.load(Ordering::Relaxed), events.load(Ordering::Relaxed));
    let (drain, rows) = persisted(&common, &db, &format!("counted-{}-%", run_tag())).await?;
    let cpu = match (cpu_before, cpu_s(common.server_pid)) {
        (Some(a), Some(b)) if acked > 0 => format!(
            "server_cpu={:.1}s cpu_per_event={:.1}us cpu_per_result={:.0}us",
            b - a,
            (b - a) * 1e6 / sent.max(1) as f64,
            (b - a) * 1e6 / acked as f64
        ),
        _ => "server_cpu=n/a".into(),
    };
    println!(
        "ingest: counted players={players} game_ms={} taps_per_s={} results={acked} events={sent} events_per_s={:.0} drain_after={drain:.1}s rows_in_postgres={rows} lost={} failed_players={failed} {cpu}",
        game.game_ms,
        game.taps_per_s,
        sent as f64 / elapsed,
        acked as i64 - rows,
    );
    Ok(())
}

/// The older service's path, for comparison: every result is one INSERT and one ZADD, awaited
/// in turn, by `workers` concurrent workers.
async fn naive_path(db: &Db, redis_url: &str, workers: usize, seconds: u64) -> anyhow::Result<f64> {
    let setup = db.connect().await?;
    setup.batch_execute("CREATE TABLE IF NOT EXISTS naive_results (session_id text PRIMARY KEY, user_id text NOT NULL, score bigint NOT NULL, accepted_at timestamptz NOT NULL DEFAULT now())").await?;
    let redis = redis::Client::open(redis_url)?;
    let board = format!("naive:{}", run_tag());
    let writes = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, mut conn) = (
            db.connect().await?,
            redis.get_multiplexed_async_connection().await?,
        );
        let (writes, board) = (writes.clone(), board.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let (session, user) = (format!("{}-{w}-{n}", run_tag()), format!("naive-{w}"));
                client.execute("INSERT INTO naive_results (session_id, user_id, score) VALUES ($1, $2, $3)", &[&session, &user, &(n as i64)]).await?;
                redis::cmd("ZADD").arg(&board).arg("GT").arg(n).arg(&user).query_async::<()>(&mut conn).await?;
                writes.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let mut conn = redis.get_multiplexed_async_connection().await?;
    redis::cmd("DEL")
        .arg(&board)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(writes.load(Ordering::Relaxed) as f64 / seconds as f64)
}
