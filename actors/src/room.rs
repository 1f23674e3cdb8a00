//! Room: one board of one campaign (`demo/global`) and the sockets watching it.
//!
//! Owns: its members, the top-N list its members hold (as of `seq`), and the dirty flag.
//! Receives [`Join`], [`Leave`], [`Resync`] (forwarded by the RoomRegistry) and [`Dirty`]
//! (a result changed a board of this campaign). Sends [`Push`] frames to member Connections:
//! a `snapshot` to a joining or resyncing member, and on each tick at most one `diff`,
//! serialized once and shared by every member. It never waits for a member: `Push` is
//! fire-and-forget and each Connection guards its own outbound queue.
//!
//! Supervised by actix's `Supervisor` (started by the RoomRegistry). A panic inside a handler
//! is caught, the room stops, and the supervisor restarts it: `restarting` reloads the top
//! list from the store, bumps `seq` and sends every member a fresh snapshot, so clients
//! resync and no member is lost. Rooms live as long as the engine: their number is bounded
//! by the configured campaigns times the board kinds.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::board::{diff, Entry};
use crate::connection::Push;
use crate::ids::{BoardKey, ConnId, RoomId, UserId};
use crate::protocol::{encode, MsgId, ServerMsg, Standing};
use crate::store::MemoryStore;
use crate::telemetry;
use crate::time::now_ms;

struct Member {
    user: UserId,
    out: Recipient<Push>,
}

pub struct Room {
    id: RoomId,
    /// `id` as written on the wire, built once.
    label: String,
    store: Arc<MemoryStore>,
    top_n: usize,
    tick: Duration,
    members: HashMap<ConnId, Member>,
    /// The list every member holds at `seq`: replaced only together with a `seq` bump.
    top: Vec<Entry>,
    seq: u64,
    /// Set when a board of this campaign changed since `top` was read.
    dirty: bool,
    /// The board `top` was read from; a daily room moves to a new key at midnight UTC.
    board: BoardKey,
    /// Set by a caught panic, so `restarting` knows to resync members.
    panicked: bool,
}

impl Room {
    pub fn new(id: RoomId, store: Arc<MemoryStore>, top_n: usize, tick: Duration) -> Self {
        let board = BoardKey::for_room(&id, now_ms());
        let top = store.top(&board, top_n);
        Self {
            label: id.to_string(),
            id,
            store,
            top_n,
            tick,
            members: HashMap::new(),
            top,
            seq: 0,
            dirty: false,
            board,
            panicked: false,
        }
    }

    /// Runs a handler body; a panic stops the room so its supervisor restarts it.
    fn guarded<R: Default>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut Self, &mut Context<Self>) -> R,
    ) -> R {
        match catch_unwind(AssertUnwindSafe(|| f(self, ctx))) {
            Ok(r) => r,
            Err(_) => {
                self.panicked = true;
                ctx.stop();
                R::default()
            }
        }
    }

    fn snapshot_for(&self, user: &UserId, re: Option<&MsgId>) -> Push {
        let me = self
            .top
            .iter()
            .find(|e| &e.user == user)
            .map(|e| Standing {
                rank: e.rank,
                score: e.score,
            })
            .or_else(|| self.store.standing(&self.board, user));
        let frame = encode(
            &ServerMsg::Snapshot {
                room: &self.label,
                seq: self.seq,
                top: &self.top,
                me,
            },
            re,
        );
        telemetry::message_out("snapshot", 1);
        Push { frame }
    }

    fn tick(&mut self) {
        if self.members.is_empty() {
            return;
        }
        let board = BoardKey::for_room(&self.id, now_ms());
        if board != self.board {
            self.board = board;
            self.dirty = true;
        }
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let started = Instant::now();
        let top = self.store.top(&self.board, self.top_n);
        let d = diff(&self.top, &top);
        if d.is_empty() {
            return;
        }
        self.seq += 1;
        self.top = top;
        let push = Push {
            frame: encode(
                &ServerMsg::Diff {
                    room: &self.label,
                    seq: self.seq,
                    server_time: now_ms(),
                    diff: &d,
                },
                None,
            ),
        };
        for member in self.members.values() {
            member.out.do_send(push.clone());
        }
        telemetry::diff_broadcast(
            &self.label,
            push.frame.len(),
            self.members.len(),
            started.elapsed(),
        );
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.tick, |room, ctx| {
            room.guarded(ctx, |room, _| room.tick())
        });
    }
}

impl Supervised for Room {
    fn restarting(&mut self, _: &mut Self::Context) {
        if !std::mem::take(&mut self.panicked) {
            return;
        }
        telemetry::room_restarted(&self.label);
        self.board = BoardKey::for_room(&self.id, now_ms());
        self.top = self.store.top(&self.board, self.top_n);
        self.seq += 1;
        self.dirty = false;
        for member in self.members.values() {
            member.out.do_send(self.snapshot_for(&member.user, None));
        }
    }
}

/// A socket joins; it gets a snapshot tagged with the request's id.
/// Sent through the RoomRegistry, which answers whether the room exists.
#[derive(Message)]
#[rtype(result = "Result<(), crate::error::ClientError>")]
pub struct Join {
    pub room: RoomId,
    pub conn: ConnId,
    pub user: UserId,
    pub out: Recipient<Push>,
    pub re: Option<MsgId>,
}

impl Handler<Join> for Room {
    type Result = Result<(), crate::error::ClientError>;

    /// Joining twice is a resync: the member gets a fresh snapshot.
    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        self.guarded(ctx, |room, _| {
            msg.out
                .do_send(room.snapshot_for(&msg.user, msg.re.as_ref()));
            room.members.insert(
                msg.conn,
                Member {
                    user: msg.user,
                    out: msg.out,
                },
            );
            telemetry::room_members(&room.label, room.members.len());
        });
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub room: RoomId,
    pub conn: ConnId,
}

impl Handler<Leave> for Room {
    type Result = ();

    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) {
        self.guarded(ctx, |room, _| {
            if room.members.remove(&msg.conn).is_some() {
                telemetry::room_members(&room.label, room.members.len());
            }
        })
    }
}

/// A member saw a gap in `seq` and asks for a snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync {
    pub room: RoomId,
    pub conn: ConnId,
    pub re: Option<MsgId>,
}

impl Handler<Resync> for Room {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Self::Context) {
        self.guarded(ctx, |room, _| {
            if let Some(member) = room.members.get(&msg.conn) {
                member
                    .out
                    .do_send(room.snapshot_for(&member.user, msg.re.as_ref()));
            }
        })
    }
}

/// A board of this room's campaign changed: the next tick reads it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dirty;

impl Handler<Dirty> for Room {
    type Result = ();

    fn handle(&mut self, _: Dirty, _: &mut Self::Context) {
        self.dirty = true;
    }
}

/// Test hook: panics inside the room, to prove the supervisor restarts it.
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

#[cfg(test)]
impl Handler<Crash> for Room {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        self.guarded(ctx, |_, _| panic!("injected room panic"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CampaignId;

    /// Collects the frames a member receives.
    struct Sink(tokio::sync::mpsc::UnboundedSender<String>);
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<Push> for Sink {
        type Result = ();
        fn handle(&mut self, msg: Push, _: &mut Self::Context) {
            let _ = self.0.send(msg.frame.to_string());
        }
    }

    async fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> serde_json::Value {
        let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a frame in time");
        serde_json::from_str(&frame.expect("sink open")).unwrap()
    }

    #[actix_rt::test]
    async fn a_panicking_room_is_restarted_and_resyncs_its_members() {
        let store = Arc::new(MemoryStore::default());
        let id = RoomId {
            campaign: CampaignId::new("demo"),
            board: crate::ids::BoardKind::Global,
        };
        let alice = UserId::parse("alice").unwrap();
        let room = Supervisor::start({
            let (store, id) = (store.clone(), id.clone());
            move |_| Room::new(id, store, 10, Duration::from_millis(20))
        });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = Sink(tx).start();
        room.send(Join {
            room: id.clone(),
            conn: ConnId(1),
            user: alice.clone(),
            out: sink.recipient(),
            re: None,
        })
        .await
        .unwrap()
        .unwrap();
        let first = recv(&mut rx).await;
        assert_eq!(
            (first["type"].as_str(), first["seq"].as_u64()),
            (Some("snapshot"), Some(0))
        );

        store.accept(
            "s1",
            &alice,
            10,
            &[BoardKey::for_room(&id, now_ms())],
            u64::MAX,
        );
        // The panicking message is lost (its sender sees an error); the room is not.
        let _ = room.send(Crash).await;
        let resync = recv(&mut rx).await;
        assert_eq!(
            resync["type"], "snapshot",
            "members get a fresh snapshot after a restart"
        );
        assert_eq!(resync["seq"], 1);
        assert_eq!(resync["top"][0]["user"], "alice");

        // Still serving: a tick after a new best sends a diff with the next seq.
        store.accept(
            "s2",
            &alice,
            20,
            &[BoardKey::for_room(&id, now_ms())],
            u64::MAX,
        );
        room.send(Dirty).await.unwrap();
        let d = recv(&mut rx).await;
        assert_eq!(
            (d["type"].as_str(), d["seq"].as_u64()),
            (Some("diff"), Some(2))
        );
        assert_eq!(d["changed"][0]["score"], 20);
    }
}
