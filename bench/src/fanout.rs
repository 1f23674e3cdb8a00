//! `fanout`: N members in one room while M players submit; tick-to-delivery latency of the
//! diffs at every member p50/p99, submit-to-diff latency, frames/s, seq gaps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{ms, next_json, now_ms, open, ramp, rss_kib, run_tag, Common, Ws};

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

/// What the members and players of `fanout` share.
struct Fanout {
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
    /// Delivery latency (ms) by diff `seq`: whether a tail is spread over every tick or comes
    /// from a few.
    by_tick: Mutex<std::collections::BTreeMap<u64, Vec<u64>>>,
    room: String,
}

pub async fn run(
    common: Common,
    members: usize,
    players: usize,
    seconds: u64,
    room: String,
    rate: u64,
) -> anyhow::Result<()> {
    let campaign = room.split('/').next().unwrap_or("bench").to_owned();
    let st = Arc::new(Fanout {
        frames: AtomicU64::new(0),
        gaps: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        stop: tokio::sync::Notify::new(),
        measuring: AtomicBool::new(false),
        submitted: Mutex::default(),
        submit_to_diff: Mutex::new(Histogram::<u64>::new(3).unwrap()),
        by_tick: Mutex::default(),
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
                // Every in-window diff's (seq, latency ms), kept in a buffer taken before the
                // window: growing a histogram per member at the first diff (10,000 of them at
                // once) was the slowest tick of every run, in the generator, not the server.
                let mut ticks: Vec<(u64, u64)> = Vec::with_capacity(64);
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
                                ticks.push((s, received.saturating_sub(sent)));
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
                {
                    let mut by_tick = st.by_tick.lock().unwrap();
                    for (seq, ms) in ticks {
                        by_tick.entry(seq).or_default().push(ms);
                    }
                }
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
    let s = st.submit_to_diff.lock().unwrap().clone();
    let mut by_tick = st.by_tick.lock().unwrap();
    // Tick-to-member latency of every diff, µs.
    let mut d = Histogram::<u64>::new(3).unwrap();
    for ms in by_tick.values().flatten() {
        d.record(ms * 1000).ok();
    }
    // Each tick's own p99, then the spread of those over the ticks.
    let in_order: Vec<u64> = by_tick
        .values_mut()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.sort_unstable();
            v[(v.len() * 99 / 100).min(v.len() - 1)]
        })
        .collect();
    if std::env::var_os("BENCH_TICKS").is_some() {
        eprintln!("per-tick p99 in seq order (ms): {in_order:?}");
    }
    let mut tick_p99 = in_order;
    tick_p99.sort_unstable();
    let spread = match (tick_p99.first(), tick_p99.last()) {
        (Some(lo), Some(hi)) => format!(
            "per_tick_p99 min={lo}ms median={}ms max={hi}ms ticks={}",
            tick_p99[tick_p99.len() / 2],
            tick_p99.len()
        ),
        _ => "per_tick_p99 n/a".into(),
    };
    println!(
        "fanout: members={} players={} accepted={} diff_frames_delivered={} frames_per_s={:.0} tick_to_member p50={:.1}ms p99={:.1}ms max={:.1}ms submit_to_diff p50={:.0}ms p99={:.0}ms seq_gaps={} dropped={} server_rss_kib={} {spread}",
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
