//! RoomRegistry: finds or creates the Room for a `campaign/board`.
//!
//! Owns: the address of every live Room, each started under actix's `Supervisor` on first
//! join, and how many joins it forwarded to each. Receives [`Join`], [`Leave`] and [`Resync`]
//! from Connections and forwards them to the room, and [`Idle`] from a room that has been
//! empty for `ROOM_IDLE_GRACE`: when no join was forwarded since, it drops the room's address
//! and sends it [`Close`], so the room stops for good and its place under `ROOM_MAX_ROOMS`
//! is free again. Rooms learn of new scores themselves, by polling their board's version in
//! the store, so a result accepted by any engine instance reaches every instance's rooms.
//! Sends [`CampaignRooms`] to the watcher set by [`WatchCampaigns`] (the ClusterBus) when the
//! first room of a campaign opens here and when its last one closes, so the bus listens only
//! to the campaigns this instance serves. Answers [`ResetRoom`] and [`CountRooms`].
//! Started by the Engine; it holds no state a restart could lose except the room addresses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::config::RoomConfig;
use crate::domain::clock::Clock;
use crate::domain::error::ClientError;
use crate::domain::ids::{CampaignId, RoomId};
use crate::room::{Close, Idle, Join, Leave, Resync, Room};
use crate::store::live::CampaignBook;
use crate::store::Store;

/// A live room and the joins forwarded to it.
struct Live {
    addr: Addr<Room>,
    joins: u64,
}

pub struct RoomRegistry {
    /// Every live room. An entry leaves when its room has been idle past the grace period
    /// (it sends [`Idle`]) and no join was forwarded since; the room is closed then.
    rooms: HashMap<RoomId, Live>,
    /// How many of `rooms` each campaign has; a campaign leaves at zero.
    per_campaign: HashMap<CampaignId, usize>,
    watcher: Option<Recipient<CampaignRooms>>,
    campaigns: Arc<CampaignBook>,
    store: Store,
    config: RoomConfig,
}

impl RoomRegistry {
    pub fn new(config: RoomConfig, campaigns: Arc<CampaignBook>, store: Store) -> Self {
        Self {
            rooms: HashMap::new(),
            per_campaign: HashMap::new(),
            watcher: None,
            campaigns,
            store,
            config,
        }
    }

    fn room(&mut self, id: &RoomId, ctx: &mut Context<Self>) -> Result<&mut Live, ClientError> {
        let Some(campaign) = self.campaigns.get(id.campaign.as_str()) else {
            return Err(ClientError::UnknownRoom("no such campaign"));
        };
        if !campaign.rules.has_board(&id.board) {
            return Err(ClientError::UnknownRoom(
                "the campaign has no board for that region",
            ));
        }
        if !self.rooms.contains_key(id) && self.rooms.len() >= self.config.max_rooms {
            return Err(ClientError::UnknownRoom(
                "this server has no room for another board",
            ));
        }
        let (store, top_n, tick, grace, owner) = (
            self.store.clone(),
            self.config.top_n,
            Duration::from_millis(self.config.tick_ms),
            Duration::from_millis(self.config.idle_grace_ms),
            ctx.address().recipient(),
        );
        if !self.rooms.contains_key(id) {
            let count = self.per_campaign.entry(id.campaign.clone()).or_default();
            *count += 1;
            if *count == 1 {
                self.tell(&id.campaign, true);
            }
        }
        Ok(self.rooms.entry(id.clone()).or_insert_with(|| {
            let id = id.clone();
            let addr = Supervisor::start(move |_| {
                Room::new(id, store, top_n, tick, Clock::System).stop_when_idle(grace, owner)
            });
            Live { addr, joins: 0 }
        }))
    }

    fn closed(&mut self, id: &RoomId) {
        let Some(count) = self.per_campaign.get_mut(&id.campaign) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.per_campaign.remove(&id.campaign);
            self.tell(&id.campaign, false);
        }
    }

    fn tell(&self, campaign: &CampaignId, open: bool) {
        if let Some(watcher) = &self.watcher {
            watcher.do_send(CampaignRooms {
                campaign: campaign.clone(),
                open,
            });
        }
    }
}

/// Whether this instance now has rooms of `campaign` (`open`) or none any more.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CampaignRooms {
    pub campaign: CampaignId,
    pub open: bool,
}

/// Sends [`CampaignRooms`] to `0` from now on, starting with every campaign that has rooms.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchCampaigns(pub Recipient<CampaignRooms>);

impl Handler<WatchCampaigns> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: WatchCampaigns, _: &mut Self::Context) {
        self.watcher = Some(msg.0);
        for campaign in self.per_campaign.keys() {
            self.tell(campaign, true);
        }
    }
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Handler<Join> for RoomRegistry {
    type Result = Result<(), ClientError>;

    /// Answers once the room exists; the room itself sends the snapshot.
    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        let live = self.room(&msg.room, ctx)?;
        live.joins += 1;
        live.addr.do_send(msg);
        Ok(())
    }
}

impl Handler<Leave> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Self::Context) {
        if let Some(room) = self.rooms.get(&msg.room) {
            room.addr.do_send(msg);
        }
    }
}

impl Handler<Resync> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Resync, _: &mut Self::Context) {
        if let Some(room) = self.rooms.get(&msg.room) {
            room.addr.do_send(msg);
        }
    }
}

/// An operator reset this board: its room here (if any) sends every member a snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResetRoom {
    pub room: RoomId,
}

impl Handler<ResetRoom> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: ResetRoom, _: &mut Self::Context) {
        if let Some(live) = self.rooms.get(&msg.room) {
            live.addr.do_send(crate::room::Reset);
        }
    }
}

/// How many rooms live here (for the instance heartbeat).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountRooms;

impl Handler<CountRooms> for RoomRegistry {
    type Result = usize;

    fn handle(&mut self, _: CountRooms, _: &mut Self::Context) -> usize {
        self.rooms.len()
    }
}

impl Handler<Idle> for RoomRegistry {
    type Result = ();

    /// Closes the room unless a join was forwarded to it after the count it reports.
    fn handle(&mut self, msg: Idle, _: &mut Self::Context) {
        if self
            .rooms
            .get(&msg.room)
            .is_some_and(|live| live.joins == msg.joins)
        {
            if let Some(live) = self.rooms.remove(&msg.room) {
                live.addr.do_send(Close);
                self.closed(&msg.room);
            }
        }
    }
}
