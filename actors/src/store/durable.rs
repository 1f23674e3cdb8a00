//! The `redis` engine's store: Redis decides (marks, boards, the results stream), PostgreSQL
//! keeps every result, and the fallback between them lives here, so nothing above the Store
//! knows there are two services.
//!
//! Each session has one home, fixed when its game starts (`GameSession::fallback`): a game
//! started while Redis answers is decided in Redis only, and while Redis is unreachable its
//! submit gets a retryable error, never a decision in PostgreSQL that could contradict one
//! Redis holds and PostgreSQL has not seen yet (the stream's backlog). A game started while
//! Redis is unreachable is decided straight in PostgreSQL, for good, and answered after the
//! commit. A watchdog pings Redis every second and, when it answers again, rebuilds the
//! boards from PostgreSQL before declaring the fallback over. docs/RELIABILITY.md states the
//! invariant and the tests that hold it. The PersistenceBatcher drains
//! the stream and publishes its state in [`PersistStatus`], which `Store::health` reads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;

use super::error::StoreError;
use super::postgres::replica::Replica;
use super::postgres::{self, migrate, results};
use super::redis::RedisStore;
use crate::config::{Config, ConfigError};
use crate::domain::board::Standing;
use crate::domain::campaign::CampaignRules;
use crate::domain::clock::now_ms;
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, BoardKind, CampaignId, Region};
use crate::domain::session::GameSession;
use crate::store::live::CampaignBook;
use crate::telemetry;

/// Attempts to reach Redis and PostgreSQL at start before giving up, and the longest pause.
const STARTUP_ATTEMPTS: u32 = 30;
const STARTUP_MAX_PAUSE: Duration = Duration::from_secs(10);

/// How often the watchdog pings Redis.
const REDIS_WATCH_EVERY: Duration = Duration::from_secs(1);

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{service} unreachable after {STARTUP_ATTEMPTS} attempts: {error}")]
    Unreachable {
        service: &'static str,
        error: StoreError,
    },
}

/// What `/health` needs to know of the write-behind path; written by the PersistenceBatcher.
pub struct PersistStatus {
    /// Entries in the stream not yet written to PostgreSQL.
    pub backlog: AtomicU64,
    /// Age of the oldest of them, ms.
    pub oldest_ms: AtomicU64,
    /// False while writes to PostgreSQL fail.
    pub postgres_ok: AtomicBool,
}

impl Default for PersistStatus {
    /// The store opens only once PostgreSQL answered, so it starts healthy.
    fn default() -> Self {
        Self {
            backlog: AtomicU64::new(0),
            oldest_ms: AtomicU64::new(0),
            postgres_ok: AtomicBool::new(true),
        }
    }
}

/// Redis and PostgreSQL together. Cheap to clone: every part is shared.
#[derive(Clone)]
pub struct Durable {
    pub redis: RedisStore,
    /// The primary.
    pub pg: Pool,
    /// The read replica, when `DATABASE_READ_URL` names one.
    replica: Option<Arc<Replica>>,
    /// False while Redis is unreachable and results go straight to PostgreSQL; set by the
    /// watchdog only, so it turns true again only after the boards were rebuilt.
    redis_ok: Arc<AtomicBool>,
    pub status: Arc<PersistStatus>,
}

/// Retries `attempt` with growing pauses, logging each failure, until it succeeds or the
/// attempts run out: a service that is down at start is waited for, loudly.
async fn with_retries<T>(
    service: &'static str,
    mut attempt: impl AsyncFnMut() -> Result<T, StoreError>,
) -> Result<T, OpenError> {
    let mut pause = Duration::from_millis(500);
    for n in 1..=STARTUP_ATTEMPTS {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(error) if n == STARTUP_ATTEMPTS => {
                return Err(OpenError::Unreachable { service, error })
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

impl Durable {
    /// The clients, without touching either service (for `podium rebuild` and tests).
    pub fn connect(config: &Config) -> Result<Self, OpenError> {
        let redis =
            RedisStore::new(&config.redis, config.worker_threads()).map_err(|e| ConfigError {
                key: "REDIS_URL".into(),
                expected: "a redis:// URL".into(),
                got: e.to_string(),
            })?;
        let pg = postgres::pool(&config.postgres).map_err(|e| ConfigError {
            key: "DATABASE_URL".into(),
            expected: "a postgres:// URL".into(),
            got: e.to_string(),
        })?;
        let replica = match &config.postgres.read_url {
            Some(url) => Some(Arc::new(Replica::new(
                postgres::pool::pool_at(&config.postgres, url).map_err(|e| ConfigError {
                    key: "DATABASE_READ_URL".into(),
                    expected: "a postgres:// URL".into(),
                    got: e.to_string(),
                })?,
                config.postgres.replica_max_lag_ms,
            ))),
            None => None,
        };
        Ok(Self {
            redis,
            pg,
            replica,
            redis_ok: Arc::new(AtomicBool::new(true)),
            status: Arc::new(PersistStatus::default()),
        })
    }

    /// Connects, waits for both services and brings the schema up to date. The engine starts
    /// the Redis watchdog ([`Self::watch`]) once it knows the campaigns.
    pub async fn open(config: &Config) -> Result<Self, OpenError> {
        let store = Self::connect(config)?;
        with_retries("Redis", async || store.redis.ping().await).await?;
        let applied = with_retries("PostgreSQL", async || {
            migrate::migrate(&store.pg, &config.postgres.schema).await
        })
        .await?;
        tracing::info!(?applied, "PostgreSQL schema is current");
        results::ensure_partitions(&store.pg, now_ms(), config.persist.partitions_ahead_days)
            .await
            .ok();
        Ok(store)
    }

    /// The session's decision, if it has one, read where the session is decided.
    pub async fn outcome(&self, session: &GameSession) -> Result<Option<Outcome>, StoreError> {
        if session.fallback {
            results::decided(&self.pg, &session.id, session.started_ms, &session.user).await
        } else {
            self.redis
                .outcome(&session.id, &session.user, &session.campaign)
                .await
        }
    }

    /// Decides where the session is decided: in Redis (unreachable: an error the client
    /// retries, never a decision elsewhere), or, for a game started while Redis was
    /// unreachable, straight in PostgreSQL.
    pub async fn decide(&self, attempt: &Attempt<'_>) -> Result<Outcome, StoreError> {
        if !attempt.fallback {
            return self.redis.decide(attempt).await;
        }
        let mut outcome = results::decide_directly(&self.pg, attempt).await?;
        telemetry::fallback_submit();
        if outcome.refused.is_none() && outcome.score == attempt.score && !self.redis_down() {
            // Redis is back: raise its boards now, as the rebuild did for the results decided
            // while it was away. Should that fail, a rebuild (forced here) raises them later.
            match self.offer(attempt).await {
                Ok(standing) => {
                    outcome.best = standing.map(|s| s.score);
                    outcome.rank = standing.map(|s| s.rank);
                }
                Err(err) => {
                    tracing::warn!(%err, "could not raise the boards for a result decided in PostgreSQL; rebuilding");
                    self.redis_ok.store(false, Ordering::Relaxed);
                }
            }
        }
        Ok(outcome)
    }

    /// Offers an accepted attempt to its boards in Redis; answers the standing on the first.
    async fn offer(&self, a: &Attempt<'_>) -> Result<Option<Standing>, StoreError> {
        let best = [(a.user.to_string(), a.score, a.now_ms)];
        for (board, ttl) in a.boards {
            self.redis.rebuild(board, *ttl, &best).await?;
        }
        match a.boards.first() {
            Some((board, _)) => self.redis.standing(board, a.user).await,
            None => Ok(None),
        }
    }

    /// An operator's read (see `postgres::replica` for which): on the replica while it is up and
    /// current, else on the primary.
    pub async fn operator_read<T>(
        &self,
        what: impl AsyncFn(&Pool) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(replica) = &self.replica {
            if let Some(v) = replica.read(&what).await {
                telemetry::operator_read("replica");
                return Ok(v);
            }
        }
        telemetry::operator_read("primary");
        what(&self.pg).await
    }

    /// Measures the replica's lag (every second, by the PersistenceBatcher).
    pub async fn probe_replica(&self) {
        if let Some(replica) = &self.replica {
            replica.probe().await;
        }
    }

    /// What the last probe or write found of PostgreSQL: for `/health` and its gauge alike.
    pub fn postgres_seen(&self, up: bool) {
        self.status.postgres_ok.store(up, Ordering::Relaxed);
        telemetry::postgres_up(up);
    }

    /// Whether results are being decided in PostgreSQL right now.
    pub fn redis_down(&self) -> bool {
        !self.redis_ok.load(Ordering::Relaxed)
    }

    /// Pings Redis every second. When it stops answering, games started from then on are
    /// decided in PostgreSQL; when it answers again, the boards are rebuilt from PostgreSQL
    /// (the results written there meanwhile) before the fallback is declared over.
    pub fn watch(&self, campaigns: Arc<CampaignBook>) {
        tokio::spawn(self.clone().watch_redis(campaigns));
    }

    async fn watch_redis(self, campaigns: Arc<CampaignBook>) {
        let mut tick = tokio::time::interval(REDIS_WATCH_EVERY);
        // Shown from the start, so a dashboard and the alert see 0, not nothing.
        telemetry::fallback_mode(!self.redis_ok.load(Ordering::Relaxed));
        loop {
            tick.tick().await;
            let up = self.redis.ping().await.is_ok();
            let was_up = self.redis_ok.load(Ordering::Relaxed);
            if !up && was_up {
                self.redis_ok.store(false, Ordering::Relaxed);
                telemetry::fallback(true);
            } else if up && !was_up {
                let mut rebuilt = true;
                for campaign in campaigns.all() {
                    let name = campaign.name.as_str();
                    if let Err(err) = self.rebuild_boards(name, &campaign.rules, now_ms()).await {
                        tracing::warn!(campaign = name, %err, "rebuild failed; retrying");
                        rebuilt = false;
                        break;
                    }
                }
                if rebuilt {
                    self.redis_ok.store(true, Ordering::Relaxed);
                    telemetry::fallback(false);
                }
            }
        }
    }

    /// Recomputes a campaign's boards (global, today's daily, and one per region) from
    /// PostgreSQL and raises the Redis boards to them. Used when Redis returns after an
    /// outage, and by `podium rebuild`. Answers how many board rows changed.
    pub async fn rebuild_boards(
        &self,
        campaign: &str,
        rules: &CampaignRules,
        now: u64,
    ) -> Result<u64, StoreError> {
        let started = std::time::Instant::now();
        let id = CampaignId::new(campaign);
        let board = |kind| BoardKey::of(&id, &kind, now);
        let day_start = now - now % 86_400_000;
        let (redis, pg) = (&self.redis, &self.pg);
        // A board an operator reset counts only what was accepted after.
        let resets = postgres::operators::resets(pg, campaign).await?;
        let since = |key: &BoardKey, from: Option<u64>| {
            let reset = resets.get(&key.board.to_string()).copied();
            from.max(reset)
        };
        let global = board(BoardKind::Global);
        let mut changed = redis
            .rebuild(
                &global,
                None,
                &results::bests(pg, campaign, since(&global, None), None).await?,
            )
            .await?;
        let daily = board(BoardKind::Daily);
        changed += redis
            .rebuild(
                &daily,
                Some(rules.daily_retention()),
                &results::bests(pg, campaign, since(&daily, Some(day_start)), None).await?,
            )
            .await?;
        for region in results::regions(pg, campaign)
            .await?
            .iter()
            .filter_map(|r| Region::parse(r))
        {
            let key = board(BoardKind::Region(region.clone()));
            let bests =
                results::bests(pg, campaign, since(&key, None), Some(region.as_str())).await?;
            changed += redis.rebuild(&key, None, &bests).await?;
        }
        telemetry::boards_rebuilt(campaign, changed, started.elapsed());
        Ok(changed)
    }
}
