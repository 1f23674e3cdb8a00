//! ClusterBus: carries operator events (bans, kicks, announcements, campaign changes, board
//! resets) to every instance that needs them, this one included.
//!
//! Owns: this instance's id and description, the subscriber to Redis Pub/Sub (redis engine),
//! the set of campaigns served here, and the heartbeat that lists this instance under
//! `GET /admin/instances`. Receives [`Publish`] from the admin routes, after they changed the
//! store: it applies the event here at once and publishes it for the other instances, which
//! apply it when it arrives; [`AutoBanned`] from the ResultsPipelines; [`CampaignRooms`] from
//! the RoomRegistry. Sends [`KickUser`] and [`Notify`] to the ConnectionRegistry and
//! [`ResetRoom`] to the RoomRegistry, writes the [`CampaignBook`] and [`BanBook`], and puts
//! back on the boards, within a second, the players whose ban ran out.
//!
//! Channels: every instance listens to `bus` (campaign changes, bans, kicks, announcements to
//! all, which any instance may need, since any may hold the player or start the game), and to
//! `bus:c:{campaign}` only while it has a room of the campaign (that campaign's board resets
//! and announcements). The bus carries only what changed, never the truth: an instance
//! re-reads from the store what an event names (the campaign, or the bans), and every
//! campaign and ban when its subscriber (re)connects and every [`REREAD_EVERY`], so an event
//! missed during a Redis outage is made good. Its own events come back from Redis and are
//! skipped by origin. The subscriber reconnects with backoff, up to [`MAX_BACKOFF`]. With the
//! memory engine there is one instance and no channel. Started by the Engine; it holds
//! nothing a restart would lose.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::connection_registry::{ConnectionRegistry, KickUser, Notify};
use crate::domain::clock::now_ms;
use crate::domain::error::CloseReason;
use crate::domain::ids::{CampaignId, LiveBoard, UserId};
use crate::domain::operator::Ban;
use crate::room_registry::{CampaignRooms, CountRooms, ResetRoom, RoomRegistry, WatchCampaigns};
use crate::store::live::{BanBook, CampaignBook};
use crate::store::redis::bus::BusSink;
use crate::store::redis::RedisStore;
use crate::store::Store;

/// How often campaigns and bans are re-read from the store whatever the bus says.
pub const REREAD_EVERY: Duration = Duration::from_secs(10);
/// How often the ban book is looked at for bans that ran out (no I/O unless one has).
const LAPSE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Longest pause between two attempts to resubscribe.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often this instance says it is alive, and how long that lasts.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(6);

/// What happened, as the bus carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A campaign was created or changed: re-read it.
    Campaign { name: CampaignId },
    /// A player was banned: re-read the bans and close their sockets with 4403.
    Ban { user: UserId },
    /// A ban was lifted: re-read the bans.
    Unban { user: UserId },
    /// Close the player's sockets with 4000; they may reconnect.
    Kick { user: UserId },
    /// A board was reset: its room on each instance sends every member a snapshot. The room
    /// is written `campaign/board` as on the wire.
    BoardReset { room: String },
    /// An `announce` frame (already encoded) to every player, or those in a campaign's rooms.
    Announce {
        frame: String,
        campaign: Option<CampaignId>,
    },
}

/// An event on the wire, with the instance it came from.
#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    event: Event,
}

/// This instance as `GET /admin/instances` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at_ms: u64,
    pub connections: i64,
    pub users: i64,
    pub rooms: i64,
    pub heartbeat_ms: u64,
    /// Submits answered per minute, oldest first (absent from older instances' heartbeats).
    #[serde(default)]
    pub submits: Vec<crate::telemetry::SubmitMinute>,
}

pub struct ClusterBus {
    store: Store,
    campaigns: Arc<CampaignBook>,
    bans: Arc<BanBook>,
    connections: Addr<ConnectionRegistry>,
    /// This instance; the counts in it are refreshed at each heartbeat.
    me: InstanceInfo,
    /// The figures the heartbeat reports: connections and users, and rooms from the
    /// RoomRegistry.
    stats: Arc<crate::telemetry::Stats>,
    rooms: Addr<RoomRegistry>,
    /// The campaigns with a room here, whose channels the subscriber listens to.
    served: HashSet<CampaignId>,
    /// The live subscription's command half, to follow `served`; `None` while Redis is away.
    sink: Option<BusSink>,
}

impl ClusterBus {
    pub fn new(
        store: Store,
        campaigns: Arc<CampaignBook>,
        bans: Arc<BanBook>,
        connections: Addr<ConnectionRegistry>,
        me: InstanceInfo,
        stats: Arc<crate::telemetry::Stats>,
        rooms: Addr<RoomRegistry>,
    ) -> Self {
        Self {
            store,
            campaigns,
            bans,
            connections,
            me,
            stats,
            rooms,
            served: HashSet::new(),
            sink: None,
        }
    }

    /// Where `event` is published: a campaign's room events on its channel, the rest where
    /// every instance hears them.
    fn channel(redis: &RedisStore, event: &Event) -> String {
        let campaign = match event {
            Event::BoardReset { room } => room.split_once('/').map(|(c, _)| c),
            Event::Announce {
                campaign: Some(c), ..
            } => Some(c.as_str()),
            _ => None,
        };
        campaign.map_or_else(|| redis.bus_channel(), |c| redis.campaign_channel(c))
    }

    /// Starts or stops listening to `campaign`'s channel on the live subscription (a lost one
    /// subscribes to all of `served` when it is back).
    fn follow(&self, ctx: &mut Context<Self>, campaign: &CampaignId, listen: bool) {
        let (Some(sink), Store::Durable(durable)) = (&self.sink, &self.store) else {
            return;
        };
        let (mut sink, channel) = (
            sink.clone(),
            durable.redis.campaign_channel(campaign.as_str()),
        );
        ctx.spawn(
            async move {
                let done = if listen {
                    sink.subscribe(&channel).await
                } else {
                    sink.unsubscribe(&channel).await
                };
                if let Err(err) = done {
                    tracing::warn!(%err, channel, listen, "cluster bus: could not follow a campaign");
                }
            }
            .into_actor(self),
        );
    }

    /// Applies an event on this instance.
    fn apply(&mut self, event: Event, ctx: &mut Context<Self>) {
        match event {
            Event::Campaign { name } => self.reread_campaign(ctx, name),
            Event::Ban { user } => self.reread_bans(ctx, Some(user)),
            Event::Unban { .. } => self.reread_bans(ctx, None),
            Event::Kick { user } => self.connections.do_send(KickUser {
                user,
                reason: CloseReason::Kicked,
            }),
            Event::BoardReset { room } => match crate::domain::ids::RoomId::parse(&room) {
                Ok(room) => self.rooms.do_send(ResetRoom { room }),
                Err(_) => tracing::warn!(room, "cluster bus: a reset of a room podium cannot read"),
            },
            Event::Announce { frame, campaign } => {
                self.connections.do_send(Notify { frame, campaign })
            }
        }
    }

    /// Re-reads one campaign from the store into the book: what a campaign event says changed.
    fn reread_campaign(&self, ctx: &mut Context<Self>, name: CampaignId) {
        let (store, campaigns) = (self.store.clone(), self.campaigns.clone());
        ctx.spawn(
            async move {
                match store.campaign(name.as_str()).await {
                    Ok(Some(c)) => {
                        campaigns.apply(c);
                    }
                    Ok(None) => tracing::warn!(campaign = %name, "an event named a campaign the store does not hold"),
                    Err(err) => tracing::warn!(%err, "could not re-read a campaign"),
                }
            }
            .into_actor(self),
        );
    }

    /// Re-reads the bans in force into the book: what a ban or unban event says changed. Then
    /// closes the sockets of `banned`: only once the book holds the ban, so a player who
    /// reconnects at once is refused, not let back in.
    fn reread_bans(&self, ctx: &mut Context<Self>, banned: Option<UserId>) {
        let (store, bans) = (self.store.clone(), self.bans.clone());
        let connections = self.connections.clone();
        ctx.spawn(
            async move {
                match store.bans(now_ms()).await {
                    Ok(all) => bans.replace(all),
                    Err(err) => tracing::warn!(%err, "could not re-read the bans"),
                }
                if let Some(user) = banned {
                    connections.do_send(KickUser {
                        user,
                        reason: CloseReason::Banned,
                    });
                }
            }
            .into_actor(self),
        );
    }

    /// What a re-read or a lift takes into its task: the store and both books.
    fn books(&self) -> (Store, Arc<CampaignBook>, Arc<BanBook>) {
        (
            self.store.clone(),
            self.campaigns.clone(),
            self.bans.clone(),
        )
    }

    /// Re-reads every campaign and ban (periodically, and when the subscriber reconnects,
    /// since events may have been missed), and puts back on the boards the players whose ban
    /// ran out. `rehide` takes every banned player off the boards again: after Redis was out
    /// of reach, a ban may have been recorded while its boards could not be touched.
    fn reread(&self, ctx: &mut Context<Self>, rehide: bool) {
        let (store, campaigns, bans) = self.books();
        ctx.spawn(
            async move {
                match store.campaigns().await {
                    Ok(all) => all.into_iter().for_each(|c| {
                        campaigns.apply(c);
                    }),
                    Err(err) => tracing::warn!(%err, "could not re-read the campaigns"),
                }
                let now = now_ms();
                let boards = campaigns.boards(now);
                match store.bans(now).await {
                    Ok(all) => {
                        for ban in all.iter().filter(|_| rehide) {
                            if let Err(err) = store.hide_player(&ban.user, &boards).await {
                                tracing::warn!(%err, "could not take a banned player off the boards");
                            }
                        }
                        bans.replace(all);
                    }
                    Err(err) => tracing::warn!(%err, "could not re-read the bans"),
                }
                lift_lapsed(&store, &bans, &boards, now).await;
            }
            .into_actor(self),
        );
    }

    /// Lifts the bans that ran out by the book's clock, so a player is back on the boards
    /// within [`LAPSE_CHECK_EVERY`] of their ban's end; costs the store nothing until one has.
    fn check_lapsed(&self, ctx: &mut Context<Self>) {
        if !self.bans.any_lapsed(now_ms()) {
            return;
        }
        let (store, campaigns, bans) = self.books();
        ctx.spawn(
            async move {
                let now = now_ms();
                lift_lapsed(&store, &bans, &campaigns.boards(now), now).await;
            }
            .into_actor(self),
        );
    }

    /// Subscribes to the bus channel and hands each event from another instance to the actor;
    /// reconnects with backoff, re-reading the store each time it is subscribed again.
    fn subscribe(&self, ctx: &mut Context<Self>) {
        let Store::Durable(durable) = &self.store else {
            return;
        };
        let (redis, me, bus) = (durable.redis.clone(), self.me.id.clone(), ctx.address());
        ctx.spawn(
            async move {
                let mut pause = Duration::from_millis(100);
                loop {
                    match redis.subscriber().await {
                        Ok((mut sink, mut messages)) => {
                            if let Err(err) = sink.subscribe(&redis.bus_channel()).await {
                                tracing::warn!(%err, "cluster bus: subscribe failed");
                            } else {
                                pause = Duration::from_millis(100);
                                bus.do_send(Subscribed(Some(sink)));
                                while let Some(payload) = messages.next().await {
                                    let Ok(envelope) = serde_json::from_slice::<Envelope>(&payload)
                                    else {
                                        tracing::warn!("cluster bus: an event podium cannot read");
                                        continue;
                                    };
                                    if envelope.from != me {
                                        bus.do_send(Remote(envelope.event));
                                    }
                                }
                                bus.do_send(Subscribed(None));
                                tracing::warn!("cluster bus: subscription lost; resubscribing");
                            }
                        }
                        Err(err) => tracing::debug!(%err, "cluster bus: Redis unreachable"),
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
            .into_actor(self),
        );
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        use std::sync::atomic::Ordering;
        self.me.connections = self.stats.connections.load(Ordering::Relaxed);
        self.me.users = self.stats.users.load(Ordering::Relaxed);
        self.me.heartbeat_ms = now_ms();
        self.me.submits = self.stats.submits_by_minute(self.me.heartbeat_ms);
        let count = self.rooms.send(CountRooms);
        ctx.spawn(count.into_actor(self).map(|rooms, act, _| {
            act.me.rooms = rooms.unwrap_or(0) as i64;
        }));
        let Store::Durable(durable) = &self.store else {
            return;
        };
        let (redis, me) = (durable.redis.clone(), self.me.clone());
        ctx.spawn(
            async move {
                let description = serde_json::to_string(&me).unwrap_or_default();
                if let Err(err) = redis
                    .heartbeat(&me.id, &description, me.heartbeat_ms, HEARTBEAT_TTL)
                    .await
                {
                    tracing::debug!(%err, "instance heartbeat failed");
                }
            }
            .into_actor(self),
        );
    }
}

/// Lifts every ban the store holds as run out by `now`, like one an operator lifted: the
/// player's bests go back on `boards`. Several instances doing it at once put the same bests
/// back once. The book then forgets what ran out, unless a lift failed: it is tried again.
async fn lift_lapsed(store: &Store, bans: &BanBook, boards: &[LiveBoard], now: u64) {
    let lapsed = match store.lapsed_bans(now).await {
        Ok(lapsed) => lapsed,
        Err(err) => return tracing::warn!(%err, "could not read the bans that ran out"),
    };
    let mut all_lifted = true;
    for ban in lapsed {
        if let Err(err) = store.unban(&ban.user, boards).await {
            all_lifted = false;
            tracing::warn!(%err, user = %ban.user, "a lapsed ban could not be lifted yet");
        }
    }
    if all_lifted {
        bans.forget_lapsed(now);
    }
}

impl Actor for ClusterBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.rooms
            .do_send(WatchCampaigns(ctx.address().recipient()));
        self.subscribe(ctx);
        // The first heartbeat waits for [`Listening`], so no instance is listed without its
        // address (two heartbeats in flight could land in either order).
        ctx.run_interval(HEARTBEAT_EVERY, |act, ctx| act.heartbeat(ctx));
        ctx.run_interval(REREAD_EVERY, |act, ctx| act.reread(ctx, false));
        ctx.run_interval(LAPSE_CHECK_EVERY, |act, ctx| act.check_lapsed(ctx));
    }
}

/// An admin route changed the store: apply `event` here and tell the other instances. Answers
/// once it is published (or could not be: the others then catch up at their next re-read,
/// except for kicks and announcements, which are lost, as the route is told).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Publish(pub Event);

impl Handler<Publish> for ClusterBus {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) -> Self::Result {
        let redis = match &self.store {
            Store::Durable(durable) => durable.redis.clone(),
            Store::Memory(_) => {
                self.apply(msg.0, ctx);
                return Box::pin(async { true });
            }
        };
        let channel = Self::channel(&redis, &msg.0);
        let payload = serde_json::to_string(&Envelope {
            from: self.me.id.clone(),
            event: msg.0.clone(),
        })
        .unwrap_or_default();
        self.apply(msg.0, ctx);
        Box::pin(async move {
            match redis.publish(&channel, &payload).await {
                Ok(()) => true,
                Err(err) => {
                    tracing::warn!(%err, "cluster bus: could not publish");
                    false
                }
            }
        })
    }
}

/// An event from another instance.
#[derive(Message)]
#[rtype(result = "()")]
struct Remote(Event);

impl Handler<Remote> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: Remote, ctx: &mut Self::Context) {
        self.apply(msg.0, ctx);
    }
}

/// The subscriber (re)connected with this sink, or lost its subscription (`None`). Once back,
/// it listens to the served campaigns' channels again and re-reads the store, since events
/// may have been missed.
#[derive(Message)]
#[rtype(result = "()")]
struct Subscribed(Option<BusSink>);

impl Handler<Subscribed> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: Subscribed, ctx: &mut Self::Context) {
        self.sink = msg.0;
        if self.sink.is_none() {
            return;
        }
        for campaign in self.served.clone() {
            self.follow(ctx, &campaign, true);
        }
        self.reread(ctx, true);
    }
}

impl Handler<CampaignRooms> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: CampaignRooms, ctx: &mut Self::Context) {
        let changed = if msg.open {
            self.served.insert(msg.campaign.clone())
        } else {
            self.served.remove(&msg.campaign)
        };
        if changed {
            self.follow(ctx, &msg.campaign, msg.open);
        }
    }
}

/// A player reached the auto-ban threshold (from a ResultsPipeline): banned by `auto`, for
/// good until an operator lifts it, carried out like an operator's ban.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AutoBanned {
    pub user: UserId,
    pub refusals: u64,
}

impl Handler<AutoBanned> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: AutoBanned, ctx: &mut Self::Context) {
        let now = now_ms();
        if self.bans.is_banned(&msg.user, now) {
            return;
        }
        let ban = Ban {
            user: msg.user.clone(),
            reason: format!("{} cheat refusals", msg.refusals),
            until_ms: None,
            by: "auto".into(),
            at_ms: now,
        };
        self.bans.put(ban.clone());
        let (store, campaigns, bus) = (self.store.clone(), self.campaigns.clone(), ctx.address());
        ctx.spawn(
            async move {
                if let Err(err) = store.ban(&ban, &campaigns.boards(now)).await {
                    tracing::error!(%err, user = %ban.user, "auto-ban could not be recorded");
                    return;
                }
                let body = serde_json::json!({"reason": ban.reason});
                crate::telemetry::admin_action("ban", "auto", ban.user.as_str());
                let _ = store
                    .audit("auto", "ban", ban.user.as_str(), &body, now)
                    .await;
                bus.do_send(Publish(Event::Ban { user: ban.user }));
            }
            .into_actor(self),
        );
    }
}

/// The server is listening at this address (known only once it is bound).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Listening(pub String);

impl Handler<Listening> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: Listening, ctx: &mut Self::Context) {
        self.me.address = msg.0;
        self.heartbeat(ctx);
    }
}

/// The live instances: every one that heartbeat recently (redis engine), or this one.
#[derive(Message)]
#[rtype(result = "Vec<InstanceInfo>")]
pub struct Instances;

impl Handler<Instances> for ClusterBus {
    type Result = ResponseFuture<Vec<InstanceInfo>>;

    fn handle(&mut self, _: Instances, ctx: &mut Self::Context) -> Self::Result {
        self.heartbeat(ctx);
        let me = self.me.clone();
        let Store::Durable(durable) = &self.store else {
            return Box::pin(async move { vec![me] });
        };
        let redis = durable.redis.clone();
        Box::pin(async move {
            match redis.instances(now_ms(), HEARTBEAT_TTL).await {
                Ok(found) => {
                    let mut all: Vec<InstanceInfo> = found
                        .iter()
                        .filter_map(|d| serde_json::from_str(d).ok())
                        .filter(|i: &InstanceInfo| i.id != me.id)
                        .collect();
                    all.push(me);
                    all.sort_by(|a, b| a.id.cmp(&b.id));
                    all
                }
                Err(err) => {
                    tracing::warn!(%err, "could not list the instances; answering this one");
                    vec![me]
                }
            }
        })
    }
}
