//! Metrics and logs from one place: each notable event is one function that writes its log
//! line and bumps its metric together, so they never drift. Metric names carry their unit.
//! [`Stats`] keeps the rolling one-minute figures behind `/health`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram, Counter, Histogram};

use crate::domain::error::CloseReason;

/// Series that alerts divide by or into, at 0 from the start: a rate over a counter that no
/// event has created yet is absent, and an absent numerator hides the whole ratio.
pub fn init() {
    counter!("podium_ws_faults_total").increment(0);
    counter!("podium_submits_total", "outcome" => "failed", "reason" => "internal").increment(0);
    counter!("podium_submits_total", "outcome" => "accepted", "reason" => "").increment(0);
    counter!("podium_postgres_pool_timeouts_total").increment(0);
}

/// The configured cap, so dashboards and alerts can show the share in use.
pub fn connection_cap(max: usize) {
    gauge!("podium_ws_connections_max").set(max as f64);
}

/// Whether this engine reached PostgreSQL at its last probe (every second).
pub fn postgres_up(up: bool) {
    gauge!("podium_postgres_up").set(if up { 1.0 } else { 0.0 });
}

/// Published by the connection registry, which holds the true counts.
pub fn connection_counts(connections: usize, users: usize) {
    gauge!("podium_ws_connections").set(connections as f64);
    gauge!("podium_ws_users").set(users as f64);
}

/// A socket upgraded (it may not authenticate): the rate of arrivals.
pub fn connection_opened() {
    with_handle(&OPENED, (), || {
        counter!("podium_ws_connections_opened_total")
    })
    .increment(1);
}

/// A socket's end, for its log line.
pub struct SocketClosed<'a> {
    pub reason: CloseReason,
    /// Who it was, once authenticated.
    pub user: Option<&'a str>,
    pub open_for: Duration,
    pub frames_in: u64,
    /// Frames accepted for the client, broadcasts included.
    pub frames_out: u64,
}

/// One line per closed socket, whatever the reason, so a collector can follow a player's
/// sessions; counted by reason.
pub fn connection_closed(c: &SocketClosed<'_>) {
    counter!("podium_ws_closes_total", "reason" => c.reason.as_str()).increment(1);
    tracing::info!(
        event = "socket_closed",
        user = c.user,
        duration_ms = c.open_for.as_millis() as u64,
        close_code = c.reason.code(),
        reason = c.reason.as_str(),
        frames_in = c.frames_in,
        frames_out = c.frames_out,
        "socket closed"
    );
}

pub fn connection_refused(code: &'static str) {
    counter!("podium_ws_refused_total", "code" => code).increment(1);
    // Debug, not info: a flood of refused upgrades must not become a flood of log lines.
    tracing::debug!(code, "connection refused before upgrade");
}

pub fn auth(outcome: &'static str) {
    counter!("podium_auth_total", "outcome" => outcome).increment(1);
    if outcome != "ok" {
        tracing::debug!(outcome, "authentication refused");
    }
}

/// The handles of a metric by its label values, kept per thread for the metrics counted per
/// frame or per submit: `counter!` with labels builds the key (a vector) and looks it up in the
/// registry each time, which cost about as much as parsing the frame. The recorder is
/// installed before any worker thread starts, so a kept handle is never a stale no-op.
type Handles<K, M> = RefCell<HashMap<K, M>>;

fn with_handle<K: std::hash::Hash + Eq + Copy, M: Clone>(
    cache: &'static LocalKey<Handles<K, M>>,
    key: K,
    make: impl FnOnce() -> M,
) -> M {
    cache.with(|c| c.borrow_mut().entry(key).or_insert_with(make).clone())
}

thread_local! {
    static MESSAGES_IN: Handles<&'static str, Counter> = RefCell::default();
    static MESSAGES_OUT: Handles<&'static str, Counter> = RefCell::default();
    static SUBMITS: Handles<(&'static str, Option<&'static str>), Counter> = RefCell::default();
    static REDIS_CALLS: Handles<&'static str, (Histogram, Counter)> = RefCell::default();
    static PG_CALLS: Handles<&'static str, (Histogram, Counter)> = RefCell::default();
    static GAMES_STARTED: Handles<(), Counter> = RefCell::default();
    static INPUT_FRAMES: Handles<&'static str, Counter> = RefCell::default();
    static OPENED: Handles<(), Counter> = RefCell::default();
    static SUBMIT_ACKS: Handles<(), Histogram> = RefCell::default();
    static RESPONSES: Handles<(), Histogram> = RefCell::default();
}

fn response_seconds(took: Duration) {
    with_handle(&RESPONSES, (), || histogram!("podium_ws_response_seconds"))
        .record(took.as_secs_f64());
}

pub fn message_in(kind: &'static str) {
    with_handle(
        &MESSAGES_IN,
        kind,
        || counter!("podium_ws_messages_in_total", "type" => kind),
    )
    .increment(1);
}

/// `count` frames of `kind` built for clients (a broadcast counts all its members at once).
pub fn message_out(kind: &'static str, count: usize) {
    with_handle(
        &MESSAGES_OUT,
        kind,
        || counter!("podium_ws_messages_out_total", "type" => kind),
    )
    .increment(count as u64);
}

pub fn outbound_queue(bytes: usize) {
    histogram!("podium_ws_outbound_queue_bytes").record(bytes as f64);
}

pub fn room_members(room: &str, members: usize) {
    gauge!("podium_room_members", "room" => room.to_owned()).set(members as f64);
}

/// One diff broadcast: recorded once per tick, not per member.
pub fn diff_broadcast(room: &str, bytes: usize, members: usize, took: Duration) {
    counter!("podium_room_diffs_total").increment(1);
    message_out("diff", members);
    counter!("podium_room_diff_bytes_total").increment((bytes * members) as u64);
    histogram!("podium_room_diff_bytes").record(bytes as f64);
    histogram!("podium_room_tick_seconds").record(took.as_secs_f64());
    tracing::trace!(room, bytes, members, "diff broadcast");
}

pub fn room_restarted(room: &str) {
    counter!("podium_room_restarts_total").increment(1);
    tracing::error!(
        room,
        "room panicked; restarted by its supervisor and resynced its members"
    );
}

pub fn submit(outcome: &'static str, reason: Option<&'static str>, user: &str, score: u64) {
    with_handle(
        &SUBMITS,
        (outcome, reason),
        || counter!("podium_submits_total", "outcome" => outcome, "reason" => reason.unwrap_or("")),
    )
    .increment(1);
    match reason {
        // A refusal is recorded for review: the log line carries the numbers.
        Some(reason) => tracing::info!(outcome, reason, user, score, "submit refused"),
        None => tracing::debug!(outcome, user, score, "submit"),
    }
}

/// A submit answered (accepted, refused or failed), from its frame's arrival to its result.
pub fn submit_answered(took: Duration) {
    with_handle(&SUBMIT_ACKS, (), || histogram!("podium_submit_ack_seconds"))
        .record(took.as_secs_f64());
}

/// A room could not read its board; it keeps its list and tries again next tick.
pub fn room_read_failed(room: &str, err: &dyn std::fmt::Display) {
    counter!("podium_room_read_failures_total").increment(1);
    tracing::warn!(room, %err, "room could not read its board");
}

/// One Redis interaction (a command, a pipeline or a script) by its name, with its outcome.
pub fn redis_call(call: &'static str, took: Duration, ok: bool) {
    store_call(
        &REDIS_CALLS,
        ["podium_redis_call_seconds", "podium_redis_errors_total"],
        call,
        took,
        ok,
    );
}

/// A store call's latency and outcome under its name. The error counter of a call exists (at
/// 0) from its first use, so an error rate is 0 on a dashboard, not absent.
fn store_call(
    cache: &'static LocalKey<Handles<&'static str, (Histogram, Counter)>>,
    [latency, errors]: [&'static str; 2],
    call: &'static str,
    took: Duration,
    ok: bool,
) {
    let (latency, errors) = with_handle(cache, call, || {
        (
            histogram!(latency, "call" => call),
            counter!(errors, "call" => call),
        )
    });
    latency.record(took.as_secs_f64());
    errors.increment(u64::from(!ok));
}

/// The batcher's series, from its start: an idle batcher shows 0 rows a second, not nothing.
pub fn batcher_started() {
    counter!("podium_persist_rows_total").increment(0);
    counter!("podium_persist_failures_total").increment(0);
}

/// One batch written to PostgreSQL and acknowledged: recorded once per flush.
pub fn batch_flushed(rows: usize, took: Duration) {
    histogram!("podium_persist_batch_rows").record(rows as f64);
    histogram!("podium_persist_flush_seconds").record(took.as_secs_f64());
    counter!("podium_persist_rows_total").increment(rows as u64);
    tracing::debug!(rows, took_ms = took.as_millis() as u64, "batch persisted");
}

pub fn batch_failed(rows: usize, err: &dyn std::fmt::Display) {
    counter!("podium_persist_failures_total").increment(1);
    tracing::warn!(rows, %err, "batch not persisted; kept and retried");
}

/// A batch written to PostgreSQL whose acknowledgement Redis did not take: it is rewritten.
pub fn batch_unacknowledged(rows: usize, err: &dyn std::fmt::Display) {
    counter!("podium_persist_ack_failures_total").increment(1);
    tracing::warn!(rows, %err, "batch persisted but not acknowledged in Redis; kept and retried");
}

pub fn persist_backlog(entries: u64, oldest_ms: u64) {
    gauge!("podium_persist_backlog").set(entries as f64);
    gauge!("podium_persist_lag_seconds").set(oldest_ms as f64 / 1000.0);
}

/// A submit decided straight in PostgreSQL: its game started while Redis was unreachable.
pub fn fallback_submit() {
    counter!("podium_fallback_submits_total").increment(1);
    tracing::debug!("session decided straight in PostgreSQL");
}

/// Whether submits are decided in PostgreSQL (Redis unreachable), as a gauge.
pub fn fallback_mode(on: bool) {
    gauge!("podium_fallback_mode").set(if on { 1.0 } else { 0.0 });
}

/// Redis went away (fallback on) or came back (fallback off).
pub fn fallback(on: bool) {
    fallback_mode(on);
    if on {
        tracing::warn!("Redis unreachable: accepting results straight into PostgreSQL");
    } else {
        tracing::info!("Redis is back: boards rebuilt, fallback off");
    }
}

pub fn boards_rebuilt(campaign: &str, rows: u64, took: Duration) {
    counter!("podium_board_rebuilds_total").increment(1);
    histogram!("podium_board_rebuild_seconds").record(took.as_secs_f64());
    tracing::info!(
        campaign,
        rows,
        took_ms = took.as_millis() as u64,
        "boards rebuilt from PostgreSQL"
    );
}

/// The read replica's lag at the last probe (absent: unreachable) and whether it serves reads.
pub fn replica_state(lag_ms: Option<i64>, in_use: bool) {
    gauge!("podium_postgres_replica_in_use").set(f64::from(u8::from(in_use)));
    if let Some(ms) = lag_ms {
        gauge!("podium_postgres_replica_lag_seconds").set(ms.max(0) as f64 / 1000.0);
    }
}

/// An operator's read, and which database served it (`replica` or `primary`).
pub fn operator_read(on: &'static str) {
    counter!("podium_postgres_operator_reads_total", "on" => on).increment(1);
}

/// A caller waited `DATABASE_POOL_WAIT_TIMEOUT` for a PostgreSQL connection in vain (answered
/// `busy`).
pub fn pg_pool_exhausted() {
    counter!("podium_postgres_pool_timeouts_total").increment(1);
}

/// One PostgreSQL interaction (a batch, a fallback decision, a rebuild read), with its outcome.
pub fn pg_call(what: &'static str, took: Duration, ok: bool) {
    store_call(
        &PG_CALLS,
        [
            "podium_postgres_call_seconds",
            "podium_postgres_errors_total",
        ],
        what,
        took,
        ok,
    );
}

/// What a pool holds, sampled every second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open.
    pub size: usize,
    /// Open and not checked out.
    pub idle: usize,
    /// Callers waiting for a connection: above zero, the pool is the bottleneck.
    pub waiting: usize,
    /// The cap.
    pub max: usize,
}

pub fn pool_usage(pool: &'static str, u: PoolUsage) {
    gauge!("podium_pool_connections", "pool" => pool).set(u.size as f64);
    gauge!("podium_pool_connections_idle", "pool" => pool).set(u.idle as f64);
    gauge!("podium_pool_connections_in_use", "pool" => pool)
        .set(u.size.saturating_sub(u.idle) as f64);
    gauge!("podium_pool_waiting", "pool" => pool).set(u.waiting as f64);
    gauge!("podium_pool_connections_max", "pool" => pool).set(u.max as f64);
}

pub fn game_started() {
    with_handle(&GAMES_STARTED, (), || {
        counter!("podium_games_started_total")
    })
    .increment(1);
}

/// An `input` frame of a counted game: `taken`, `repeated` (its `seq` was read before) or
/// `refused` (no such game on the socket, submitted already, or past the message window).
pub fn input_frame(outcome: &'static str) {
    with_handle(
        &INPUT_FRAMES,
        outcome,
        || counter!("podium_input_frames_total", "outcome" => outcome),
    )
    .increment(1);
}

/// A counted game ended by its submit: its events by fate (`counted` or the drop's reason)
/// and its plausibility flags by kind.
pub fn counted_game(c: &crate::domain::counting::Counted, counted_events: u64) {
    counter!("podium_input_events_total", "fate" => "counted").increment(counted_events);
    for (drop, n) in &c.dropped {
        counter!("podium_input_events_total", "fate" => drop.code()).increment(u64::from(*n));
    }
    for flag in &c.flags {
        counter!("podium_result_flags_total", "kind" => flag.kind.code()).increment(1);
    }
}

/// A public board read that went to the store (the one-second cache held nothing fresh).
pub fn board_read_from_store(campaign: &str) {
    counter!("podium_public_board_store_reads_total", "campaign" => campaign.to_owned())
        .increment(1);
}

/// One HTTP request answered, WebSocket upgrades included (their answer is the 101).
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The route's pattern (`/admin/campaigns/{name}`), `None` for a path no route matches.
    pub route: Option<&'a str>,
    /// The path without its query string, which may carry a token (`?token=`).
    pub path: &'a str,
    pub status: u16,
    pub took: Duration,
    /// The peer's address (behind the gateway, the gateway's).
    pub client: Option<std::net::IpAddr>,
}

/// Per route: its latency histogram and a counter per status seen.
#[derive(Default)]
struct RouteHandles {
    duration: Option<Histogram>,
    by_status: HashMap<u16, Counter>,
}

thread_local! {
    static HTTP: RefCell<HashMap<String, RouteHandles>> = RefCell::default();
}

/// Counts and times the request by route pattern and status, and writes its access log line
/// (debug for the probes, `/health` and `/metrics`, which a scraper calls every few seconds).
pub fn http_request(r: &HttpRequest<'_>) {
    let route = r.route.unwrap_or("unmatched");
    HTTP.with(|http| {
        let mut http = http.borrow_mut();
        if !http.contains_key(route) {
            http.insert(route.to_owned(), RouteHandles::default());
        }
        let handles = http.get_mut(route).expect("inserted above");
        let owned = || route.to_owned();
        handles
            .duration
            .get_or_insert_with(|| {
                histogram!("podium_http_request_duration_seconds", "route" => owned())
            })
            .record(r.took.as_secs_f64());
        handles
            .by_status
            .entry(r.status)
            .or_insert_with(|| {
                counter!("podium_http_requests_total", "route" => owned(), "status" => r.status.to_string())
            })
            .increment(1);
    });
    let duration_ms = (r.took.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let client = r.client.map(|c| c.to_string());
    let client = client.as_deref();
    // The level of a tracing event is part of its call site: one macro writes both.
    macro_rules! access_line {
        ($level:ident) => {
            tracing::$level!(
                event = "http_request",
                method = r.method,
                route,
                path = r.path,
                status_code = r.status,
                duration_ms,
                client,
                "http request"
            )
        };
    }
    if matches!(route, "/health" | "/metrics" | "/ready") {
        access_line!(debug);
    } else {
        access_line!(info);
    }
}

/// The standard `process_*` gauges, read from `/proc/self` when `/metrics` is scraped (Linux;
/// elsewhere they are absent). CPU time is in USER_HZ ticks, 100 a second on Linux's ABI.
pub fn process() {
    const USER_HZ: f64 = 100.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        // Numbered as in proc(5), from field 3 (`state`) on.
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            // A gauge: the recorder's counters are whole numbers, and `rate()` over whole
            // seconds would be useless on a scrape every few seconds.
            gauge!("process_cpu_seconds_total").set((utime + stime) / USER_HZ);
        }
        if let Some(threads) = field(20) {
            gauge!("process_threads").set(threads);
        }
        if let Some(vsize) = field(23) {
            gauge!("process_virtual_memory_bytes").set(vsize);
        }
        if let (Some(start), Some(boot)) = (field(22), boot_time()) {
            gauge!("process_start_time_seconds").set(boot + start / USER_HZ);
        }
    }
    if let Some(rss_kb) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| {
            st.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
        })
    {
        gauge!("process_resident_memory_bytes").set(rss_kb * 1024.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(fds.count() as f64);
    }
    if let Some(max) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse::<f64>().ok())
        })
    {
        gauge!("process_max_fds").set(max);
    }
}

fn boot_time() -> Option<f64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

pub fn dev_token(outcome: &'static str) {
    counter!("podium_dev_tokens_total", "outcome" => outcome).increment(1);
}

/// A refused admin authentication, by code (`unauthorized`, `forbidden`).
pub fn admin_auth(outcome: &'static str) {
    counter!("podium_admin_auth_failures_total", "code" => outcome).increment(1);
    tracing::info!(code = outcome, "admin authentication refused");
}

/// An admin action carried out (`campaign_create`, `ban`, ...), logged with who did it.
pub fn admin_action(action: &'static str, actor: &str, target: &str) {
    counter!("podium_admin_actions_total", "action" => action).increment(1);
    tracing::info!(action, actor, target, "admin action");
}

const BUCKETS: usize = 60;
/// Minutes of submits an instance reports (for the console's per-minute bars).
pub const SUBMIT_MINUTES: usize = 30;
const MINUTE_MS: u64 = 60_000;

/// Submits answered in one wall-clock minute (so several instances' minutes add up).
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubmitMinute {
    /// The minute's start (Unix ms).
    pub minute_ms: u64,
    pub accepted: u64,
    /// Refused for any reason, a cheat or the server's fault.
    pub refused: u64,
}

#[derive(Default, Clone, Copy)]
struct Bucket {
    second: u64,
    messages: u64,
    errors: u64,
    response_us: u64,
    responses: u64,
}

/// Counters behind `/health`. Lock-free for the gauges; the one-minute ring takes a short
/// std mutex (never held across an await), which is cheap next to parsing a frame.
pub struct Stats {
    started: Instant,
    pub connections: AtomicI64,
    pub users: AtomicI64,
    pub total_messages: AtomicU64,
    ring: Mutex<[Bucket; BUCKETS]>,
    submits: Mutex<[SubmitMinute; SUBMIT_MINUTES]>,
}

/// The one-minute figures `/health` shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minute {
    pub messages: u64,
    pub errors: u64,
    pub average_response_ms: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            connections: AtomicI64::new(0),
            users: AtomicI64::new(0),
            total_messages: AtomicU64::new(0),
            ring: Mutex::new([Bucket::default(); BUCKETS]),
            submits: Mutex::new([SubmitMinute::default(); SUBMIT_MINUTES]),
        }
    }
}

impl Stats {
    fn with_bucket(&self, f: impl FnOnce(&mut Bucket)) {
        let second = self.started.elapsed().as_secs();
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut ring[(second % BUCKETS as u64) as usize];
        if slot.second != second {
            *slot = Bucket {
                second,
                ..Bucket::default()
            };
        }
        f(slot);
    }

    /// One client message handled; `error` when its answer is the server's fault.
    /// `answered_in` is `None` when the answer comes later (a submit waits on the pipeline)
    /// and is recorded then with [`Stats::response`].
    pub fn message(&self, error: bool, answered_in: Option<Duration>) {
        self.total_messages.fetch_add(1, Ordering::Relaxed);
        if error {
            counter!("podium_ws_faults_total").increment(1);
        }
        if let Some(took) = answered_in {
            response_seconds(took);
        }
        self.with_bucket(|b| {
            b.messages += 1;
            b.errors += error as u64;
            if let Some(took) = answered_in {
                b.response_us += took.as_micros() as u64;
                b.responses += 1;
            }
        });
    }

    /// A message answered later turned out to be the server's fault (a submit the store
    /// could not decide): counted in the error rate.
    pub fn fault(&self) {
        counter!("podium_ws_faults_total").increment(1);
        self.with_bucket(|b| b.errors += 1);
    }

    /// The time to answer a message whose answer came later than its handling.
    pub fn response(&self, took: Duration) {
        response_seconds(took);
        self.with_bucket(|b| {
            b.response_us += took.as_micros() as u64;
            b.responses += 1;
        });
    }

    pub fn last_minute(&self) -> Minute {
        let now = self.started.elapsed().as_secs();
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let live = ring.iter().filter(|b| {
            b.second + (BUCKETS as u64) > now
                && b.second <= now
                && (b.messages > 0 || b.responses > 0)
        });
        let (messages, errors, us, n) = live.fold((0, 0, 0, 0), |(m, e, us, n), b| {
            (
                m + b.messages,
                e + b.errors,
                us + b.response_us,
                n + b.responses,
            )
        });
        Minute {
            messages,
            errors,
            average_response_ms: if n == 0 {
                0.0
            } else {
                us as f64 / n as f64 / 1000.0
            },
        }
    }

    /// A submit answered at `now_ms`, accepted or not.
    pub fn decided(&self, accepted: bool, now_ms: u64) {
        let minute_ms = now_ms / MINUTE_MS * MINUTE_MS;
        let mut ring = self.submits.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut ring[(minute_ms / MINUTE_MS) as usize % SUBMIT_MINUTES];
        if slot.minute_ms != minute_ms {
            *slot = SubmitMinute {
                minute_ms,
                ..SubmitMinute::default()
            };
        }
        if accepted {
            slot.accepted += 1;
        } else {
            slot.refused += 1;
        }
    }

    /// The last [`SUBMIT_MINUTES`] minutes up to `now_ms`'s, oldest first, quiet ones as zeros.
    pub fn submits_by_minute(&self, now_ms: u64) -> Vec<SubmitMinute> {
        let ring = self.submits.lock().unwrap_or_else(|p| p.into_inner());
        let this = now_ms / MINUTE_MS;
        (0..SUBMIT_MINUTES as u64)
            .rev()
            .filter_map(|ago| this.checked_sub(ago))
            .map(|m| {
                let minute_ms = m * MINUTE_MS;
                let slot = ring[m as usize % SUBMIT_MINUTES];
                if slot.minute_ms == minute_ms {
                    slot
                } else {
                    SubmitMinute {
                        minute_ms,
                        ..SubmitMinute::default()
                    }
                }
            })
            .collect()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submits_add_up_per_wall_clock_minute_and_old_minutes_fall_off() {
        let s = Stats::default();
        let t = 1_000 * MINUTE_MS;
        s.decided(true, t + 5);
        s.decided(false, t + 59_999);
        s.decided(true, t + MINUTE_MS);
        let m = s.submits_by_minute(t + MINUTE_MS);
        assert_eq!(m.len(), SUBMIT_MINUTES);
        let tail: Vec<(u64, u64, u64)> = m[SUBMIT_MINUTES - 3..]
            .iter()
            .map(|x| (x.minute_ms, x.accepted, x.refused))
            .collect();
        assert_eq!(
            tail,
            [(t - MINUTE_MS, 0, 0), (t, 1, 1), (t + MINUTE_MS, 1, 0)]
        );
        // A slot reused a ring later holds only its new minute.
        let later = t + SUBMIT_MINUTES as u64 * MINUTE_MS;
        s.decided(false, later);
        let last = *s.submits_by_minute(later).last().unwrap();
        assert_eq!((last.accepted, last.refused), (0, 1));
    }

    #[test]
    fn the_minute_counts_messages_errors_and_latency() {
        let s = Stats::default();
        s.message(false, Some(Duration::from_millis(2)));
        s.message(true, None);
        s.response(Duration::from_millis(4));
        let m = s.last_minute();
        assert_eq!((m.messages, m.errors), (2, 1));
        assert!((m.average_response_ms - 3.0).abs() < 0.01, "{m:?}");
    }
}
