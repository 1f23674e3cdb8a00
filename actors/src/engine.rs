//! The Engine is podium's supervisor: it builds the actor tree from a [`Config`], hands the
//! HTTP layer what it needs, and owns the shutdown order (stop accepting, close sockets with
//! 1001). Rooms are restarted by their own actix `Supervisor` (see `room.rs`); the registries
//! and the pipeline hold no code path that panics on client input.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::auth::{random_secret, SessionSigner, TokenVerifier};
use crate::config::EngineKind;
use crate::config::{CampaignRules, Config, ConfigError};
use crate::connection_registry::{CloseAll, ConnectionRegistry};
use crate::ids::BoardKey;
use crate::limits::{MessageLimiter, WindowLimiter};
use crate::persistence_batcher::{Drain, PersistStatus, PersistenceBatcher};
use crate::pg;
use crate::results::ResultsPipeline;
use crate::room_registry::RoomRegistry;
use crate::store::{MemoryStore, RedisStore, Store, StoreError};
use crate::telemetry::Stats;
use crate::time::now_ms;

/// Attempts to reach Redis and PostgreSQL at start before giving up, and the longest pause.
const STARTUP_ATTEMPTS: u32 = 30;
const STARTUP_MAX_PAUSE: Duration = Duration::from_secs(10);

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{service} unreachable after {STARTUP_ATTEMPTS} attempts: {error}")]
    Unreachable {
        service: &'static str,
        error: StoreError,
    },
}

/// Retries `attempt` with growing pauses, logging each failure, until it succeeds or the
/// attempts run out: a service that is down at start is waited for, loudly.
async fn with_retries<T>(
    service: &'static str,
    mut attempt: impl AsyncFnMut() -> Result<T, StoreError>,
) -> Result<T, StartError> {
    let mut pause = Duration::from_millis(500);
    for n in 1..=STARTUP_ATTEMPTS {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(error) if n == STARTUP_ATTEMPTS => {
                return Err(StartError::Unreachable { service, error })
            }
            Err(error) => {
                tracing::warn!(service, attempt = n, of = STARTUP_ATTEMPTS, %error, retry_in_ms = pause.as_millis() as u64, "{service} unreachable at start; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(STARTUP_MAX_PAUSE);
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Dev tokens one address may mint per minute.
const DEV_TOKENS_PER_MINUTE: u32 = 30;

pub struct Engine {
    pub config: Config,
    /// Whether `POST /dev/token` is served (config, else on with the memory engine).
    pub dev_mode: bool,
    pub stats: Arc<Stats>,
    pub verifier: TokenVerifier,
    pub signer: Arc<SessionSigner>,
    pub campaigns: Arc<BTreeMap<String, CampaignRules>>,
    /// Per-user message windows across this instance's sockets.
    pub messages: Arc<MessageLimiter>,
    pub dev_tokens: Arc<WindowLimiter<IpAddr>>,
    pub connections: Addr<ConnectionRegistry>,
    pub rooms: Addr<RoomRegistry>,
    /// One ResultsPipeline per core, each on its own arbiter (see [`Engine::results_for`]).
    results: Vec<Addr<ResultsPipeline>>,
    /// Keeps the pipelines' arbiters' handles for the engine's life.
    _arbiters: Vec<actix::Arbiter>,
    /// Boards and idempotency marks, for reads that need no actor (around-me, pages).
    pub store: Store,
    /// False while Redis is unreachable and results go straight to PostgreSQL.
    pub redis_ok: Arc<AtomicBool>,
    /// The write-behind path (redis engine only).
    pub batcher: Option<Addr<PersistenceBatcher>>,
    pub persist: Arc<PersistStatus>,
    /// Cleared when shutdown begins; `/ready` answers 503 from then on.
    accepting: AtomicBool,
}

impl Engine {
    /// Starts the actor tree on the current actix system. Fails with the key at fault when the
    /// configuration cannot work (for example HS256 without a secret outside dev mode).
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let dev_mode = config
            .dev_mode
            .unwrap_or(config.engine_kind() == EngineKind::Memory);
        let generated = (config.jwt.algorithm == "HS256" && config.jwt.secret.is_none() && dev_mode).then(|| {
            tracing::warn!("JWT_SECRET is not set: dev mode signs player tokens with a random secret that dies with this process");
            random_secret()
        });
        let verifier = TokenVerifier::new(&config.jwt, generated.as_deref())?;
        let session_secret = config.game.session_secret.clone().unwrap_or_else(|| {
            tracing::warn!("SESSION_SECRET is not set: sessions are signed with a random secret, so only this instance can check them");
            random_secret()
        });
        let signer = Arc::new(SessionSigner::new(session_secret.as_bytes()));
        let stats = Arc::new(Stats::default());
        let persist = Arc::new(PersistStatus::default());
        let redis_ok = Arc::new(AtomicBool::new(true));
        let (store, batcher, fallback) = match config.engine_kind() {
            EngineKind::Memory => (Store::Memory(Arc::new(MemoryStore::default())), None, None),
            EngineKind::Redis => {
                let redis =
                    RedisStore::new(&config.redis, workers(&config)).map_err(|e| ConfigError {
                        key: "REDIS_URL".into(),
                        expected: "a redis:// URL".into(),
                        got: e.to_string(),
                    })?;
                with_retries("Redis", async || redis.ping().await).await?;
                let pool = pg::pool(&config.postgres).map_err(|e| ConfigError {
                    key: "DATABASE_URL".into(),
                    expected: "a postgres:// URL".into(),
                    got: e.to_string(),
                })?;
                let applied = with_retries("PostgreSQL", async || {
                    pg::migrate(&pool, &config.postgres.schema).await
                })
                .await?;
                tracing::info!(?applied, "PostgreSQL schema is current");
                if let Err(err) = pg::record_campaigns(&pool, &config.campaigns).await {
                    tracing::warn!(%err, "could not record the campaigns in PostgreSQL");
                }
                pg::ensure_partitions(&pool, now_ms(), config.persist.partitions_ahead_days)
                    .await
                    .ok();
                let consumer = config
                    .persist
                    .consumer
                    .clone()
                    .unwrap_or_else(default_consumer);
                let batcher = PersistenceBatcher::new(
                    redis.clone(),
                    pool.clone(),
                    config.persist.clone(),
                    consumer,
                    persist.clone(),
                )
                .start();
                let watch = watch_redis(
                    redis.clone(),
                    pool.clone(),
                    config.campaigns.clone(),
                    redis_ok.clone(),
                );
                actix_rt::spawn(watch);
                (Store::Redis(redis), Some(batcher), Some(pool))
            }
        };
        let campaigns = Arc::new(config.campaigns.clone());
        let ws = &config.ws;
        // With the redis engine, per-user socket counts and message windows hold across
        // every instance.
        let shared = match &store {
            Store::Redis(redis) => Some(redis.clone()),
            Store::Memory(_) => None,
        };
        let window = Duration::from_millis(ws.rate_limit_window_ms);
        let messages = Arc::new(MessageLimiter::new(
            window,
            ws.rate_limit_max_messages,
            shared.clone(),
        ));
        let connections =
            ConnectionRegistry::new(ws.clone(), stats.clone(), messages.clone(), shared).start();
        let rooms =
            RoomRegistry::new(config.rooms.clone(), campaigns.clone(), store.clone()).start();
        let pipeline = ResultsPipeline::new(
            store.clone(),
            signer.clone(),
            campaigns.clone(),
            config.game.max_submits_per_minute,
            Duration::from_millis(ws.cleanup_interval_ms),
            fallback,
        );
        // Deciding a submit is a Redis round trip whose I/O runs on the deciding thread: one
        // pipeline per core spreads that over every core instead of queueing it on one.
        let arbiters: Vec<actix::Arbiter> = (0..workers(&config))
            .map(|_| actix::Arbiter::new())
            .collect();
        let siblings: Vec<ResultsPipeline> =
            (1..arbiters.len()).map(|_| pipeline.sibling()).collect();
        let results = arbiters
            .iter()
            .zip(std::iter::once(pipeline).chain(siblings))
            .map(|(arbiter, instance)| {
                ResultsPipeline::start_in_arbiter(&arbiter.handle(), move |_| instance)
            })
            .collect();
        let dev_tokens = Arc::new(WindowLimiter::new(
            Duration::from_secs(60),
            DEV_TOKENS_PER_MINUTE,
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
        Ok(Arc::new(Self {
            dev_mode,
            stats,
            verifier,
            signer,
            campaigns,
            messages,
            dev_tokens,
            connections,
            rooms,
            results,
            _arbiters: arbiters,
            store,
            batcher,
            persist,
            redis_ok,
            accepting: AtomicBool::new(true),
            config,
        }))
    }

    /// The results pipeline a connection submits to: always the same one for a socket, so its
    /// submits are decided in order.
    pub fn results_for(&self, conn: crate::ids::ConnId) -> &Addr<ResultsPipeline> {
        &self.results[conn.0 as usize % self.results.len()]
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }

    /// Last step of shutdown: the batcher writes what it holds.
    pub async fn drain(&self) {
        if let Some(batcher) = &self.batcher {
            let _ = batcher.send(Drain).await;
        }
    }

    /// First step of shutdown: refuse new sockets and close the open ones with 1001.
    /// Returns how many sockets were told to close.
    pub async fn close_sockets(&self) -> usize {
        self.accepting.store(false, Ordering::Relaxed);
        self.connections.send(CloseAll).await.unwrap_or(0)
    }
}

/// HTTP worker threads: as configured, or one per core.
pub fn workers(config: &Config) -> usize {
    match config.workers {
        0 => std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        n => n,
    }
}

/// How often the watchdog pings Redis.
const REDIS_WATCH_EVERY: Duration = Duration::from_secs(1);

/// Pings Redis every second. When it stops answering, the results pipeline is already falling
/// back to PostgreSQL on its own; when it answers again, the boards are rebuilt from
/// PostgreSQL (the results written there meanwhile) before the fallback is declared over.
async fn watch_redis(
    redis: RedisStore,
    pool: deadpool_postgres::Pool,
    campaigns: std::collections::BTreeMap<String, CampaignRules>,
    ok: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(REDIS_WATCH_EVERY);
    loop {
        tick.tick().await;
        let up = redis.ping().await.is_ok();
        let was_up = ok.load(Ordering::Relaxed);
        if !up && was_up {
            ok.store(false, Ordering::Relaxed);
            crate::telemetry::fallback(true);
        } else if up && !was_up {
            let mut rebuilt = true;
            for (name, rules) in &campaigns {
                if let Err(err) = rebuild_boards(&redis, &pool, name, rules, now_ms()).await {
                    tracing::warn!(campaign = name, %err, "rebuild failed; retrying");
                    rebuilt = false;
                    break;
                }
            }
            if rebuilt {
                ok.store(true, Ordering::Relaxed);
                crate::telemetry::fallback(false);
            }
        }
    }
}

/// Recomputes a campaign's boards (global, today's daily, and one per region) from PostgreSQL and raises the
/// Redis boards to them. Used when Redis returns after an outage, and by `podium rebuild`.
/// Answers how many board rows changed.
pub async fn rebuild_boards(
    redis: &RedisStore,
    pool: &deadpool_postgres::Pool,
    campaign: &str,
    rules: &CampaignRules,
    now: u64,
) -> Result<u64, StoreError> {
    use crate::ids::{BoardKind, CampaignId, Region, RoomId};
    let started = std::time::Instant::now();
    let board = |kind| {
        BoardKey::for_room(
            &RoomId {
                campaign: CampaignId::new(campaign),
                board: kind,
            },
            now,
        )
    };
    let day_start = now - now % 86_400_000;
    let retention = rules.daily_retention();
    let mut changed = redis
        .rebuild(
            &board(BoardKind::Global),
            None,
            &pg::bests(pool, campaign, None, None).await?,
        )
        .await?;
    changed += redis
        .rebuild(
            &board(BoardKind::Daily),
            Some(retention),
            &pg::bests(pool, campaign, Some(day_start), None).await?,
        )
        .await?;
    for region in pg::regions(pool, campaign)
        .await?
        .iter()
        .filter_map(|r| Region::parse(r))
    {
        let bests = pg::bests(pool, campaign, None, Some(region.as_str())).await?;
        changed += redis
            .rebuild(&board(BoardKind::Region(region)), None, &bests)
            .await?;
    }
    crate::telemetry::boards_rebuilt(campaign, changed, started.elapsed());
    Ok(changed)
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
