//! Compound faults under load: a session is decided once (docs/RELIABILITY.md). Players keep
//! playing while PostgreSQL freezes, Redis is killed and restarted from its AOF, or the
//! engine is killed; a submit that gets no final answer is retried with another score, which
//! is what turns a second decision into a visible one. Afterwards every session's answers,
//! Redis and PostgreSQL must agree.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::faults::{TempPostgres, TempRedis};

/// One `result` a player received: (session id, status, reason, score).
type Answer = (String, String, Option<String>, u64);

/// Every `result` any player received, and what they sent.
#[derive(Default)]
pub struct Ledger {
    answers: Mutex<Vec<Answer>>,
    /// Session id -> its token, to submit it again.
    tokens: Mutex<HashMap<String, String>>,
    /// Every (session, score) submitted.
    sent: Mutex<HashSet<(String, u64)>>,
}

/// A claim of a session token's signed body: `s` the session id (what PostgreSQL's rows are
/// keyed by), `u` the player it belongs to.
fn session_claim(token: &str, claim: &str) -> String {
    use base64::Engine as _;
    let body = token.split('.').next().unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .unwrap();
    serde_json::from_slice::<Value>(&json).unwrap()[claim]
        .as_str()
        .unwrap()
        .to_owned()
}

fn session_id(token: &str) -> String {
    session_claim(token, "s")
}

/// Reasons that decided nothing: the same session is submitted again.
fn retryable(reason: Option<&str>) -> bool {
    matches!(
        reason,
        Some("unavailable" | "busy" | "internal" | "rate_limited")
    )
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: &str, user: &str) -> Option<Ws> {
    let url = format!("ws://{addr}/ws");
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .ok()?
        .ok()?;
    let token = token_with(
        user,
        now_secs() + 600,
        jsonwebtoken::Algorithm::HS256,
        SECRET.as_bytes(),
    );
    let auth = json!({"type":"auth","token": token}).to_string();
    ws.send(Message::Text(auth.into())).await.ok()?;
    let welcome = next_frame(&mut ws, Duration::from_secs(2)).await?;
    (welcome["type"] == "welcome").then_some(ws)
}

async fn next_frame(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// One player until `until`: start a game, submit, and until the session has a final answer
/// resubmit it with the next score, reconnecting whenever the socket fails.
async fn play(addr: Arc<Mutex<String>>, user: String, until: Instant, ledger: Arc<Ledger>) {
    static IDS: AtomicU64 = AtomicU64::new(1);
    let mut pending: Option<(String, u64)> = None;
    // Sessions this player saw accepted, and one to submit again with another score: what a
    // buggy or hostile client does, and what shows a second decision if one can happen.
    let mut decided: Vec<(String, u64)> = Vec::new();
    let mut replay: Option<(String, u64)> = None;
    let mut ids: HashMap<u64, String> = HashMap::new();
    let mut next_score = 1 + user.len() as u64;
    'connection: while Instant::now() < until {
        let target = addr.lock().unwrap().clone();
        let Some(mut ws) = open(&target, &user).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while Instant::now() < until {
            let replaying = replay.is_some();
            let (session, score) = match replay.take().or_else(|| pending.take()) {
                Some(p) => p,
                None => {
                    let start = json!({"type":"start_game","campaign":"quick"}).to_string();
                    if ws.send(Message::Text(start.into())).await.is_err() {
                        continue 'connection;
                    }
                    let session = loop {
                        match next_frame(&mut ws, Duration::from_secs(2)).await {
                            Some(v) if v["type"] == "game_started" => {
                                break v["session"].as_str().unwrap().to_owned();
                            }
                            Some(_) => continue,
                            None => continue 'connection,
                        }
                    };
                    // A human pace, roughly: a game every 10 ms or so per player.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    next_score += 1;
                    (session, next_score)
                }
            };
            let id = IDS.fetch_add(1, Ordering::Relaxed);
            ids.insert(id, session_id(&session));
            ledger
                .tokens
                .lock()
                .unwrap()
                .insert(session_id(&session), session.clone());
            ledger
                .sent
                .lock()
                .unwrap()
                .insert((session_id(&session), score));
            let submit = json!({"type":"submit","session": session,"score": score,"id": id});
            // Unanswered: retried with another score, on a new socket (a replay is not).
            pending = (!replaying).then(|| (session.clone(), score + 1));
            if ws
                .send(Message::Text(submit.to_string().into()))
                .await
                .is_err()
            {
                continue 'connection;
            }
            loop {
                let Some(v) = next_frame(&mut ws, Duration::from_secs(2)).await else {
                    continue 'connection;
                };
                if v["type"] != "result" {
                    continue;
                }
                // Late answers to earlier submits count as answers too.
                let Some(answered) = v["re"].as_u64().and_then(|re| ids.get(&re)) else {
                    continue;
                };
                let reason = v["reason"].as_str().map(str::to_owned);
                let status = v["status"].as_str().unwrap().to_owned();
                ledger.answers.lock().unwrap().push((
                    answered.clone(),
                    status.clone(),
                    reason.clone(),
                    v["score"].as_u64().unwrap(),
                ));
                if v["re"].as_u64() != Some(id) {
                    continue;
                }
                if !replaying && retryable(reason.as_deref()) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                pending = None;
                if !replaying && status == "accepted" {
                    decided.push((session.clone(), score));
                    if decided.len().is_multiple_of(3) {
                        // One of the last twenty: the likeliest to be waiting in the backlog.
                        let back = id as usize % decided.len().min(20);
                        let (token, score) = &decided[decided.len() - 1 - back];
                        replay = Some((token.clone(), score + 1_000));
                    }
                }
                break;
            }
        }
    }
}

/// What the check counted.
#[derive(Debug)]
pub struct Counts {
    pub sessions: usize,
    pub accepted_sessions: usize,
    /// Sessions decided (a row in PostgreSQL) whose accepted answer never reached the player.
    answer_lost: usize,
    pub rows: usize,
    pub retryable_answers: usize,
    /// `internal` answers: a fault of a service is retryable (`unavailable`), never this.
    internal_answers: usize,
    double_decisions: usize,
    lost: usize,
}

/// Waits for the store to settle, then checks the invariant everywhere and answers the counts.
pub async fn check(addr: &str, config: &Config, ledger: &Ledger) -> Counts {
    eventually("the results stream drained into PostgreSQL", || async {
        stream_backlog(config).await == 0
    })
    .await;
    let answers = ledger.answers.lock().unwrap().clone();
    let sent = ledger.sent.lock().unwrap().clone();
    let mut accepted: HashMap<String, HashSet<u64>> = HashMap::new();
    let mut sessions = HashSet::new();
    let mut retryable_answers = 0;
    let mut internal_answers = 0;
    for (session, status, reason, score) in &answers {
        sessions.insert(session.clone());
        if status == "accepted" {
            accepted.entry(session.clone()).or_default().insert(*score);
        }
        retryable_answers += retryable(reason.as_deref()) as usize;
        internal_answers += (reason.as_deref() == Some("internal")) as usize;
    }
    let double_decisions = accepted.values().filter(|s| s.len() > 1).count();
    let rows: HashMap<String, i64> = pg_pairs(config, "SELECT session_id, score FROM results")
        .await
        .into_iter()
        .collect();
    let flagged: HashSet<String> = pg_pairs(config, "SELECT session_id, 0::int8 FROM flagged")
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let lost = accepted
        .iter()
        .filter(|(session, scores)| {
            rows.get(*session)
                .is_none_or(|row| !scores.contains(&(*row as u64)))
        })
        .count();
    let mut answer_lost = 0;
    for (session, score) in &rows {
        assert!(
            !flagged.contains(session),
            "{session} is both accepted and refused in PostgreSQL"
        );
        assert!(
            sent.contains(&(session.clone(), *score as u64)),
            "{session} holds {score}, a score never submitted for it"
        );
        if !accepted.contains_key(session) {
            answer_lost += 1;
        }
    }
    let counts = Counts {
        sessions: sessions.len(),
        accepted_sessions: accepted.len(),
        answer_lost,
        rows: rows.len(),
        retryable_answers,
        internal_answers,
        double_decisions,
        lost,
    };
    assert_decided_once(&counts);
    // Redis agrees: the accepted score is answered again, any other is already_submitted.
    let tokens = ledger.tokens.lock().unwrap().clone();
    let mut sockets: HashMap<String, Ws> = HashMap::new();
    for (session, scores) in &accepted {
        // A session is submitted by the player it belongs to.
        let token = &tokens[session];
        let owner = session_claim(token, "u");
        if !sockets.contains_key(&owner) {
            let ws = open(addr, &owner).await.expect("the owner connects");
            sockets.insert(owner.clone(), ws);
        }
        let ws = sockets.get_mut(&owner).unwrap();
        let score = *scores.iter().next().unwrap();
        for (try_score, want) in [(score, "accepted"), (score + 1_000, "already_submitted")] {
            let submit = json!({"type":"submit","session": token,"score": try_score});
            // `unavailable` decided nothing and asks for the same submit again, as a client
            // would send it; any other answer is the session's.
            let mut tries = 0;
            let v = loop {
                ws.send(Message::Text(submit.to_string().into()))
                    .await
                    .unwrap();
                let v = loop {
                    let v = next_frame(ws, WAIT).await.expect("an answer");
                    if v["type"] == "result" {
                        break v;
                    }
                };
                tries += 1;
                if !retryable(v["reason"].as_str()) || tries == 50 {
                    break v;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let got = if v["status"] == "accepted" {
                "accepted"
            } else {
                v["reason"].as_str().unwrap_or("")
            };
            assert_eq!(got, want, "{session} retried with {try_score}: {v}");
        }
    }
    counts
}

fn assert_decided_once(counts: &Counts) {
    println!(
        "decided once: sessions={} accepted_sessions={} answer_lost={} rows={} retryable_answers={} internal_answers={} double_decisions={} lost={}",
        counts.sessions,
        counts.accepted_sessions,
        counts.answer_lost,
        counts.rows,
        counts.retryable_answers,
        counts.internal_answers,
        counts.double_decisions,
        counts.lost
    );
    assert_eq!(counts.double_decisions, 0, "{counts:?}");
    assert_eq!(counts.lost, 0, "{counts:?}");
    assert_eq!(counts.internal_answers, 0, "{counts:?}");
    assert_eq!(
        counts.rows,
        counts.accepted_sessions + counts.answer_lost,
        "{counts:?}"
    );
    assert!(counts.accepted_sessions > 50, "the load ran: {counts:?}");
}

/// Players on `addr` until `until`.
pub fn load(
    addr: Arc<Mutex<String>>,
    players: usize,
    until: Instant,
) -> (Arc<Ledger>, Vec<tokio::task::JoinHandle<()>>) {
    let ledger = Arc::new(Ledger::default());
    let tasks = (0..players)
        .map(|i| {
            tokio::spawn(play(
                addr.clone(),
                format!("p{i}-{}", unique_tag()),
                until,
                ledger.clone(),
            ))
        })
        .collect();
    (ledger, tasks)
}

pub fn busy(c: &mut Config) {
    c.ws.rate_limit_max_messages = 100_000;
    c.game.max_submits_per_minute = 100_000;
    c.persist.flush_interval_ms = 50;
}

#[tokio::test]
async fn postgres_frozen_then_redis_killed_as_it_resumes_decides_each_session_once() {
    let pg = TempPostgres::start();
    let mut redis = TempRedis::start();
    let server = TestServer::redis(|c| {
        busy(c);
        use_redis_at(c, redis.url());
        c.postgres.url = Some(pg.url());
    });
    let addr = Arc::new(Mutex::new(server.addr.to_string()));
    let started = Instant::now();
    let (ledger, players) = load(addr.clone(), 20, started + Duration::from_secs(12));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.freeze();
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.thaw();
    redis.crash();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.up();
    for p in players {
        p.await.unwrap();
    }
    check(&server.addr.to_string(), &server.config, &ledger).await;
}

#[tokio::test]
async fn redis_killed_twice_in_a_row_decides_each_session_once() {
    let mut redis = TempRedis::start();
    let server = TestServer::redis(|c| {
        busy(c);
        use_redis_at(c, redis.url());
    });
    let addr = Arc::new(Mutex::new(server.addr.to_string()));
    let started = Instant::now();
    let (ledger, players) = load(addr.clone(), 20, started + Duration::from_secs(9));
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        redis.crash();
        tokio::time::sleep(Duration::from_millis(800)).await;
        redis.up();
    }
    for p in players {
        p.await.unwrap();
    }
    check(&server.addr.to_string(), &server.config, &ledger).await;
}

#[tokio::test]
async fn postgres_frozen_and_the_engine_killed_decides_each_session_once() {
    let pg = TempPostgres::start();
    let redis = TempRedis::start();
    let mut config = Config::default();
    use_redis_engine(&mut config);
    use_redis_at(&mut config, redis.url());
    config.postgres.url = Some(pg.url());
    let env = [
        ("WS_RATE_LIMIT_MAX_MESSAGES", "100000"),
        ("GAME_MAX_SUBMITS_PER_MINUTE", "100000"),
        ("PERSIST_FLUSH_INTERVAL", "50"),
    ];
    let mut engine = ProcessServer::spawn(&config, None, &env).await;
    let port = engine.addr.port();
    let addr = Arc::new(Mutex::new(engine.addr.to_string()));
    let started = Instant::now();
    let (ledger, players) = load(addr.clone(), 20, started + Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.freeze();
    tokio::time::sleep(Duration::from_secs(2)).await;
    engine.kill();
    // It starts again while PostgreSQL is still frozen, and waits for it.
    let restarted = tokio::spawn({
        let config = config.clone();
        async move { ProcessServer::spawn(&config, Some(port), &env).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.thaw();
    let engine = restarted.await.unwrap();
    for p in players {
        p.await.unwrap();
    }
    check(&engine.addr.to_string(), &config, &ledger).await;
}

/// Sends `frame` until its `result` is final (not `unavailable`), as a client does.
async fn answer(ws: &mut Ws, frame: String) -> Value {
    for _ in 0..100 {
        ws.send(Message::Text(frame.clone().into())).await.unwrap();
        let v = loop {
            let v = next_frame(ws, WAIT).await.expect("a result");
            if v["type"] == "result" {
                break v;
            }
        };
        if v["reason"] != "unavailable" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never a final answer to {frame}");
}

#[tokio::test]
async fn an_engine_killed_with_a_submit_held_in_flight_decides_it_once_after_a_restart() {
    let redis = TempRedis::start();
    let mut config = Config::default();
    use_redis_engine(&mut config);
    use_redis_at(&mut config, redis.url());
    let env = [
        ("PERSIST_FLUSH_INTERVAL", "20"),
        ("REDIS_POOL_WAIT_TIMEOUT", "5000"),
    ];
    let mut engine = ProcessServer::spawn(&config, None, &env).await;
    let port = engine.addr.port();
    let addr = engine.addr.to_string();
    let mut ws = open(&addr, "held").await.expect("connects");
    let start = json!({"type":"start_game","campaign":"quick"}).to_string();
    ws.send(Message::Text(start.into())).await.unwrap();
    let token = loop {
        let v = next_frame(&mut ws, WAIT).await.expect("game_started");
        if v["type"] == "game_started" {
            break v["session"].as_str().unwrap().to_owned();
        }
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Redis holds every command for a moment: the submit is in flight at the store.
    crate::faults::run(
        "redis-cli",
        &[
            "-p",
            &redis.port.to_string(),
            "client",
            "pause",
            "1500",
            "ALL",
        ],
    );
    let submit = |score: u64| json!({"type":"submit","session": token,"score": score}).to_string();
    ws.send(Message::Text(submit(40).into())).await.unwrap();
    let ping = json!({"type":"ping","id":"after"}).to_string();
    ws.send(Message::Text(ping.into())).await.unwrap();
    assert_eq!(next_frame(&mut ws, WAIT).await.unwrap()["re"], "after");
    engine.kill();

    let engine = ProcessServer::spawn(&config, Some(port), &env).await;
    let mut ws = open(&engine.addr.to_string(), "held")
        .await
        .expect("reconnects");
    // The player never heard about 40 and tries again with 41.
    let retried = answer(&mut ws, submit(41)).await;
    let first = answer(&mut ws, submit(40)).await;
    let verdicts: Vec<bool> = [&retried, &first]
        .iter()
        .map(|v| v["status"] == "accepted")
        .collect();
    assert_eq!(
        verdicts.iter().filter(|a| **a).count(),
        1,
        "exactly one score stands: {retried} {first}"
    );
    let decided: u64 = if verdicts[0] { 41 } else { 40 };
    assert_eq!(
        answer(&mut ws, submit(decided)).await["status"],
        "accepted",
        "and it stays"
    );
    eventually("the decision in PostgreSQL", || async {
        pg_count(&config, "results").await == 1
    })
    .await;
    assert_eq!(
        pg_pairs(&config, "SELECT user_id, score FROM results").await,
        vec![("held".to_owned(), decided as i64)]
    );
}
