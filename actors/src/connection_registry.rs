//! ConnectionRegistry: the one actor that knows every socket of this instance.
//!
//! Owns: the global, per-IP and per-user connection counts, and an address for each socket so
//! it can close them all at shutdown. Receives [`Reserve`] (from the `/ws` route, before the
//! upgrade), [`Attach`] (from a Connection's `started`), [`Authenticate`] (per-user cap),
//! [`Release`] (sent by a [`ConnSlot`] when it drops), [`CloseAll`] and [`AllClosed`]
//! (shutdown), and from the ClusterBus [`KickUser`] (kick, ban) and [`Notify`]
//! (announcements); answers [`Sockets`] (a player's sockets, for the admin API). Sends
//! [`Kick`] and [`Notice`] to Connections. The per-user cap holds across instances through the
//! store's shared
//! [`Counters`]: each authenticated socket also holds a place there, leased for three
//! heartbeats and renewed every heartbeat, so the places of a crashed instance lapse on their
//! own. It also sweeps and syncs the per-user message windows the Connections check. Started by
//! the Engine; it never panics on input, and when it stops the engine is shutting down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::config::WsConfig;
use crate::connection::inbox::{Kick, Notice};
use crate::domain::error::{ClientError, CloseReason};
use crate::domain::ids::{CampaignId, ConnId, UserId};
use crate::store::counters::{Counters, MessageLimiter, SocketPlace};
use crate::telemetry::{self, Stats};

struct Entry {
    ip: IpAddr,
    user: Option<UserId>,
    /// Set once the Connection actor has started; `None` between reserve and start.
    conn: Option<Recipient<Kick>>,
    notices: Option<Recipient<Notice>>,
    /// When the socket was reserved (Unix ms), for the operator's view of a player.
    since_ms: u64,
}

pub struct ConnectionRegistry {
    limits: WsConfig,
    /// Every reserved socket. An entry lives exactly as long as its [`ConnSlot`].
    conns: HashMap<ConnId, Entry>,
    /// Derived from `conns`, kept in step by `reserve`/`authenticate`/`release` only.
    per_ip: HashMap<IpAddr, usize>,
    per_user: HashMap<UserId, usize>,
    next_id: u64,
    /// False once shutdown began: new sockets are refused.
    accepting: bool,
    stats: Arc<Stats>,
    /// Per-user message windows, checked by Connections directly; swept here.
    limiter: Arc<MessageLimiter>,
    /// Where per-user places are shared with the other instances.
    counters: Counters,
    /// This instance's id in the cluster, in its sockets' places.
    instance: String,
    /// Who waits for the last socket to close (shutdown, see [`AllClosed`]).
    emptied: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl ConnectionRegistry {
    pub fn new(
        limits: WsConfig,
        stats: Arc<Stats>,
        limiter: Arc<MessageLimiter>,
        counters: Counters,
        instance: String,
    ) -> Self {
        Self {
            counters,
            instance,
            limits,
            emptied: Vec::new(),
            conns: HashMap::new(),
            per_ip: HashMap::new(),
            per_user: HashMap::new(),
            next_id: 0,
            accepting: true,
            stats,
            limiter,
        }
    }

    fn place(&self, id: ConnId, entry: &Entry) -> SocketPlace {
        SocketPlace {
            instance: self.instance.clone(),
            conn: id.0,
            ip: entry.ip,
            since_ms: entry.since_ms,
        }
    }

    /// How long a place in Redis lasts without renewal: three heartbeats.
    fn lease(&self) -> Duration {
        Duration::from_millis(self.limits.heartbeat_interval_ms * 3)
    }

    /// Counts an authenticated socket here; false if this instance alone is at the cap.
    fn admit(&mut self, id: ConnId, user: UserId) -> bool {
        let count = self.per_user.get(&user).copied().unwrap_or(0);
        let Some(entry) = self.conns.get_mut(&id) else {
            return false;
        };
        if count >= self.limits.max_connections_per_user {
            return false;
        }
        self.per_user.insert(user.clone(), count + 1);
        entry.user = Some(user);
        self.publish_counts();
        true
    }

    fn publish_counts(&self) {
        self.stats
            .connections
            .store(self.conns.len() as i64, Ordering::Relaxed);
        self.stats
            .users
            .store(self.per_user.len() as i64, Ordering::Relaxed);
        telemetry::connection_counts(self.conns.len(), self.per_user.len());
    }
}

impl Actor for ConnectionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        telemetry::connection_cap(self.limits.max_connections);
        let every = Duration::from_millis(self.limits.cleanup_interval_ms);
        ctx.run_interval(every, |act, _| {
            act.limiter.sweep();
        });
        if let Some(every) = self.limiter.sync_interval() {
            ctx.run_interval(every, |act, _| {
                let limiter = act.limiter.clone();
                actix_rt::spawn(async move { limiter.sync().await });
            });
        }
        if !self.counters.is_shared() {
            return;
        }
        ctx.run_interval(
            Duration::from_millis(self.limits.heartbeat_interval_ms),
            |act, _| {
                let held: Vec<(String, SocketPlace)> = act
                    .conns
                    .iter()
                    .filter_map(|(id, e)| Some((e.user.as_ref()?.to_string(), act.place(*id, e))))
                    .collect();
                if held.is_empty() {
                    return;
                }
                let (counters, lease) = (act.counters.clone(), act.lease());
                actix_rt::spawn(async move {
                    if let Err(err) = counters.renew_sockets(&held, lease).await {
                        tracing::warn!(%err, "could not renew per-user socket places");
                    }
                });
            },
        );
    }
}

/// A reserved place for one socket. Dropping it (the Connection actor ends, or the upgrade
/// never happens) releases the place, so counts cannot leak.
pub struct ConnSlot {
    pub id: ConnId,
    registry: Addr<ConnectionRegistry>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.registry.do_send(Release { id: self.id });
    }
}

/// Checks the global and per-IP caps and reserves a place.
#[derive(Message)]
#[rtype(result = "Result<ConnSlot, ClientError>")]
pub struct Reserve {
    pub ip: IpAddr,
}

impl Handler<Reserve> for ConnectionRegistry {
    type Result = Result<ConnSlot, ClientError>;

    fn handle(&mut self, msg: Reserve, ctx: &mut Self::Context) -> Self::Result {
        if !self.accepting {
            return Err(ClientError::ShuttingDown);
        }
        if self.conns.len() >= self.limits.max_connections {
            return Err(ClientError::ServerAtCapacity);
        }
        let per_ip = self.per_ip.entry(msg.ip).or_default();
        if self.limits.max_connections_per_ip > 0 && *per_ip >= self.limits.max_connections_per_ip {
            return Err(ClientError::TooManyConnectionsForIp);
        }
        *per_ip += 1;
        self.next_id += 1;
        let id = ConnId(self.next_id);
        self.conns.insert(
            id,
            Entry {
                ip: msg.ip,
                user: None,
                conn: None,
                notices: None,
                since_ms: crate::domain::clock::now_ms(),
            },
        );
        self.publish_counts();
        Ok(ConnSlot {
            id,
            registry: ctx.address(),
        })
    }
}

/// A Connection actor has started and can be kicked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach {
    pub id: ConnId,
    pub conn: Recipient<Kick>,
    pub notices: Recipient<Notice>,
}

impl Handler<Attach> for ConnectionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Attach, _: &mut Self::Context) {
        match self.conns.get_mut(&msg.id) {
            Some(entry) if self.accepting => {
                entry.conn = Some(msg.conn);
                entry.notices = Some(msg.notices);
            }
            // Shutdown began between the upgrade and the actor's start.
            _ => msg.conn.do_send(Kick(CloseReason::Shutdown)),
        }
    }
}

/// The socket proved it is `user`; checks the per-user cap.
#[derive(Message)]
#[rtype(result = "Result<(), ClientError>")]
pub struct Authenticate {
    pub id: ConnId,
    pub user: UserId,
}

impl Handler<Authenticate> for ConnectionRegistry {
    type Result = ResponseActFuture<Self, Result<(), ClientError>>;

    fn handle(&mut self, msg: Authenticate, _: &mut Self::Context) -> Self::Result {
        let at_cap = self.per_user.get(&msg.user).copied().unwrap_or(0)
            >= self.limits.max_connections_per_user;
        if at_cap {
            return Box::pin(actix::fut::ready(Err(
                ClientError::TooManyConnectionsForUser,
            )));
        }
        let Some(entry) = self.conns.get(&msg.id) else {
            return Box::pin(actix::fut::ready(Err(
                ClientError::TooManyConnectionsForUser,
            )));
        };
        let (counters, place, cap, lease) = (
            self.counters.clone(),
            self.place(msg.id, entry),
            self.limits.max_connections_per_user,
            self.lease(),
        );
        let user = msg.user.to_string();
        let claim = async move { counters.claim_socket(&user, &place, cap, lease).await };
        Box::pin(claim.into_actor(self).map(move |claimed, act, _| {
            // The shared counters unreachable: this instance's own count is the cap until
            // they return.
            if matches!(claimed, Ok(false)) || !act.admit(msg.id, msg.user) {
                return Err(ClientError::TooManyConnectionsForUser);
            }
            Ok(())
        }))
    }
}

/// Counts one socket fewer for `key`, forgetting keys that reach zero so the maps hold only
/// live addresses and users.
fn release_one<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// Sent by a dropping [`ConnSlot`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release {
    pub id: ConnId,
}

impl Handler<Release> for ConnectionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Self::Context) {
        let Some(entry) = self.conns.remove(&msg.id) else {
            return;
        };
        release_one(&mut self.per_ip, &entry.ip);
        if let Some(user) = &entry.user {
            release_one(&mut self.per_user, user);
            if self.counters.is_shared() {
                let (counters, place) = (self.counters.clone(), self.place(msg.id, &entry));
                let user = user.clone();
                actix_rt::spawn(async move {
                    // A place left behind lapses with its lease anyway.
                    let _ = counters.release_socket(user.as_str(), &place).await;
                });
            }
        }
        self.publish_counts();
        if self.conns.is_empty() {
            for waiter in self.emptied.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}

/// Answers once no socket is open on this instance (shutdown waits for it after
/// [`CloseAll`]: a socket closes only after answering its submits in flight).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AllClosed;

impl Handler<AllClosed> for ConnectionRegistry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: AllClosed, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.conns.is_empty() {
            let _ = tx.send(());
        } else {
            self.emptied.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Shutdown: refuse new sockets and close every open one with 1001. Answers with how many
/// sockets were told to close.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseAll;

impl Handler<CloseAll> for ConnectionRegistry {
    type Result = usize;

    fn handle(&mut self, _: CloseAll, _: &mut Self::Context) -> usize {
        self.accepting = false;
        let mut told = 0;
        for conn in self.conns.values().filter_map(|e| e.conn.as_ref()) {
            conn.do_send(Kick(CloseReason::Shutdown));
            told += 1;
        }
        told
    }
}

/// Close every socket of `user` on this instance for `reason` (kicked or banned). Answers how
/// many were told to close.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct KickUser {
    pub user: UserId,
    pub reason: CloseReason,
}

impl Handler<KickUser> for ConnectionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: KickUser, _: &mut Self::Context) -> usize {
        let mut told = 0;
        for entry in self.conns.values() {
            if let (Some(conn), Some(user)) = (&entry.conn, &entry.user) {
                if *user == msg.user {
                    conn.do_send(Kick(msg.reason));
                    told += 1;
                }
            }
        }
        told
    }
}

/// An announcement (an encoded `announce` frame) for every authenticated socket; each one
/// sends it if it is in `campaign`'s rooms (or always, when `campaign` is `None`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Notify {
    pub frame: String,
    pub campaign: Option<CampaignId>,
}

impl Handler<Notify> for ConnectionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Notify, _: &mut Self::Context) {
        let notice = Notice {
            frame: msg.frame.into(),
            campaign: msg.campaign,
        };
        for entry in self.conns.values().filter(|e| e.user.is_some()) {
            if let Some(notices) = &entry.notices {
                notices.do_send(notice.clone());
            }
        }
    }
}

/// The sockets `user` holds on this instance.
#[derive(Message)]
#[rtype(result = "Vec<SocketPlace>")]
pub struct Sockets {
    pub user: UserId,
}

impl Handler<Sockets> for ConnectionRegistry {
    type Result = Vec<SocketPlace>;

    fn handle(&mut self, msg: Sockets, _: &mut Self::Context) -> Vec<SocketPlace> {
        self.conns
            .iter()
            .filter(|(_, e)| e.user.as_ref() == Some(&msg.user))
            .map(|(id, e)| self.place(*id, e))
            .collect()
    }
}
