//! RoomRegistry: finds or creates the Room for a `campaign/board`.
//!
//! Owns: the address of every Room, each started under actix's `Supervisor` on first join.
//! Receives [`Join`], [`Leave`] and [`Resync`] from Connections and forwards them to the room.
//! Rooms learn of new scores themselves, by polling their board's version in the store, so a
//! result accepted by any engine instance reaches every instance's rooms. Started by the Engine; it holds no state a restart could lose except the room
//! addresses, and rooms outlive nothing but the engine.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::config::RoomConfig;
use crate::domain::campaign::CampaignRules;
use crate::domain::clock::Clock;
use crate::domain::error::ClientError;
use crate::domain::ids::RoomId;
use crate::room::{Join, Leave, Resync, Room};
use crate::store::Store;

pub struct RoomRegistry {
    rooms: HashMap<RoomId, Addr<Room>>,
    campaigns: Arc<BTreeMap<String, CampaignRules>>,
    store: Store,
    config: RoomConfig,
}

impl RoomRegistry {
    pub fn new(
        config: RoomConfig,
        campaigns: Arc<BTreeMap<String, CampaignRules>>,
        store: Store,
    ) -> Self {
        Self {
            rooms: HashMap::new(),
            campaigns,
            store,
            config,
        }
    }

    fn room(&mut self, id: &RoomId) -> Result<&Addr<Room>, ClientError> {
        if !self.campaigns.contains_key(id.campaign.as_str()) {
            return Err(ClientError::UnknownRoom("no such campaign"));
        }
        if !self.rooms.contains_key(id) && self.rooms.len() >= self.config.max_rooms {
            return Err(ClientError::UnknownRoom(
                "this server has no room for another board",
            ));
        }
        let (store, top_n, tick) = (
            self.store.clone(),
            self.config.top_n,
            Duration::from_millis(self.config.tick_ms),
        );
        Ok(self.rooms.entry(id.clone()).or_insert_with(|| {
            let id = id.clone();
            Supervisor::start(move |_| Room::new(id, store, top_n, tick, Clock::System))
        }))
    }
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Handler<Join> for RoomRegistry {
    type Result = Result<(), ClientError>;

    /// Answers once the room exists; the room itself sends the snapshot.
    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Self::Result {
        self.room(&msg.room)?.do_send(msg);
        Ok(())
    }
}

impl Handler<Leave> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Self::Context) {
        if let Some(room) = self.rooms.get(&msg.room) {
            room.do_send(msg);
        }
    }
}

impl Handler<Resync> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: Resync, _: &mut Self::Context) {
        if let Some(room) = self.rooms.get(&msg.room) {
            room.do_send(msg);
        }
    }
}
