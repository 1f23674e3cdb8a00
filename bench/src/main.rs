//! `podium-bench`: load generator for podium. Every scenario targets a server you started
//! (see README's Performance section) on 127.0.0.1, is bounded in count and time, and prints
//! one summary line of figures at the end.
//!
//! - `connect`: open N authenticated sockets at a ramp rate and hold them; handshake+auth
//!   latency p50/p99, errors, server RSS per connection.
//! - `fanout`: N members in one room while M players submit; tick-to-delivery latency of the
//!   diffs at every member p50/p99, submit-to-diff latency, frames/s, seq gaps.
//! - `ingest` (redis engine): M players submitting as fast as the rules allow; accepted/s,
//!   ack latency p50/p99, PostgreSQL lag, and a check that the rows in PostgreSQL equal the
//!   acks. Then the naive path in the same run: one INSERT and one ZADD per result, no
//!   batching, as the older service did; and the ratio.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser)]
#[command(name = "podium-bench", about = "Load generator for podium")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    addr: String,
    /// The server's JWT_SECRET (HS256): the bench mints its players' tokens.
    #[arg(long, default_value = "bench-secret-0123456789abcdef", global = true)]
    secret: String,
    /// PID of the server, to read its RSS from /proc.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open N authenticated sockets at a ramp rate and hold them.
    Connect {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// New sockets per second.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
        /// Seconds to hold them once all are open.
        #[arg(long, default_value_t = 10)]
        hold: u64,
    },
    /// N members in one room, M players submitting.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        members: usize,
        #[arg(long, default_value_t = 20)]
        players: usize,
        /// Seconds of submitting once all members joined.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value = "bench/global")]
        room: String,
        /// New member sockets per second while joining.
        #[arg(long, default_value_t = 2_000)]
        rate: u64,
    },
    /// M players submitting as fast as the rules allow (redis engine), then the naive path.
    Ingest {
        #[arg(long, default_value_t = 50)]
        players: usize,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Games each player keeps in flight.
        #[arg(long, default_value_t = 8)]
        pipeline: usize,
        #[arg(long, default_value = "bench")]
        campaign: String,
        /// Seconds of the naive path (0 skips it).
        #[arg(long, default_value_t = 10)]
        naive_seconds: u64,
        /// The server's PostgreSQL, to count rows (and for the naive path).
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        database_url: String,
        #[arg(long, env = "DATABASE_SCHEMA", default_value = "public")]
        database_schema: String,
        /// Redis, for the naive path.
        #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
        redis_url: String,
    },
}

/// Tags user names with this run, so a second run's players start with no best score (a
/// score below an earlier run's best would change no board and send no diff).
fn run_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| format!("{:x}", now_ms() % 0xFF_FFFF))
}

/// The fields of a server frame the bench reads; serde skips the rest without building it.
#[derive(serde::Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    seq: Option<u64>,
    server_time: Option<u64>,
    #[serde(default, borrow)]
    changed: Vec<Changed<'a>>,
}

#[derive(serde::Deserialize)]
struct Changed<'a> {
    #[serde(borrow)]
    user: std::borrow::Cow<'a, str>,
    score: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn token(secret: &str, user: &str) -> String {
    let claims = json!({"sub": user, "exp": now_ms() / 1000 + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Reads frames until a text frame arrives; answers pings on the way (tungstenite queues
/// the pong, the next write or flush sends it).
async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match ws.next().await.context("socket ended")?? {
            Message::Text(t) => return Ok(serde_json::from_str(&t)?),
            Message::Close(c) => bail!("closed: {c:?}"),
            _ => continue,
        }
    }
}

/// Connects and authenticates; answers the socket and the time it took.
async fn open(common: &Common, user: &str) -> anyhow::Result<(Ws, Duration)> {
    let started = Instant::now();
    // tungstenite zeroes its whole read buffer before each read: its 128 KiB default made
    // memset half of the bench's CPU. Game frames are small.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{}/ws", common.addr),
        Some(config),
        true,
    )
    .await?;
    ws.send(Message::Text(
        json!({"type":"auth","token": token(&common.secret, user)})
            .to_string()
            .into(),
    ))
    .await?;
    let welcome = next_json(&mut ws).await?;
    if welcome["type"] != "welcome" {
        bail!("auth refused: {welcome}");
    }
    Ok((ws, started.elapsed()))
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Opens `n` sockets at `rate` per second, each handed to `hold` once authenticated.
/// Answers the handshake+auth latency histogram (µs) and the error count.
async fn ramp<F, Fut>(
    common: &Common,
    n: usize,
    rate: u64,
    prefix: &str,
    hold: F,
) -> (Histogram<u64>, u64)
where
    F: Fn(usize, Ws) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let errors = Arc::new(AtomicU64::new(0));
    let gap = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((start + gap * i as u32).into()).await;
        let (common, latency, errors, hold) = (
            common.clone(),
            latency.clone(),
            errors.clone(),
            hold.clone(),
        );
        let user = format!("{prefix}-{}-{i}", run_tag());
        tasks.push(tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(30), open(&common, &user)).await {
                Ok(Ok((ws, took))) => {
                    latency.lock().unwrap().record(took.as_micros() as u64).ok();
                    hold(i, ws).await;
                }
                Ok(Err(err)) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("connect error: {err}");
                    }
                }
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Wait for every socket to be open (or failed). Tasks hold `latency` while they live, so if
    // every one ended without counting (a panic), the wait ends too instead of hanging.
    while Arc::strong_count(&latency) > 1
        && latency.lock().unwrap().len() + errors.load(Ordering::Relaxed) < n as u64
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(tasks);
    let h = latency.lock().unwrap().clone();
    (h, errors.load(Ordering::Relaxed))
}

async fn connect(common: Common, n: usize, rate: u64, hold_secs: u64) -> anyhow::Result<()> {
    let rss_before = rss_kib(common.server_pid);
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let hold = {
        let (stop, dropped) = (stop.clone(), dropped.clone());
        move |_, mut ws: Ws| {
            let (stop, dropped) = (stop.clone(), dropped.clone());
            async move {
                // Read to answer heartbeats until told to stop; a close here is an error.
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
                        Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        _ => {}
                    }
                }
                let _ = ws.close(None).await;
            }
        }
    };
    let started = Instant::now();
    let (h, errors) = ramp(&common, n, rate, "conn", hold).await;
    let ramp_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let rss_after = rss_kib(common.server_pid);
    stop.store(true, Ordering::Relaxed);
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if !h.is_empty() => {
            format!("{:.1}", (a.saturating_sub(b)) as f64 / h.len() as f64)
        }
        _ => "n/a".into(),
    };
    println!(
        "connect: opened={} errors={} dropped_while_held={} ramp={:.1}s handshake+auth p50={:.2}ms p99={:.2}ms max={:.2}ms server_rss_per_conn_kib={} server_rss_kib={}",
        h.len(),
        errors,
        dropped.load(Ordering::Relaxed),
        ramp_secs,
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0,
        per_conn,
        rss_after.map(|r| r.to_string()).unwrap_or("n/a".into()),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// What the members and players of `fanout` share.
struct Fanout {
    /// Tick-to-member latency of every diff, µs.
    delivery: Mutex<Histogram<u64>>,
    frames: AtomicU64,
    gaps: AtomicU64,
    dropped: AtomicU64,
    stop: tokio::sync::Notify,
    /// Counting starts once every member has joined.
    measuring: AtomicBool,
    /// Submit time per (player, score), for submit-to-diff latency measured at member 0: a
    /// diff row is matched to the very submit that produced it.
    submitted: Mutex<std::collections::HashMap<(String, u64), Instant>>,
    submit_to_diff: Mutex<Histogram<u64>>,
    room: String,
}

async fn fanout(
    common: Common,
    members: usize,
    players: usize,
    seconds: u64,
    room: String,
    rate: u64,
) -> anyhow::Result<()> {
    let campaign = room.split('/').next().unwrap_or("bench").to_owned();
    let st = Arc::new(Fanout {
        delivery: Mutex::new(Histogram::<u64>::new(3).unwrap()),
        frames: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        stop: tokio::sync::Notify::new(),
        measuring: AtomicBool::new(false),
        submitted: Mutex::default(),
        submit_to_diff: Mutex::new(Histogram::<u64>::new(3).unwrap()),
        room,
    });

    let hold = {
        let st = st.clone();
        move |i: usize, mut ws: Ws| {
            let st = st.clone();
            async move {
                if ws
                    .send(Message::Text(
                        json!({"type":"join","room": st.room}).to_string().into(),
                    ))
                    .await
                    .is_err()
                {
                    st.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let mut seq = None;
                let mut local = Histogram::<u64>::new(3).unwrap();
                // One waiter for the whole loop: a timer per frame cost the bench more than
                // parsing the frame.
                let stopped = st.stop.notified();
                tokio::pin!(stopped);
                loop {
                    let next = tokio::select! {
                        _ = &mut stopped => break,
                        next = ws.next() => next,
                    };
                    let frame = match next {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            st.dropped.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Some(Ok(_)) => continue,
                    };
                    let received = now_ms();
                    let v: Frame = match serde_json::from_str(&frame) {
                        Ok(v) => v,
                        Err(_) => continue,
                    };
                    match v.ty {
                        "snapshot" => seq = v.seq,
                        "diff" => {
                            let s = v.seq.unwrap_or(0);
                            if seq.is_some_and(|prev| s != prev + 1) {
                                st.gaps.fetch_add(1, Ordering::Relaxed);
                            }
                            seq = Some(s);
                            if st.measuring.load(Ordering::Relaxed) {
                                st.frames.fetch_add(1, Ordering::Relaxed);
                                let sent = v.server_time.unwrap_or(received);
                                local.record(received.saturating_sub(sent) * 1000).ok();
                                if i == 0 {
                                    let now = Instant::now();
                                    let map = st.submitted.lock().unwrap();
                                    for c in &v.changed {
                                        if let Some(at) = map.get(&(c.user.to_string(), c.score)) {
                                            st.submit_to_diff
                                                .lock()
                                                .unwrap()
                                                .record(now.duration_since(*at).as_micros() as u64)
                                                .ok();
                                        }
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
                st.delivery.lock().unwrap().add(&local).ok();
                let _ = ws.close(None).await;
            }
        }
    };
    let (joined, errors) = ramp(&common, members, rate, "member", hold).await;
    println!(
        "fanout: {} members connected ({} errors); players start",
        joined.len(),
        errors
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let accepted = Arc::new(AtomicU64::new(0));
    let mut player_tasks = Vec::new();
    st.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    for p in 0..players {
        let (common, campaign, accepted, st) = (
            common.clone(),
            campaign.clone(),
            accepted.clone(),
            st.clone(),
        );
        player_tasks.push(tokio::spawn(async move {
            let user = format!("player-{}-{p}", run_tag());
            let Ok((mut ws, _)) = open(&common, &user).await else {
                return;
            };
            let mut score = 1u64;
            while Instant::now() < until {
                let start = json!({"type":"start_game","campaign": campaign}).to_string();
                if ws.send(Message::Text(start.into())).await.is_err() {
                    return;
                }
                let session = loop {
                    match next_json(&mut ws).await {
                        Ok(v) if v["type"] == "game_started" => {
                            break v["session"].as_str().unwrap_or_default().to_owned()
                        }
                        Ok(_) => continue,
                        Err(_) => return,
                    }
                };
                tokio::time::sleep(Duration::from_millis(100)).await;
                score += 1 + p as u64 % 7;
                st.submitted
                    .lock()
                    .unwrap()
                    .insert((user.clone(), score), Instant::now());
                let submit = json!({"type":"submit","session": session,"score": score}).to_string();
                if ws.send(Message::Text(submit.into())).await.is_err() {
                    return;
                }
                loop {
                    match next_json(&mut ws).await {
                        Ok(v) if v["type"] == "result" => {
                            if v["status"] == "accepted" {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            break;
                        }
                        Ok(_) => continue,
                        Err(_) => return,
                    }
                }
            }
        }));
    }
    for t in player_tasks {
        let _ = t.await;
    }
    // One more tick for the last diff to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    st.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    st.stop.notify_waiters();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let d = st.delivery.lock().unwrap().clone();
    let s = st.submit_to_diff.lock().unwrap().clone();
    println!(
        "fanout: members={} players={} accepted={} diff_frames_delivered={} frames_per_s={:.0} tick_to_member p50={:.1}ms p99={:.1}ms max={:.1}ms submit_to_diff p50={:.0}ms p99={:.0}ms seq_gaps={} dropped={} server_rss_kib={}",
        joined.len(),
        players,
        accepted.load(Ordering::Relaxed),
        st.frames.load(Ordering::Relaxed),
        st.frames.load(Ordering::Relaxed) as f64 / elapsed,
        ms(&d, 0.5),
        ms(&d, 0.99),
        d.max() as f64 / 1000.0,
        ms(&s, 0.5),
        ms(&s, 0.99),
        st.gaps.load(Ordering::Relaxed),
        st.dropped.load(Ordering::Relaxed),
        rss_kib(common.server_pid).map(|r| r.to_string()).unwrap_or("n/a".into()),
    );
    Ok(())
}

struct Db {
    url: String,
    schema: String,
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

/// `GET /health` over a plain socket: the JSON body.
async fn health(addr: &str) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw);
    serde_json::from_str(raw.split_once("\r\n\r\n")?.1).ok()
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
async fn ingest(
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
    // Wait for the backlog to drain, then count what PostgreSQL holds for this run's players.
    let drain_started = Instant::now();
    while drain_started.elapsed() < Duration::from_secs(120) {
        match health(&common.addr).await {
            Some(h) if h["metrics"]["persistBacklog"] == 0 => break,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let drain = drain_started.elapsed().as_secs_f64();
    let client = db.connect().await?;
    let pattern = format!("ingest-{}-%", run_tag());
    let rows: i64 = client
        .query_one(
            "SELECT count(*) FROM results WHERE user_id LIKE $1",
            &[&pattern],
        )
        .await?
        .get(0);
    let l = latency.lock().unwrap().clone();
    let rate = acked as f64 / elapsed;
    println!(
        "ingest: players={players} pipeline={pipeline} accepted={acked} accepted_per_s={rate:.0} ack p50={:.2}ms p99={:.2}ms pg_lag p50={}ms max={}ms drain_after={drain:.1}s rows_in_postgres={rows} lost={} failed_players={failed}",
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Connect {
            connections,
            rate,
            hold,
        } => connect(cli.common, connections, rate, hold).await,
        Scenario::Fanout {
            members,
            players,
            seconds,
            room,
            rate,
        } => fanout(cli.common, members, players, seconds, room, rate).await,
        Scenario::Ingest {
            players,
            seconds,
            pipeline,
            campaign,
            naive_seconds,
            database_url,
            database_schema,
            redis_url,
        } => {
            let db = Db {
                url: database_url,
                schema: database_schema,
            };
            ingest(
                cli.common,
                players,
                seconds,
                pipeline,
                campaign,
                naive_seconds,
                db,
                redis_url,
            )
            .await
        }
    }
}
