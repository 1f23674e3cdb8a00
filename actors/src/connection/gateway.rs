//! What a Connection needs, and nothing more: the socket limits, the token verifier and
//! session signer, the campaigns, the message windows, the registries, the results pipelines
//! and the store. Built once by the Engine and shared by every Connection (an `Arc`), so a
//! Connection can be built and tested without an Engine.

use std::net::IpAddr;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::HttpRequest;

use crate::config::WsConfig;
use crate::connection_registry::ConnectionRegistry;
use crate::domain::campaign::Limits;
use crate::domain::counting::{CountingDefaults, Tally};
use crate::domain::error::ClientError;
use crate::domain::ids::{CampaignId, Region, UserId};
use crate::domain::session::{GameSession, SessionSigner};
use crate::domain::token::TokenVerifier;
use crate::results::Pipelines;
use crate::room_registry::RoomRegistry;
use crate::store::counters::{MessageLimiter, WindowCounts};
use crate::store::live::{BanBook, CampaignBook};
use crate::store::Store;
use crate::telemetry::Stats;

pub struct Gateway {
    /// The socket limits (`[ws]`).
    pub ws: WsConfig,
    /// Rooms one socket may join (`ROOM_MAX_PER_CONNECTION`).
    pub max_rooms_per_connection: usize,
    /// Whether the client address comes from `X-Forwarded-For` (`PODIUM_TRUST_PROXY`).
    pub trust_proxy: bool,
    pub verifier: TokenVerifier,
    pub signer: Arc<SessionSigner>,
    /// The campaigns in force (changed live by operators).
    pub campaigns: Arc<CampaignBook>,
    /// The bans in force: a banned player's `auth` and games are refused.
    pub bans: Arc<BanBook>,
    /// Games per player per campaign this hour, for `max_games_per_hour`.
    pub games: WindowCounts,
    /// Per-user message windows across the player's sockets (on every instance).
    pub messages: Arc<MessageLimiter>,
    /// The one-minute figures behind `/health`.
    pub stats: Arc<Stats>,
    pub connections: Addr<ConnectionRegistry>,
    pub rooms: Addr<RoomRegistry>,
    /// The ResultsPipeline of each worker thread.
    pub results: Pipelines,
    /// For reads that need no actor (around-me).
    pub store: Store,
    /// The thresholds of counted games whose campaign sets none (`GAME_*`).
    pub counting: CountingDefaults,
}

/// A game just started: its signed session, the limits it is judged by, and for a counted
/// campaign what its socket counts it with.
pub struct Started {
    pub token: String,
    pub session_id: String,
    pub limits: Limits,
    pub counted: Option<CountedStart>,
}

pub struct CountedStart {
    pub seed: u32,
    pub input_flush_ms: u64,
    /// The game's count, empty: the socket that started the game feeds it.
    pub tally: Tally,
}

impl Gateway {
    /// Starts a game of `campaign` for `user` at `now_ms` (the client is told its durations,
    /// and for a counted game its seed and how often to send).
    pub async fn start_game(
        &self,
        user: UserId,
        region: Option<Region>,
        campaign: &str,
        now_ms: u64,
    ) -> Result<Started, ClientError> {
        let found = self
            .campaigns
            .get(campaign)
            .ok_or(ClientError::UnknownCampaign)?;
        if !found.takes_games_at(now_ms) {
            return Err(ClientError::CampaignClosed);
        }
        if self.bans.is_banned(&user, now_ms) {
            return Err(ClientError::Banned);
        }
        let per_hour = u64::from(found.rules.max_games_per_hour);
        if per_hour > 0
            && self
                .games
                .count(&format!("{campaign}:{user}"), now_ms)
                .await
                > per_hour
        {
            return Err(ClientError::TooManyGames);
        }
        let limits = found.rules.limits();
        // Only the region boards the campaign has; the submit counts on those.
        let region = found.rules.board_region(region.as_ref()).cloned();
        // A game that starts while the store's primary is unreachable is decided in its
        // fallback, for good (see `GameSession::fallback`).
        let fallback = self.store.fallback_active();
        let counting = found.rules.counting.as_ref();
        let session = GameSession::start(
            user,
            CampaignId::new(campaign),
            region,
            now_ms,
            fallback,
            limits,
            counting.is_some(),
        );
        let counted = counting.zip(session.seed).map(|(c, seed)| CountedStart {
            seed,
            input_flush_ms: c.input_flush_ms,
            tally: Tally::new(
                c,
                c.thresholds(&self.counting),
                now_ms,
                limits.max_duration_ms,
            ),
        });
        Ok(Started {
            token: self.signer.sign(&session),
            session_id: session.id,
            limits,
            counted,
        })
    }
}

/// The client's address: the peer, or the first `X-Forwarded-For` hop behind a trusted proxy.
pub fn client_ip(req: &HttpRequest, trust_proxy: bool) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !trust_proxy {
        return peer;
    }
    req.headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}
