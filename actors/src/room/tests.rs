//! A Room on its own: a memory store, a sink standing in for the members' Connections.

use super::*;
use crate::domain::clock::now_ms;
use crate::domain::decision::Attempt;
use crate::domain::ids::{BoardKind, CampaignId};
use crate::store::memory::MemoryStore;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Collects the frames a member receives.
struct Sink(tokio::sync::mpsc::UnboundedSender<String>);
impl Actor for Sink {
    type Context = Context<Self>;
}
impl Handler<Deliver> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        let text = String::from_utf8(msg.frame.payload().to_vec()).unwrap();
        let _ = self.0.send(text);
    }
}

async fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> serde_json::Value {
    let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a frame in time");
    serde_json::from_str(&frame.expect("sink open")).unwrap()
}

fn accept(store: &MemoryStore, session: &str, user: &UserId, score: u64, room: &RoomId) {
    accept_at(store, session, user, score, room, now_ms());
}

fn accept_at(
    store: &MemoryStore,
    session: &str,
    user: &UserId,
    score: u64,
    room: &RoomId,
    at: u64,
) {
    let board = BoardKey::for_room(room, at);
    store
        .decide(&Attempt {
            session_id: session,
            user,
            campaign: &room.campaign,
            score,
            started_ms: 0,
            now_ms: at,
            keep_until_ms: u64::MAX,
            refused: None,
            region: None,
            boards: &[(board, None)],
            fallback: false,
            limit: None,
            counted: None,
        })
        .expect("nobody is banned");
}

#[actix_rt::test]
async fn a_panicking_room_is_restarted_and_resyncs_its_members() {
    let memory = std::sync::Arc::new(MemoryStore::default());
    let store = Store::Memory(memory.clone());
    let id = RoomId {
        campaign: CampaignId::new("demo"),
        board: BoardKind::Global,
    };
    let alice = UserId::parse("alice").unwrap();
    let room = Supervisor::start({
        let id = id.clone();
        move |_| Room::new(id, store, 10, Duration::from_millis(20), Clock::System)
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = Sink(tx).start();
    let join = Join {
        room: id.clone(),
        conn: ConnId(1),
        user: alice.clone(),
        out: sink.recipient(),
        re: None,
    };
    room.send(join).await.unwrap().unwrap();
    let first = recv(&mut rx).await;
    assert_eq!(
        (first["type"].as_str(), first["seq"].as_u64()),
        (Some("snapshot"), Some(0))
    );

    // The panicking message is lost (its sender sees an error); the room is not.
    accept(&memory, "s1", &alice, 10, &id);
    let _ = room.send(Crash).await;
    let resync = recv(&mut rx).await;
    assert_eq!(
        resync["type"], "snapshot",
        "members get a fresh snapshot after a restart"
    );
    assert_eq!(resync["seq"], 1);
    assert_eq!(resync["top"][0]["user"], "alice");

    // Still serving: a new best shows up as a diff with the next seq.
    accept(&memory, "s2", &alice, 20, &id);
    let d = recv(&mut rx).await;
    assert_eq!(
        (d["type"].as_str(), d["seq"].as_u64()),
        (Some("diff"), Some(2))
    );
    assert_eq!(d["changed"][0]["score"], 20);
}

#[actix_rt::test]
async fn a_live_daily_room_rolls_over_to_the_new_day_at_midnight() {
    let memory = Arc::new(MemoryStore::default());
    let id = RoomId {
        campaign: CampaignId::new("demo"),
        board: BoardKind::Daily,
    };
    // 2026-11-22T23:59:59.900Z, then one second later.
    let before_midnight = 1_795_391_999_900;
    let after_midnight = before_midnight + 1_000;
    let now = Arc::new(AtomicU64::new(before_midnight));
    let (alice, bob) = (
        UserId::parse("alice").unwrap(),
        UserId::parse("bob").unwrap(),
    );
    accept_at(&memory, "d1", &alice, 50, &id, before_midnight);
    let room = Room::new(
        id.clone(),
        Store::Memory(memory.clone()),
        10,
        Duration::from_millis(20),
        Clock::Manual(now.clone()),
    )
    .start();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let join = Join {
        room: id.clone(),
        conn: ConnId(1),
        user: bob.clone(),
        out: Sink(tx).start().recipient(),
        re: None,
    };
    room.send(join).await.unwrap().unwrap();
    let snap = recv(&mut rx).await;
    assert_eq!(
        snap["top"][0]["user"], "alice",
        "yesterday's board until midnight"
    );

    // Midnight passes; the new day's board has only bob.
    accept_at(&memory, "d2", &bob, 10, &id, after_midnight);
    now.store(after_midnight, Ordering::Relaxed);
    let d = recv(&mut rx).await;
    assert_eq!(d["type"], "diff");
    assert_eq!(d["removed"], serde_json::json!(["alice"]));
    assert_eq!(d["changed"][0]["user"], "bob");
    assert_eq!(d["changed"][0]["rank"], 1);
}
