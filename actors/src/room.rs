//! Room: one board of one campaign (`demo/global`) and the sockets watching it.
//!
//! Owns: its members, the top-N list its members hold (as of `seq`), and the board version
//! that list was read at. Receives [`Join`], [`Leave`], [`Resync`] and [`Reset`] (forwarded by
//! the RoomRegistry). Each tick it reads its board's version from the store, so a result accepted
//! by any engine instance shows up, and only when the version moved reads the top list. Sends
//! [`Deliver`] to the Hub of each member's worker thread: a `snapshot` for a joining or
//! resyncing member, and on each tick at most one `diff`, encoded once and sent as one message
//! per thread with the members there. It never waits for a member: `Deliver` is
//! fire-and-forget and each socket guards its own outbound queue.
//!
//! Supervised by actix's `Supervisor` (started by the RoomRegistry). A panic inside a handler
//! is caught, the room stops, and the supervisor restarts it: `restarting` reloads the top
//! list from the store, bumps `seq` and sends every member a fresh snapshot, so clients
//! resync and no member is lost. A room empty for `ROOM_IDLE_GRACE` sends [`Idle`] to the
//! RoomRegistry each tick until the registry answers [`Close`] (it does unless a join is on
//! its way), and then stops for good; the RoomRegistry caps how many rooms there are
//! (`ROOM_MAX_ROOMS`).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use actix::prelude::*;

use std::sync::Arc;

use crate::connection::hub::Deliver;
use crate::connection::socket::Frame;
use crate::domain::board::{diff, Entry, Standing};
use crate::domain::clock::Clock;
use crate::domain::error::ClientError;
use crate::domain::ids::{BoardKey, ConnId, RoomId, UserId};
use crate::domain::protocol::{encode, MsgId, ServerMsg};
use crate::store::{Store, StoreError};
use crate::telemetry;

/// The members on one worker thread, with that thread's Hub.
type Group = (Recipient<Deliver>, Arc<[ConnId]>);

struct Member {
    user: UserId,
    /// The Hub of the member's worker thread.
    out: Recipient<Deliver>,
}

pub struct Room {
    id: RoomId,
    /// `id` as written on the wire, built once.
    label: String,
    store: Store,
    top_n: usize,
    tick: Duration,
    members: HashMap<ConnId, Member>,
    /// The members grouped by Hub, built when a broadcast needs it after members changed.
    fanout: Option<Vec<Group>>,
    /// The list every member holds at `seq`: replaced only together with a `seq` bump.
    top: Vec<Entry>,
    seq: u64,
    /// The board `top` was read from; a daily room moves to a new key at midnight UTC.
    board: BoardKey,
    /// The board's version when `top` was read; `None` forces a read (new or restarted room).
    version: Option<u64>,
    /// A read of the store is under way: ticks skip rather than pile up behind a slow store.
    loading: bool,
    /// Set by a caught panic: the next read sends every member a snapshot instead of a diff.
    resync: bool,
    /// Joins that arrived before the first read of the board; answered right after it.
    waiting: Vec<Join>,
    /// Joiners whose snapshot is being prepared (their standing is read first). A Leave
    /// meanwhile takes them out, so a socket that closed while joining never becomes a member
    /// that nothing would ever remove.
    joining: std::collections::HashSet<ConnId>,
    /// The clock that says which day a daily room shows.
    clock: Clock,
    /// Joins this room received: the registry compares it with the joins it forwarded, so it
    /// never closes a room a join is on its way to.
    joins: u64,
    /// Since when the room has had nobody (members, joiners or waiting joins).
    empty_since: Option<Instant>,
    /// How long a room may stay empty, and whom it tells when that passed.
    idle: Option<(Duration, Recipient<Idle>)>,
}

impl Room {
    pub fn new(id: RoomId, store: Store, top_n: usize, tick: Duration, clock: Clock) -> Self {
        let board = BoardKey::for_room(&id, clock.now_ms());
        Self {
            label: id.to_string(),
            id,
            store,
            top_n,
            tick,
            members: HashMap::new(),
            fanout: None,
            top: Vec::new(),
            seq: 0,
            board,
            version: None,
            loading: false,
            resync: false,
            waiting: Vec::new(),
            joining: Default::default(),
            clock,
            joins: 0,
            empty_since: None,
            idle: None,
        }
    }

    /// Tells `owner` once the room has been empty for `grace` (see [`Idle`]).
    pub fn stop_when_idle(mut self, grace: Duration, owner: Recipient<Idle>) -> Self {
        self.idle = Some((grace, owner));
        self
    }

    /// Notes whether the room is empty now, and tells its owner once it has been for the
    /// grace period (every tick after, until it is closed or someone joins).
    fn watch_idle(&mut self) {
        let empty = self.members.is_empty() && self.joining.is_empty() && self.waiting.is_empty();
        if !empty {
            self.empty_since = None;
            return;
        }
        let since = *self.empty_since.get_or_insert_with(Instant::now);
        if let Some((grace, owner)) = &self.idle {
            if since.elapsed() >= *grace {
                owner.do_send(Idle {
                    room: self.id.clone(),
                    joins: self.joins,
                });
            }
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
                self.resync = true;
                ctx.stop();
                R::default()
            }
        }
    }

    /// Sends `member` (socket `conn`) a snapshot of the list as of `seq`, with their standing.
    fn snapshot(&self, conn: ConnId, member: &Member, me: Option<Standing>, re: Option<&MsgId>) {
        telemetry::message_out("snapshot", 1);
        let text = encode(
            &ServerMsg::Snapshot {
                room: &self.label,
                seq: self.seq,
                top: &self.top,
                me,
            },
            re,
        );
        member.out.do_send(Deliver::one(conn, Frame::text(&text)));
    }

    /// The members grouped by the Hub of their thread.
    fn fanout(&mut self) -> &[Group] {
        let members = &self.members;
        self.fanout.get_or_insert_with(|| {
            let mut by_hub: HashMap<&Recipient<Deliver>, Vec<ConnId>> = HashMap::new();
            for (conn, member) in members {
                by_hub.entry(&member.out).or_default().push(*conn);
            }
            by_hub
                .into_iter()
                .map(|(hub, conns)| (hub.clone(), conns.into()))
                .collect()
        })
    }

    /// The member's standing, from the top list when they are in it.
    fn standing_in_top(&self, user: &UserId) -> Option<Standing> {
        self.top.iter().find(|e| &e.user == user).map(|e| Standing {
            rank: e.rank,
            score: e.score,
        })
    }

    /// Reads the board if its version moved (or the day rolled over) and broadcasts the change.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.watch_idle();
        if self.loading || (self.members.is_empty() && self.version.is_some()) {
            return;
        }
        self.loading = true;
        let board = BoardKey::for_room(&self.id, self.clock.now_ms());
        let known = if board == self.board {
            self.version
        } else {
            None
        };
        let (store, top_n) = (self.store.clone(), self.top_n);
        let read = async move {
            let version = store.version(&board).await?;
            if known == Some(version) {
                return Ok(None);
            }
            let top = store.top(&board, top_n).await?;
            Ok::<_, StoreError>(Some((board, version, top)))
        };
        ctx.spawn(read.into_actor(self).map(|read, room, ctx| {
            room.loading = false;
            match read {
                Ok(Some((board, version, top))) => {
                    room.guarded(ctx, |room, _| room.publish(board, version, top));
                    for join in std::mem::take(&mut room.waiting) {
                        room.join(join, ctx);
                    }
                }
                Ok(None) => {}
                Err(err) => telemetry::room_read_failed(&room.label, &err),
            }
        }));
    }

    /// Looks up the player's standing, then sends them a snapshot. A joiner becomes a member
    /// only then, so it never sees a diff before its base; a resync is skipped if the member
    /// left meanwhile.
    fn send_snapshot(
        &mut self,
        ctx: &mut Context<Self>,
        conn: ConnId,
        member: Member,
        re: Option<MsgId>,
        joining: bool,
    ) {
        let (store, board, user) = (self.store.clone(), self.board.clone(), member.user.clone());
        let lookup = async move { store.standing(&board, &user).await };
        ctx.spawn(lookup.into_actor(self).map(move |me, room, ctx| {
            room.guarded(ctx, |room, _| {
                let still_here = if joining {
                    room.joining.remove(&conn)
                } else {
                    room.members.contains_key(&conn)
                };
                if !still_here {
                    return;
                }
                let me = room.standing_in_top(&member.user).or(me.ok().flatten());
                room.snapshot(conn, &member, me, re.as_ref());
                if joining {
                    room.members.insert(conn, member);
                    room.fanout = None;
                    telemetry::room_members(&room.label, room.members.len());
                }
            })
        }));
    }

    fn join(&mut self, msg: Join, ctx: &mut Context<Self>) {
        self.joining.insert(msg.conn);
        let member = Member {
            user: msg.user,
            out: msg.out,
        };
        self.send_snapshot(ctx, msg.conn, member, msg.re, true);
    }

    fn publish(&mut self, board: BoardKey, version: u64, top: Vec<Entry>) {
        let started = Instant::now();
        self.board = board;
        self.version = Some(version);
        if std::mem::take(&mut self.resync) {
            self.seq += 1;
            self.top = top;
            for (conn, member) in &self.members {
                self.snapshot(*conn, member, self.standing_in_top(&member.user), None);
            }
            return;
        }
        let d = diff(&self.top, &top);
        if d.is_empty() {
            return;
        }
        self.seq += 1;
        self.top = top;
        let text = encode(
            &ServerMsg::Diff {
                room: &self.label,
                seq: self.seq,
                server_time: self.clock.now_ms(),
                diff: &d,
            },
            None,
        );
        let frame = Frame::text(&text);
        for (hub, conns) in self.fanout() {
            hub.do_send(Deliver {
                frame: frame.clone(),
                to: conns.clone(),
            });
        }
        telemetry::diff_broadcast(
            &self.label,
            text.len(),
            self.members.len(),
            started.elapsed(),
        );
    }
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
        ctx.run_interval(self.tick, |room, ctx| {
            room.guarded(ctx, |room, ctx| room.tick(ctx))
        });
    }
}

impl Supervised for Room {
    fn restarting(&mut self, _: &mut Self::Context) {
        telemetry::room_restarted(&self.label);
        // `started` runs again next and reads the board; `resync` makes that read a snapshot
        // for every member.
        self.version = None;
        self.loading = false;
    }
}

/// Sent through the RoomRegistry, which answers whether the room exists.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Join {
    pub room: RoomId,
    pub conn: ConnId,
    pub user: UserId,
    /// The Hub of the joining socket's thread.
    pub out: Recipient<Deliver>,
    pub re: Option<MsgId>,
}

impl Handler<Join> for Room {
    type Result = Result<(), ClientError>;

    /// Joining twice is a resync: the member gets a fresh snapshot. A room that has not read
    /// its board yet answers once it has.
    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        self.joins += 1;
        self.empty_since = None;
        if self.version.is_none() {
            self.waiting.push(msg);
            self.tick(ctx);
        } else {
            self.join(msg, ctx);
        }
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
            room.joining.remove(&msg.conn);
            room.waiting.retain(|join| join.conn != msg.conn);
            if room.members.remove(&msg.conn).is_some() {
                room.fanout = None;
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
        let Some(member) = self.members.get(&msg.conn) else {
            return;
        };
        let member = Member {
            user: member.user.clone(),
            out: member.out.clone(),
        };
        self.send_snapshot(ctx, msg.conn, member, msg.re, false);
    }
}

/// Sent by a Room to its owner (the RoomRegistry) when it has been empty for the grace
/// period, with the number of joins it received. It lives here, beside its sender, because
/// the registry that receives it already imports this file and the Room must not import the
/// registry.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Idle {
    pub room: RoomId,
    pub joins: u64,
}

/// An operator reset the room's board: the next read sends every member a fresh snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reset;

impl Handler<Reset> for Room {
    type Result = ();

    fn handle(&mut self, _: Reset, _: &mut Self::Context) {
        self.resync = true;
        self.version = None;
    }
}

/// The owner's answer to [`Idle`]: nothing is on its way to the room, which stops. Its owner
/// has dropped its address by then, so the supervisor does not restart it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

impl Handler<Close> for Room {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        telemetry::room_members(&self.label, 0);
        ctx.stop();
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
mod tests;
