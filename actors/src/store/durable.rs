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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::error::StoreError;
use super::postgres::replica::Replica;
use super::postgres::{self, migrate, results};
use super::redis::boards::{RebuildClaim, RebuildHold};
use super::redis::RedisStore;
use crate::config::{Config, ConfigError};
use crate::domain::campaign::{Campaign, CampaignRules};
use crate::domain::clock::now_ms;
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, BoardKind, CampaignId, LiveBoard, Region, UserId};
use crate::domain::session::GameSession;
use crate::store::live::CampaignBook;
use crate::telemetry;

/// Attempts to reach Redis and PostgreSQL at start before giving up, and the longest pause.
const STARTUP_ATTEMPTS: u32 = 30;
const STARTUP_MAX_PAUSE: Duration = Duration::from_secs(10);

/// How often the watchdog pings Redis.
const REDIS_WATCH_EVERY: Duration = Duration::from_secs(1);

/// Players per page of a rebuild's read, and the pause between pages of a rebuild after an
/// outage, which leaves PostgreSQL to the batcher's backlog and the fallback's decisions.
const REBUILD_PAGE: usize = 5_000;
const REBUILD_PAUSE: Duration = Duration::from_millis(5);
/// The rebuild lock's lease, renewed each page, and how often a waiting instance asks again.
const REBUILD_LEASE: Duration = Duration::from_secs(30);
const REBUILD_POLL: Duration = Duration::from_millis(200);

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
    /// The watchdog's last ping answered: Redis takes writes, whether or not the boards are
    /// rebuilt yet.
    redis_reachable: Arc<AtomicBool>,
    /// This store's name as a rebuild lock's owner.
    owner: Arc<str>,
    /// Results decided in PostgreSQL whose boards Redis did not take yet.
    unraised: Arc<Unraised>,
    pub status: Arc<PersistStatus>,
    /// `PG_RETENTION_DAYS` and `PG_ARCHIVE`.
    retention: (u32, bool),
    /// `REDIS_CAMPAIGN_TTL_DAYS`.
    campaign_ttl_days: u32,
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

/// A result decided in PostgreSQL, to raise its boards with once Redis is back.
struct Kept {
    boards: Vec<LiveBoard>,
    user: UserId,
    score: u64,
    at_ms: u64,
}

/// Results decided in PostgreSQL while Redis could not take their boards, per campaign, up to
/// [`UNRAISED_MAX`]; past that a campaign is marked to be rebuilt instead (`None`).
#[derive(Default)]
struct Unraised(Mutex<HashMap<CampaignId, Option<Vec<Kept>>>>);

/// Results kept per campaign for raising after an outage; more, and it is rebuilt instead.
const UNRAISED_MAX: usize = 100_000;

impl Unraised {
    fn keep(&self, a: &Attempt<'_>) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = all
            .entry(a.campaign.clone())
            .or_insert_with(|| Some(Vec::new()));
        match kept {
            Some(list) if list.len() < UNRAISED_MAX => list.push(Kept {
                boards: a.boards.to_vec(),
                user: a.user.clone(),
                score: a.score,
                at_ms: a.now_ms,
            }),
            _ => *kept = None,
        }
    }

    /// Marks `campaign` to be rebuilt rather than raised result by result.
    fn rebuild_later(&self, campaign: &CampaignId) {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(campaign.clone(), None);
    }

    /// What `campaign` kept (empty when nothing), or `None` when it kept too many.
    fn take(&self, campaign: &CampaignId) -> Option<Vec<Kept>> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(campaign).unwrap_or(Some(Vec::new()))
    }
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
            redis_reachable: Arc::new(AtomicBool::new(true)),
            owner: format!("{:016x}", rand::random::<u64>()).into(),
            unraised: Default::default(),
            retention: (config.postgres.retention_days, config.postgres.archive),
            campaign_ttl_days: config.redis.campaign_ttl_days,
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
        if outcome.refused.is_some() || outcome.score != attempt.score {
            return Ok(outcome);
        }
        // The boards are raised now if Redis answers, else when it is back (`recover`).
        let raised = match self.redis_reachable.load(Ordering::Relaxed) {
            true => self
                .redis
                .raise(attempt.campaign, attempt.boards, attempt.user, attempt.score, attempt.now_ms)
                .await
                .inspect_err(|err| tracing::warn!(%err, "could not raise the boards for a result decided in PostgreSQL; raised when Redis is back"))
                .ok(),
            false => None,
        };
        match raised {
            Some((best, rank)) => {
                outcome.best = best;
                outcome.rank = rank;
            }
            None => {
                self.unraised.keep(attempt);
                self.redis_ok.store(false, Ordering::Relaxed);
            }
        }
        Ok(outcome)
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

    /// Ages out old partitions (`PG_RETENTION_DAYS`; hourly, by the PersistenceBatcher).
    pub async fn age_out(&self) {
        let (days, archive) = self.retention;
        if let Err(err) = results::age_out(&self.pg, now_ms(), days, archive).await {
            tracing::warn!(%err, "could not age out old results partitions; retried in an hour");
        }
    }

    /// Lets the boards of each campaign that ended `REDIS_CAMPAIGN_TTL_DAYS` ago expire in
    /// Redis, and brings back those of a campaign reopened since (or of every campaign, when
    /// the setting is 0 again): their deadline is taken off and they are rebuilt from
    /// PostgreSQL, which keeps every result. Hourly, by the PersistenceBatcher.
    pub async fn expire_ended(&self, campaigns: &[Arc<Campaign>], now: u64) {
        for campaign in campaigns {
            if let Err(err) = self.settle_boards(campaign, now).await {
                tracing::warn!(campaign = campaign.name.as_str(), %err, "could not settle an ended campaign's boards; retried in an hour");
            }
        }
    }

    /// When `campaign`'s boards expire in Redis, if they do.
    fn boards_deadline(&self, campaign: &Campaign, now: u64) -> Option<u64> {
        let days = u64::from(self.campaign_ttl_days);
        (days > 0)
            .then(|| campaign.ended_at(now))
            .flatten()
            .map(|ended| ended.saturating_add(days * 86_400_000))
    }

    async fn settle_boards(&self, campaign: &Campaign, now: u64) -> Result<(), StoreError> {
        let deadline = self.boards_deadline(campaign, now);
        let name = &campaign.name;
        if !self.redis.boards_unsettled(name, deadline).await? {
            return Ok(());
        }
        // Global, and every region a board may exist for: those configured now and those
        // results were ever counted under (a region since taken off the list kept its board).
        let mut regions = campaign.rules.regions.clone();
        regions.extend(results::regions(&self.pg, name.as_str()).await?);
        regions.sort();
        regions.dedup();
        let mut boards = vec![BoardKey::of(name, &BoardKind::Global, now)];
        boards.extend(
            regions
                .iter()
                .filter_map(|r| Region::parse(r))
                .map(|r| BoardKey::of(name, &BoardKind::Region(r), now)),
        );
        match deadline {
            Some(at) => {
                if self.redis.expire_boards(name, &boards, at).await? {
                    tracing::info!(
                        campaign = name.as_str(),
                        expire_at_ms = at,
                        "an ended campaign's boards expire"
                    );
                }
            }
            None => {
                self.redis.keep_boards(name, &boards).await?;
                let changed = self
                    .rebuild_boards(name.as_str(), &campaign.rules, now, false)
                    .await?;
                self.redis.forget_end(name).await?;
                tracing::info!(
                    campaign = name.as_str(),
                    changed,
                    "a reopened campaign's boards are kept again, rebuilt"
                );
            }
        }
        Ok(())
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
            self.redis_reachable.store(up, Ordering::Relaxed);
            let was_up = self.redis_ok.load(Ordering::Relaxed);
            if !up && was_up {
                self.redis_ok.store(false, Ordering::Relaxed);
                telemetry::fallback(true);
            } else if up && !was_up {
                let mut rebuilt = true;
                for campaign in campaigns.all() {
                    // Its boards expired: rebuilt, they would only expire again.
                    if self
                        .boards_deadline(&campaign, now_ms())
                        .is_some_and(|at| at <= now_ms())
                    {
                        continue;
                    }
                    if let Err(err) = self.recover(&campaign).await {
                        tracing::warn!(campaign = campaign.name.as_str(), %err, "rebuild failed; retrying");
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

    /// Brings a campaign's boards back after an outage without a stampede. Redis may have
    /// lost board writes (restarted without them, or failed over to a replica that lacked
    /// them), so the boards are rebuilt from PostgreSQL once per Redis process: by one
    /// instance at a time (a lock with a lease, renewed each page), the others waiting and
    /// deciding in PostgreSQL until it is done. Then each instance raises the results it
    /// decided in PostgreSQL while it could not reach Redis (`Unraised`), which a rebuild that
    /// read before they were written would miss; if it kept too many to list, it rebuilds.
    async fn recover(&self, campaign: &Campaign) -> Result<(), StoreError> {
        loop {
            match self
                .redis
                .claim_rebuild(&campaign.name, &self.owner, REBUILD_LEASE)
                .await?
            {
                RebuildClaim::Done => break,
                RebuildClaim::Wait => tokio::time::sleep(REBUILD_POLL).await,
                RebuildClaim::Mine { run } => {
                    let built = self
                        .rebuild_boards(campaign.name.as_str(), &campaign.rules, now_ms(), true)
                        .await;
                    let hold = match built {
                        Ok(_) => RebuildHold::Done { run },
                        Err(_) => RebuildHold::Release,
                    };
                    self.redis
                        .hold_rebuild(&campaign.name, &self.owner, REBUILD_LEASE, hold)
                        .await?;
                    built?;
                    break;
                }
            }
        }
        match self.unraised.take(&campaign.name) {
            Some(kept) => {
                for r in kept {
                    let raised = self
                        .redis
                        .raise(&campaign.name, &r.boards, &r.user, r.score, r.at_ms)
                        .await;
                    if let Err(err) = raised {
                        // The rest are not lost: the next attempt rebuilds the campaign.
                        self.unraised.rebuild_later(&campaign.name);
                        return Err(err);
                    }
                }
                Ok(())
            }
            None => self
                .rebuild_boards(campaign.name.as_str(), &campaign.rules, now_ms(), true)
                .await
                .map(|_| ()),
        }
    }

    /// Recomputes a campaign's boards (global, today's daily, and one per region) from
    /// PostgreSQL and raises the Redis boards to them. Used when Redis returns after an
    /// outage (`paced`: a page at a time with a pause between, renewing the rebuild lock), and
    /// by `podium rebuild`. Answers how many board rows changed.
    pub async fn rebuild_boards(
        &self,
        campaign: &str,
        rules: &CampaignRules,
        now: u64,
        paced: bool,
    ) -> Result<u64, StoreError> {
        let started = std::time::Instant::now();
        let id = CampaignId::new(campaign);
        let board = |kind| BoardKey::of(&id, &kind, now);
        let day_start = now - now % 86_400_000;
        let pg = &self.pg;
        // A board an operator reset counts only what was accepted after.
        let resets = postgres::operators::resets(pg, campaign).await?;
        let since = |key: &BoardKey, from: Option<u64>| {
            let reset = resets.get(&key.board.to_string()).copied();
            from.max(reset)
        };
        let mut boards = vec![
            (
                board(BoardKind::Global),
                None,
                since(&board(BoardKind::Global), None),
                None,
            ),
            (
                board(BoardKind::Daily),
                Some(rules.daily_retention()),
                since(&board(BoardKind::Daily), Some(day_start)),
                None,
            ),
        ];
        for region in results::regions(pg, campaign)
            .await?
            .iter()
            .filter_map(|r| Region::parse(r))
        {
            let key = board(BoardKind::Region(region.clone()));
            let from = since(&key, None);
            boards.push((key, None, from, Some(region)));
        }
        let mut changed = 0;
        for (key, ttl, from, region) in &boards {
            let mut after: Option<String> = None;
            loop {
                let page = results::bests_page(
                    pg,
                    campaign,
                    *from,
                    region.as_ref().map(Region::as_str),
                    after.as_deref(),
                    REBUILD_PAGE,
                )
                .await?;
                changed += self.redis.rebuild(key, *ttl, &page).await?;
                if page.len() < REBUILD_PAGE {
                    break;
                }
                after = page.last().map(|(user, _, _)| user.clone());
                if paced {
                    self.redis
                        .hold_rebuild(&id, &self.owner, REBUILD_LEASE, RebuildHold::Renew)
                        .await?;
                    tokio::time::sleep(REBUILD_PAUSE).await;
                }
            }
        }
        telemetry::boards_rebuilt(campaign, changed, started.elapsed());
        Ok(changed)
    }
}
