//! `connect`: open N authenticated sockets at a ramp rate and hold them; handshake+auth
//! latency p50/p99, errors, server RSS per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{ms, ramp, rss_kib, Common, Ws};

pub async fn run(common: Common, n: usize, rate: u64, hold_secs: u64) -> anyhow::Result<()> {
    let rss_before = rss_kib(common.server_pid);
    let stop = Arc::new(tokio::sync::Notify::new());
    let dropped = Arc::new(AtomicU64::new(0));
    let hold = {
        let (stop, dropped) = (stop.clone(), dropped.clone());
        move |_, mut ws: Ws| {
            let (stop, dropped) = (stop.clone(), dropped.clone());
            async move {
                // Read (which answers heartbeats) until told to stop; a close here is an
                // error. One waiter per socket, no timer: 50,000 sockets' timers firing
                // twice a second cost the generator more than the sockets did.
                let stopped = stop.notified();
                tokio::pin!(stopped);
                loop {
                    let next = tokio::select! {
                        _ = &mut stopped => break,
                        next = ws.next() => next,
                    };
                    match next {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            dropped.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        // tungstenite queues the pong; only a write or flush sends it.
                        Some(Ok(Message::Ping(_))) => {
                            let _ = ws.flush().await;
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
    stop.notify_waiters();
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
