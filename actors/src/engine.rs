//! The Engine is podium's supervisor: it opens the Store, builds the actor tree from a
//! [`Config`], hands the HTTP layer what it needs (the Connections' [`Gateway`]), and owns the
//! shutdown order (stop accepting, close sockets with 1001, drain the batcher). Rooms are
//! restarted by their own actix `Supervisor` (see `room.rs`); the registries and the pipelines
//! hold no code path that panics on client input.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::cluster_bus::{ClusterBus, InstanceInfo};
use crate::config::Config;
use crate::connection::Gateway;
use crate::connection_registry::{AllClosed, CloseAll, ConnectionRegistry};
use crate::domain::session::{random_secret, SessionSigner};
use crate::domain::token::JwtAlgorithm;
use crate::domain::window::WindowLimiter;
use crate::persistence_batcher::{Drain, PersistenceBatcher};
use crate::results::{AutoBan, Pipelines, ResultsPipeline};
use crate::room_registry::RoomRegistry;
use crate::store::counters::{MessageLimiter, WindowCounts};
use crate::store::durable::OpenError;
use crate::store::Store;
use crate::telemetry::Stats;

pub struct Engine {
    pub config: Config,
    /// Whether `POST /dev/token` is served (config, else on with the memory engine).
    pub dev_mode: bool,
    /// What every Connection is given; also the HTTP routes' way to the store and campaigns.
    pub gateway: Arc<Gateway>,
    pub dev_tokens: Arc<WindowLimiter<IpAddr>>,
    /// Carries operator events to every instance.
    pub bus: Addr<ClusterBus>,
    /// This instance's id in the cluster (unique per start).
    pub instance: String,
    /// The write-behind path (when the store has one).
    batcher: Option<Addr<PersistenceBatcher>>,
    /// Keeps the pipelines' arbiters' handles for the engine's life.
    /// Cleared when shutdown begins; `/ready` answers 503 from then on.
    accepting: AtomicBool,
}

impl Engine {
    /// Starts the actor tree on the current actix system. Fails with the key at fault when the
    /// configuration cannot work (for example HS256 without a secret outside dev mode).
    pub async fn start(config: Config) -> Result<Arc<Self>, OpenError> {
        let dev_mode = config.dev_mode();
        let hs256 = config.jwt.algorithm == JwtAlgorithm::HS256;
        let generated = (hs256 && config.jwt.secret.is_none() && dev_mode).then(|| {
            tracing::warn!("JWT_SECRET is not set: dev mode signs player tokens with a random secret that dies with this process");
            random_secret()
        });
        let verifier = config.jwt.verifier(generated.as_deref())?;
        let session_secret = config.game.session_secret.clone().unwrap_or_else(|| {
            tracing::warn!("SESSION_SECRET is not set: sessions are signed with a random secret, so only this instance can check them");
            random_secret()
        });
        let signer = Arc::new(SessionSigner::new(session_secret.as_bytes()));
        let stats = Arc::new(Stats::default());
        let store = Store::open(&config).await?;
        let (campaigns, bans) = store
            .open_campaigns(&config.campaigns, crate::domain::clock::now_ms())
            .await
            .map_err(|error| OpenError::Unreachable {
                service: "the campaign store",
                error,
            })?;
        let batcher = store.write_behind().map(|durable| {
            let consumer = config
                .persist
                .consumer
                .clone()
                .unwrap_or_else(default_consumer);
            PersistenceBatcher::new(
                durable.clone(),
                campaigns.clone(),
                config.persist.clone(),
                consumer,
            )
            .start()
        });
        let ws = &config.ws;
        let counters = store.counters();
        let counters_for_games = counters.clone();
        let messages = Arc::new(MessageLimiter::new(
            Duration::from_millis(ws.rate_limit_window_ms),
            ws.rate_limit_max_messages,
            &counters,
        ));
        let instance = random_secret()[..12].to_owned();
        let connections = ConnectionRegistry::new(
            ws.clone(),
            stats.clone(),
            messages.clone(),
            counters,
            instance.clone(),
        )
        .start();
        let rooms =
            RoomRegistry::new(config.rooms.clone(), campaigns.clone(), store.clone()).start();
        let bus = ClusterBus::new(
            store.clone(),
            campaigns.clone(),
            bans.clone(),
            connections.clone(),
            InstanceInfo {
                id: instance.clone(),
                address: config.listen.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                started_at_ms: crate::domain::clock::now_ms(),
                connections: 0,
                users: 0,
                rooms: 0,
                heartbeat_ms: 0,
                submits: Vec::new(),
            },
            stats.clone(),
            rooms.clone(),
        )
        .start();
        let auto_ban = (config.admin.auto_ban_flags > 0).then(|| AutoBan {
            counts: WindowCounts::new(
                "cf",
                Duration::from_millis(config.admin.auto_ban_window_ms),
                &counters_for_games,
            ),
            flags: config.admin.auto_ban_flags,
            bus: bus.clone(),
        });
        let pipeline = ResultsPipeline::new(
            store.clone(),
            signer.clone(),
            campaigns.clone(),
            bans.clone(),
            config.game.max_submits_per_minute,
            Duration::from_millis(ws.cleanup_interval_ms),
            auto_ban,
        );
        // Each worker thread decides its sockets' submits (see `Pipelines`).
        let results = Pipelines::start(pipeline);
        let dev_tokens = Arc::new(WindowLimiter::new(
            Duration::from_secs(60),
            config.jwt.dev_tokens_per_minute,
        ));
        // Forget the windows of addresses that stopped asking, so the map stays small.
        let sweeping = Arc::downgrade(&dev_tokens);
        actix_rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            while let Some(limiter) = {
                every.tick().await;
                sweeping.upgrade()
            } {
                limiter.sweep();
            }
        });
        let gateway = Arc::new(Gateway {
            ws: config.ws.clone(),
            max_rooms_per_connection: config.rooms.max_rooms_per_connection,
            trust_proxy: config.trust_proxy,
            verifier,
            signer,
            campaigns,
            bans,
            games: WindowCounts::new("gh", Duration::from_secs(3_600), &counters_for_games),
            messages,
            stats,
            connections,
            rooms,
            results,
            store,
            counting: config.game.counting(),
        });
        Ok(Arc::new(Self {
            dev_mode,
            gateway,
            dev_tokens,
            bus,
            instance,
            batcher,
            accepting: AtomicBool::new(true),
            config,
        }))
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }

    /// First step of shutdown: refuse new sockets and close the open ones with 1001.
    /// Returns how many sockets were told to close.
    pub async fn close_sockets(&self) -> usize {
        self.accepting.store(false, Ordering::Relaxed);
        self.gateway.connections.send(CloseAll).await.unwrap_or(0)
    }

    /// Second step of shutdown: answers once every socket has closed.
    pub async fn sockets_closed(&self) {
        let _ = self.gateway.connections.send(AllClosed).await;
    }

    /// Last step of shutdown: the batcher writes what it holds.
    pub async fn drain(&self) {
        if let Some(batcher) = &self.batcher {
            let _ = batcher.send(Drain).await;
        }
    }
}

/// This engine's name in the results consumer group: stable across restarts of the same
/// host, so a restarted engine finds its own pending entries at once (another engine would
/// claim them after `PERSIST_CLAIM_IDLE`).
fn default_consumer() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "podium".into())
}
