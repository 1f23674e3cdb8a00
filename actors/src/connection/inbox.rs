//! The messages a Connection receives from other actors. They live beside the Connection but
//! apart from it, so the actors that send them (Rooms, the ConnectionRegistry) import these
//! types without importing the Connection, and no import runs in a circle.

use actix::prelude::*;
use bytestring::ByteString;

use crate::domain::error::CloseReason;
use crate::domain::ids::CampaignId;

/// A frame for the client, already serialized (shared bytes when broadcast). Whoever builds
/// a frame counts it in `podium_ws_messages_out_total`, so a broadcast is counted once.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Push {
    pub frame: ByteString,
}

/// An operator's announcement for the player (from the ConnectionRegistry): sent if the
/// socket is in one of `campaign`'s rooms, or to every socket when `campaign` is `None`.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Notice {
    pub frame: ByteString,
    pub campaign: Option<CampaignId>,
}

/// Close this socket for `reason` (from the ConnectionRegistry: shutdown, kick, ban).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Kick(pub CloseReason);
