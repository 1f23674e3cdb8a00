//! `soak`: players churning for a long while (connect, auth, join a room, play a few games,
//! leave, close, again), bounded in players and time. It reads the server's RSS, open
//! descriptors, `podium_ws_connections` and `podium_room_members` before the load, halfway,
//! and once every player has gone and the server has settled: sockets, members and
//! descriptors should be back at baseline, and memory no higher than the load's own state
//! (one board row per player) explains. It plays the `soak` campaign of bench/server.toml.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{next_json, open, rss_kib, run_tag, Common, Ws};

const ROOMS: [&str; 4] = [
    "soak/global",
    "soak/daily",
    "soak/region:eu",
    "soak/region:us",
];

/// How long the server is left alone after the load before the last reading.
const SETTLE_SECS: u64 = 65;

/// What the server holds at one moment.
struct Reading {
    rss_kib: Option<u64>,
    fds: Option<usize>,
    connections: Option<f64>,
    members: Option<f64>,
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
        write!(
            f,
            "rss_kib={} fds={} ws_connections={} room_members={}",
            show(self.rss_kib.map(|v| v.to_string())),
            show(self.fds.map(|v| v.to_string())),
            show(self.connections.map(|v| v.to_string())),
            show(self.members.map(|v| v.to_string())),
        )
    }
}

/// `/metrics` over a plain socket: the sum of every series of `name`.
async fn metric_sum(addr: &str, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.ok()?;
    let text = String::from_utf8_lossy(&raw);
    let values = text.lines().filter_map(|line| {
        let rest = line.strip_prefix(name)?;
        (rest.starts_with(' ') || rest.starts_with('{'))
            .then(|| rest.rsplit(' ').next()?.parse::<f64>().ok())?
    });
    // `+ 0.0` turns the empty sum's -0 into 0.
    Some(values.sum::<f64>() + 0.0)
}

async fn reading(common: &Common) -> Reading {
    let fds = common
        .server_pid
        .and_then(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .map(|dir| dir.count());
    Reading {
        rss_kib: rss_kib(common.server_pid),
        fds,
        connections: metric_sum(&common.addr, "podium_ws_connections").await,
        members: metric_sum(&common.addr, "podium_room_members").await,
    }
}

/// One game on `ws`: start, submit.
async fn game(ws: &mut Ws, score: u64) -> anyhow::Result<()> {
    let start = json!({"type":"start_game","campaign":"soak"}).to_string();
    ws.send(Message::Text(start.into())).await?;
    let session = loop {
        let v = next_json(ws).await?;
        if v["type"] == "game_started" {
            break v["session"].as_str().unwrap_or_default().to_owned();
        }
        if v["type"] == "error" {
            bail!("start_game refused: {v}");
        }
    };
    let submit = json!({"type":"submit","session": session,"score": score}).to_string();
    ws.send(Message::Text(submit.into())).await?;
    loop {
        if next_json(ws).await?["type"] == "result" {
            return Ok(());
        }
    }
}

/// One player's cycles until `until`; answers how many cycles and games it completed.
async fn churn(common: Common, i: usize, until: Instant, errors: Arc<AtomicU64>) -> (u64, u64) {
    let (mut cycles, mut games) = (0, 0);
    while Instant::now() < until {
        // The same players all along: the boards hold one row each, so what grows is what leaks.
        let user = format!("soak-{}-{i}", run_tag());
        let attempt = async {
            let (mut ws, _) = open(&common, &user).await?;
            let room = ROOMS[(i + cycles as usize) % ROOMS.len()];
            ws.send(Message::Text(
                json!({"type":"join","room": room}).to_string().into(),
            ))
            .await?;
            for n in 0..1 + (cycles % 4) {
                game(&mut ws, 1 + n + cycles).await?;
                games += 1;
            }
            ws.send(Message::Text(
                json!({"type":"leave","room": room}).to_string().into(),
            ))
            .await?;
            ws.close(None).await?;
            anyhow::Ok(())
        };
        if tokio::time::timeout(Duration::from_secs(10), attempt)
            .await
            .map_or(true, |r| r.is_err())
        {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        cycles += 1;
        tokio::time::sleep(Duration::from_millis(
            50 + (i as u64 * 37 + cycles * 11) % 150,
        ))
        .await;
    }
    (cycles, games)
}

pub async fn run(common: Common, players: usize, seconds: u64) -> anyhow::Result<()> {
    let before = reading(&common).await;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..players)
        .map(|i| tokio::spawn(churn(common.clone(), i, until, errors.clone())))
        .collect();
    // The reading halfway shows what the load holds while it runs.
    tokio::time::sleep(Duration::from_secs(seconds / 2)).await;
    let middle = reading(&common).await;
    let (mut cycles, mut games) = (0, 0);
    for t in tasks {
        let (c, g) = t.await?;
        cycles += c;
        games += g;
    }
    // Closed sockets take their time to leave, idempotency marks outlive their games by 20 s
    // and are swept every WS_CLEANUP_INTERVAL (30 s), and empty rooms stop after their grace.
    tokio::time::sleep(Duration::from_secs(SETTLE_SECS)).await;
    let after = reading(&common).await;
    println!(
        "soak: players={players} seconds={seconds} cycles={cycles} games={games} errors={} | before: {before} | halfway: {middle} | after: {after}",
        errors.load(Ordering::Relaxed),
    );
    Ok(())
}
