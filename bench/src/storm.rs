//! `storm` and `wave`: the load shapes operators test a launch with. N players arrive evenly
//! over S seconds (a storm: a few seconds; a wave: a ramp, 90 s by default); each connects,
//! authenticates, joins the room, plays and submits, and stays in the room until the end.
//! In a storm each player plays one game; in a wave each keeps playing until the last player
//! has arrived, so the load grows with the ramp. Reported: errors by step (any refusal or
//! failure is one), connect+auth, join-to-snapshot and submit-to-ack latency p50/p99, and with
//! the redis engine a check that PostgreSQL holds a row for every ack.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::SinkExt;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{cpu_s, ms, next_json, open, rss_kib, run_tag, Common, Ws};
use crate::ingest::{persisted, Db};

/// What one run asks of its players.
pub struct Shape {
    /// `storm` or `wave`, for the summary line.
    pub name: &'static str,
    pub players: usize,
    /// Seconds over which the players arrive.
    pub over: u64,
    /// How long each game lasts before its submit, ms.
    pub play_ms: u64,
    /// Whether players keep playing until the last one has arrived (a wave).
    pub replay: bool,
    /// Seconds everyone stays after the last player arrived and played.
    pub hold: u64,
    pub room: String,
}

#[derive(Default)]
struct Errors {
    connect: AtomicU64,
    join: AtomicU64,
    start: AtomicU64,
    submit: AtomicU64,
    dropped: AtomicU64,
}

impl Errors {
    fn total(&self) -> u64 {
        [
            &self.connect,
            &self.join,
            &self.start,
            &self.submit,
            &self.dropped,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

struct Storm {
    connect: Mutex<Histogram<u64>>,
    join: Mutex<Histogram<u64>>,
    ack: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    errors: Errors,
    /// First errors, printed so a failed run says why.
    said: AtomicU64,
}

impl Storm {
    fn fail(&self, step: &AtomicU64, err: &anyhow::Error) {
        step.fetch_add(1, Ordering::Relaxed);
        if self.said.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("player error: {err:#}");
        }
    }
}

/// Reads frames until one of type `ty` (diffs and other pushes are skipped); an error frame
/// is a failure.
async fn wait_for(ws: &mut Ws, ty: &str) -> anyhow::Result<serde_json::Value> {
    loop {
        let v = next_json(ws).await?;
        if v["type"] == ty {
            return Ok(v);
        }
        if v["type"] == "error" {
            bail!("waiting for {ty}: {v}");
        }
    }
}

async fn send(ws: &mut Ws, v: serde_json::Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

/// Starts a game; answers its session.
async fn start(ws: &mut Ws, campaign: &str) -> anyhow::Result<String> {
    send(ws, json!({"type":"start_game","campaign": campaign})).await?;
    let started = wait_for(ws, "game_started").await?;
    Ok(started["session"].as_str().unwrap_or_default().to_owned())
}

/// Submits a game's score; answers the ack's latency.
async fn submit(ws: &mut Ws, session: &str, score: u64) -> anyhow::Result<Duration> {
    let sent = Instant::now();
    send(
        ws,
        json!({"type":"submit","session": session,"score": score}),
    )
    .await?;
    let result = wait_for(ws, "result").await?;
    if result["status"] != "accepted" {
        bail!("submit refused: {result}");
    }
    Ok(sent.elapsed())
}

/// `step` within 30 s, or an error saying it timed out.
async fn in_time<T>(
    what: &str,
    step: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(Duration::from_secs(30), step)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("{what} timed out")))
}

async fn player(common: Common, shape: Arc<Shape>, st: Arc<Storm>, user: String, end: Instant) {
    let campaign = shape
        .room
        .split('/')
        .next()
        .filter(|c| !c.is_empty())
        .unwrap_or("bench")
        .to_owned();
    let mut ws = match in_time("connect", open(&common, &user)).await {
        Ok((ws, took)) => {
            st.connect
                .lock()
                .unwrap()
                .record(took.as_micros() as u64)
                .ok();
            ws
        }
        Err(err) => return st.fail(&st.errors.connect, &err),
    };
    // `--room ''`: players who only play (rooms need Redis; a fallback storm has none).
    if !shape.room.is_empty() {
        let asked = Instant::now();
        let joined = async {
            send(&mut ws, json!({"type":"join","room": shape.room})).await?;
            wait_for(&mut ws, "snapshot").await
        };
        match in_time("join", joined).await {
            Ok(_) => {
                st.join
                    .lock()
                    .unwrap()
                    .record(asked.elapsed().as_micros() as u64)
                    .ok();
            }
            Err(err) => return st.fail(&st.errors.join, &err),
        }
    }
    let mut score = 0;
    loop {
        score += 1;
        let session = match in_time("start_game", start(&mut ws, &campaign)).await {
            Ok(session) => session,
            Err(err) => return st.fail(&st.errors.start, &err),
        };
        tokio::time::sleep(Duration::from_millis(shape.play_ms)).await;
        match in_time("submit", submit(&mut ws, &session, score)).await {
            Ok(took) => {
                st.acked.fetch_add(1, Ordering::Relaxed);
                st.ack.lock().unwrap().record(took.as_micros() as u64).ok();
            }
            Err(err) => return st.fail(&st.errors.submit, &err),
        }
        if !shape.replay || Instant::now() + Duration::from_millis(shape.play_ms) >= end {
            break;
        }
    }
    // A member until the end: diffs keep arriving, and a socket that ends early is a drop.
    let stay = tokio::time::timeout_at(end.into(), async {
        loop {
            if let Err(err) = next_json(&mut ws).await {
                break err;
            }
        }
    })
    .await;
    if let Ok(err) = stay {
        return st.fail(&st.errors.dropped, &err);
    }
    let _ = ws.close(None).await;
}

pub async fn run(common: Common, shape: Shape, db: Option<Db>) -> anyhow::Result<()> {
    let shape = Arc::new(shape);
    let new = || Mutex::new(Histogram::<u64>::new(3).unwrap());
    let st = Arc::new(Storm {
        connect: new(),
        join: new(),
        ack: new(),
        acked: AtomicU64::new(0),
        errors: Errors::default(),
        said: AtomicU64::new(0),
    });
    let rss_before = rss_kib(common.server_pid);
    let cpu_before = cpu_s(common.server_pid);
    let started = Instant::now();
    let arrived = started + Duration::from_secs(shape.over);
    let end = arrived + Duration::from_millis(shape.play_ms) + Duration::from_secs(shape.hold);
    let gap = Duration::from_secs_f64(shape.over as f64 / shape.players.max(1) as f64);
    let prefix = format!("{}-{}", shape.name, run_tag());
    let mut tasks = Vec::with_capacity(shape.players);
    for i in 0..shape.players {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        tasks.push(tokio::spawn(player(
            common.clone(),
            shape.clone(),
            st.clone(),
            format!("{prefix}-{i}"),
            end,
        )));
    }
    let late = Instant::now().saturating_duration_since(arrived);
    let rss_full = rss_kib(common.server_pid);
    for t in tasks {
        let _ = t.await;
    }
    let cpu = match (cpu_before, cpu_s(common.server_pid)) {
        (Some(a), Some(b)) => format!("{:.1}s", b - a),
        _ => "n/a".into(),
    };
    let durable = match db {
        Some(db) => {
            let (drain, rows) = persisted(&common, &db, &format!("{prefix}-%")).await?;
            let acked = st.acked.load(Ordering::Relaxed) as i64;
            format!(
                " drain_after={drain:.1}s rows_in_postgres={rows} lost={}",
                acked - rows
            )
        }
        None => String::new(),
    };
    let (c, j, a) = (
        st.connect.lock().unwrap().clone(),
        st.join.lock().unwrap().clone(),
        st.ack.lock().unwrap().clone(),
    );
    let e = &st.errors;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "{}: players={} over={}s (arrivals ended {:.1}s late) play={}ms errors={} (connect={} join={} start={} submit={} dropped={}) acked={} connect p50={:.2}ms p99={:.2}ms join p50={:.2}ms p99={:.2}ms submit_ack p50={:.2}ms p99={:.2}ms max={:.2}ms server_cpu={cpu} rss_at_full={}KiB (before {}KiB){durable}",
        shape.name,
        shape.players,
        shape.over,
        late.as_secs_f64(),
        shape.play_ms,
        e.total(),
        load(&e.connect),
        load(&e.join),
        load(&e.start),
        load(&e.submit),
        load(&e.dropped),
        load(&st.acked),
        ms(&c, 0.5),
        ms(&c, 0.99),
        ms(&j, 0.5),
        ms(&j, 0.99),
        ms(&a, 0.5),
        ms(&a, 0.99),
        a.max() as f64 / 1000.0,
        rss_full.map_or("n/a".into(), |r| r.to_string()),
        rss_before.map_or("n/a".into(), |r| r.to_string()),
    );
    Ok(())
}
