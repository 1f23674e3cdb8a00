//! Where state lives. [`Store`] is the one seam between the engine and its storage, and
//! [`Store::open`] is the one place the engine kind is chosen: `memory` keeps everything in
//! process ([`memory`]); `redis` uses Redis and PostgreSQL together, with the fallback between
//! them inside ([`durable`], built on [`redis`] and [`postgres`]). Both give the same
//! semantics: best score per user, ties to the earlier, one outcome per session, a version per
//! board that grows with every change (rooms poll it). The counts every instance shares (socket
//! places, message windows) come from the same choice, as [`counters::Counters`].

pub mod counters;
pub mod durable;
pub mod error;
pub mod live;
pub mod memory;
pub mod postgres;
pub mod redis;

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use error::StoreError;

use crate::config::{Config, EngineKind};
use crate::domain::board::{Entry, Standing};
use crate::domain::campaign::Campaign;
use crate::domain::decision::Record;
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, LiveBoard, UserId};
use crate::domain::operator::{Archive, AuditEntry, Ban, FlagQuery, Flagged};
use crate::domain::session::GameSession;
use counters::Counters;
use durable::{Durable, OpenError};
use memory::MemoryStore;
use postgres::operators as pg;

/// Cheap to clone: every engine part holds one.
#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Durable(Durable),
}

/// How the store's services are doing, for `/health`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Results are being decided straight in PostgreSQL because Redis is unreachable.
    pub redis_down: bool,
    /// The write-behind path to PostgreSQL, when the store has one.
    pub persist: Option<PersistHealth>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PersistHealth {
    pub postgres_down: bool,
    /// Results in the stream not yet in PostgreSQL, and the age of the oldest, ms.
    pub backlog: u64,
    pub lag_ms: u64,
}

impl Store {
    /// The store the configuration names, ready to use.
    pub async fn open(config: &Config) -> Result<Self, OpenError> {
        Ok(match config.engine_kind() {
            EngineKind::Memory => Store::Memory(Arc::new(MemoryStore::default())),
            EngineKind::Redis => Store::Durable(Durable::open(config).await?),
        })
    }

    /// Creates each configured campaign the store does not hold yet (one the store holds is
    /// never overwritten: operators may have changed it), then answers every campaign and the
    /// bans in force, and starts what watches the store's services.
    pub async fn open_campaigns(
        &self,
        configured: &std::collections::BTreeMap<String, crate::domain::campaign::CampaignRules>,
        now_ms: u64,
    ) -> Result<(Arc<live::CampaignBook>, Arc<live::BanBook>), StoreError> {
        use crate::domain::campaign::Campaign;
        use crate::domain::ids::CampaignId;
        for (name, rules) in configured {
            let campaign = Campaign::configured(CampaignId::new(name), rules.clone(), now_ms);
            self.create_campaign(&campaign).await?;
        }
        let campaigns = Arc::new(live::CampaignBook::new(self.campaigns().await?));
        let bans = live::BanBook::default();
        bans.replace(self.bans(now_ms).await?);
        if let Store::Durable(d) = self {
            d.watch(campaigns.clone());
        }
        Ok((campaigns, Arc::new(bans)))
    }

    /// Where the counts shared across instances live.
    pub fn counters(&self) -> Counters {
        match self {
            Store::Memory(_) => Counters::Local,
            Store::Durable(d) => Counters::Redis(d.redis.clone()),
        }
    }

    /// The write-behind path a PersistenceBatcher drains, when the store has one.
    pub fn write_behind(&self) -> Option<&Durable> {
        match self {
            Store::Memory(_) => None,
            Store::Durable(d) => Some(d),
        }
    }

    pub fn health(&self) -> Health {
        match self {
            Store::Memory(_) => Health::default(),
            Store::Durable(d) => Health {
                redis_down: d.redis_down(),
                persist: Some(PersistHealth {
                    postgres_down: !d.status.postgres_ok.load(Ordering::Relaxed),
                    backlog: d.status.backlog.load(Ordering::Relaxed),
                    lag_ms: d.status.oldest_ms.load(Ordering::Relaxed),
                }),
            },
        }
    }

    /// The session's decision, if it has one, read where the session is decided.
    pub async fn outcome(&self, session: &GameSession) -> Result<Option<Outcome>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.outcome(&session.id)),
            Store::Durable(d) => d.outcome(session).await,
        }
    }

    /// Whether a game started now is decided in the fallback: the primary is unreachable.
    pub fn fallback_active(&self) -> bool {
        match self {
            Store::Memory(_) => false,
            Store::Durable(d) => d.redis_down(),
        }
    }

    /// Records the attempt unless the session was decided before; answers the session's
    /// outcome either way (the earlier one wins).
    pub async fn decide(&self, attempt: &Attempt<'_>) -> Result<Outcome, StoreError> {
        match self {
            Store::Memory(m) => m.decide(attempt),
            Store::Durable(d) => d.decide(attempt).await,
        }
    }

    pub async fn top(&self, board: &BoardKey, n: usize) -> Result<Vec<Entry>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.top(board, n)),
            Store::Durable(d) => d.redis.top(board, n).await,
        }
    }

    pub async fn standing(
        &self,
        board: &BoardKey,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.standing(board, user)),
            Store::Durable(d) => d.redis.standing(board, user).await,
        }
    }

    /// `count` rows from rank `from_rank` (1-based) down.
    pub async fn page(
        &self,
        board: &BoardKey,
        from_rank: u64,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.page(board, from_rank, count)),
            Store::Durable(d) => d.redis.page(board, from_rank, count).await,
        }
    }

    /// Players on the board.
    pub async fn count(&self, board: &BoardKey) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.count(board)),
            Store::Durable(d) => d.redis.count(board).await,
        }
    }

    /// The rows from `radius` ranks above `user` to `radius` below (clamped at rank 1), or
    /// nothing when the user has no score on the board.
    pub async fn around(
        &self,
        board: &BoardKey,
        user: &UserId,
        radius: u64,
    ) -> Result<Vec<Entry>, StoreError> {
        let Some(me) = self.standing(board, user).await? else {
            return Ok(Vec::new());
        };
        let from = me.rank.saturating_sub(radius).max(1);
        self.page(board, from, (me.rank + radius + 1 - from) as usize)
            .await
    }

    pub async fn version(&self, board: &BoardKey) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.version(board)),
            Store::Durable(d) => d.redis.version(board).await,
        }
    }

    /// Forgets expired idempotency marks (Redis expires its own).
    pub fn sweep(&self, now_ms: u64) {
        if let Store::Memory(m) = self {
            m.sweep(now_ms);
        }
    }

    /// Bars a banned player from the boards: from now on their submits decide nothing, and
    /// their bests leave `boards` (every board of every campaign) until
    /// [`Self::restore_player`]. Safe to repeat.
    pub async fn hide_player(&self, user: &UserId, boards: &[LiveBoard]) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.hide_player(user);
                Ok(())
            }
            Store::Durable(d) => d.redis.hide_player(user, boards).await,
        }
    }

    /// Removes the player's scores from every board of `campaign` for good; their results
    /// stay recorded, marked removed, so no rebuild counts them again. Answers from how many
    /// boards.
    pub async fn remove_scores(
        &self,
        user: &UserId,
        campaign: &Campaign,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.remove_scores(user, campaign.name.as_str(), now_ms)),
            Store::Durable(d) => {
                let (name, who) = (campaign.name.as_str(), user.as_str());
                postgres::results::mark_removed(&d.pg, name, who, now_ms).await?;
                d.redis
                    .remove_scores(user, &campaign.name, &campaign.boards(now_ms), now_ms)
                    .await
            }
        }
    }

    /// Empties a board and keeps what it held as the archive `name`; a rebuild counts only
    /// results accepted after. `Ok(None)` when the board already has an archive of that name
    /// (nothing changed).
    pub async fn reset_board(
        &self,
        board: &BoardKey,
        name: &str,
        now_ms: u64,
    ) -> Result<Option<Archive>, StoreError> {
        let (campaign, board_name) = (board.campaign.to_string(), board.board.to_string());
        let archive = |rows| Archive {
            campaign: campaign.clone(),
            board: board_name.clone(),
            name: name.to_owned(),
            at_ms: now_ms,
            rows,
        };
        match self {
            Store::Memory(m) => {
                if m.archives(&campaign, &board_name)
                    .iter()
                    .any(|a| a.name == name)
                {
                    return Ok(None);
                }
                let kept = archive(m.reset(board));
                m.archive(kept.clone());
                Ok(Some(kept))
            }
            Store::Durable(d) => {
                if pg::archive_exists(&d.pg, &campaign, &board_name, name).await? {
                    return Ok(None);
                }
                let kept = archive(d.redis.reset(board, now_ms).await?);
                if let Err(err) = pg::archive(&d.pg, &kept).await {
                    // The board is empty already; its standings are still derivable from
                    // `results`, and logged here whole so nothing an operator saw is lost.
                    tracing::error!(%err, campaign, board = board_name, rows = ?kept.rows, "board reset, but its archive could not be written");
                    return Err(err);
                }
                Ok(Some(kept))
            }
        }
    }

    /// A board's archives, newest first.
    pub async fn archives(&self, board: &BoardKey) -> Result<Vec<Archive>, StoreError> {
        let (campaign, name) = (board.campaign.to_string(), board.board.to_string());
        match self {
            Store::Memory(m) => Ok(m.archives(&campaign, &name)),
            Store::Durable(d) => {
                d.operator_read(async |pool| pg::archives(pool, &campaign, &name).await)
                    .await
            }
        }
    }

    /// Raises the campaign's boards to what PostgreSQL holds (`podium rebuild`); answers how
    /// many rows changed. The memory engine's boards are their own record: nothing to do.
    pub async fn rebuild_campaign(&self, c: &Campaign, now_ms: u64) -> Result<u64, StoreError> {
        match self {
            Store::Memory(_) => Ok(0),
            Store::Durable(d) => {
                d.rebuild_boards(c.name.as_str(), &c.rules, now_ms, false)
                    .await
            }
        }
    }

    /// Lifts the bar of [`Self::hide_player`] and puts the player's bests back.
    async fn restore_player(&self, user: &UserId, boards: &[LiveBoard]) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.restore_player(user);
                Ok(())
            }
            Store::Durable(d) => d.redis.restore_player(user, boards).await,
        }
    }

    // Operator data: in process with the memory engine, in PostgreSQL with the redis engine.

    /// Every campaign the store holds.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.campaigns()),
            Store::Durable(d) => pg::campaigns(&d.pg).await,
        }
    }

    /// The campaign of that name, as the store holds it now.
    pub async fn campaign(&self, name: &str) -> Result<Option<Campaign>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.campaign(name)),
            Store::Durable(d) => pg::campaign(&d.pg, name).await,
        }
    }

    /// Creates `c` unless a campaign of its name exists; answers whether it did.
    pub async fn create_campaign(&self, c: &Campaign) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.create_campaign(c)),
            Store::Durable(d) => pg::create_campaign(&d.pg, c).await,
        }
    }

    /// Replaces the campaign if it is still at `read_version`; false when it changed since.
    pub async fn update_campaign(
        &self,
        c: &Campaign,
        read_version: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.update_campaign(c, read_version)),
            Store::Durable(d) => pg::update_campaign(&d.pg, c, read_version).await,
        }
    }

    /// Bans a player: the ban is recorded first (so a re-read can redo the rest should the
    /// boards be out of reach), then they leave `boards` ([`Self::hide_player`]).
    pub async fn ban(&self, ban: &Ban, boards: &[LiveBoard]) -> Result<(), StoreError> {
        self.put_ban(ban).await?;
        self.hide_player(&ban.user, boards).await
    }

    /// Lifts a player's ban: their bests go back on `boards` first, and only then is the ban
    /// record dropped, so a failure in between leaves a ban a later lift or lapse completes.
    /// Answers whether there was a ban.
    pub async fn unban(&self, user: &UserId, boards: &[LiveBoard]) -> Result<bool, StoreError> {
        self.restore_player(user, boards).await?;
        self.lift_ban(user).await
    }

    async fn put_ban(&self, ban: &Ban) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.put_ban(ban);
                Ok(())
            }
            Store::Durable(d) => pg::put_ban(&d.pg, ban).await,
        }
    }

    /// Drops the player's ban record; answers whether there was one.
    async fn lift_ban(&self, user: &UserId) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lift_ban(user)),
            Store::Durable(d) => pg::lift_ban(&d.pg, user).await,
        }
    }

    /// A player's latest accepted results, newest first (the memory engine keeps the latest
    /// of everyone's only).
    pub async fn recent_results(
        &self,
        user: &UserId,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.recent(user, limit)),
            Store::Durable(d) => {
                d.operator_read(async |pool| {
                    postgres::results::recent(pool, user.as_str(), limit).await
                })
                .await
            }
        }
    }

    /// Every accepted result of the campaign as CSV, header first, streamed: from PostgreSQL
    /// without holding the export, or from what the memory engine keeps.
    pub async fn results_csv(
        &self,
        campaign: &str,
    ) -> Result<
        futures_util::stream::BoxStream<'static, Result<bytes::Bytes, StoreError>>,
        StoreError,
    > {
        use futures_util::StreamExt;
        let header = futures_util::stream::once(async {
            Ok(bytes::Bytes::from_static(
                postgres::results::CSV_HEADER.as_bytes(),
            ))
        });
        Ok(match self {
            Store::Memory(m) => {
                let rows = m
                    .results_csv(campaign)
                    .into_iter()
                    .map(|r| Ok(bytes::Bytes::from(r)));
                header.chain(futures_util::stream::iter(rows)).boxed()
            }
            Store::Durable(d) => header
                .chain(
                    d.operator_read(async |pool| {
                        postgres::results::results_csv(pool, campaign).await
                    })
                    .await?,
                )
                .boxed(),
        })
    }

    /// A decided session as evidence: the result or refused attempt, with a counted game's
    /// claim, drops, flags and input log. The redis engine reads it from PostgreSQL, so a
    /// result is there once the batcher wrote it (within `PERSIST_FLUSH_INTERVAL` normally);
    /// the memory engine keeps the latest results only.
    pub async fn session(&self, session: &str) -> Result<Option<Record>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.session(session)),
            Store::Durable(d) => {
                d.operator_read(async |pool| postgres::results::session(pool, session).await)
                    .await
            }
        }
    }

    /// Refused attempts for review, newest first (the memory engine keeps the latest only).
    pub async fn flagged(&self, q: &FlagQuery) -> Result<Vec<Flagged>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.flagged(q)),
            Store::Durable(d) => {
                d.operator_read(async |pool| pg::flagged(pool, q).await)
                    .await
            }
        }
    }

    /// An operator dismissed the refused attempt of `session`; false when there is none.
    pub async fn dismiss_flag(
        &self,
        session: &str,
        by: &str,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.dismiss_flag(session, by, at_ms)),
            Store::Durable(d) => pg::dismiss_flag(&d.pg, session, by, at_ms).await,
        }
    }

    /// Bans whose time ran out by `now_ms` and that are still recorded.
    pub async fn lapsed_bans(&self, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.lapsed_bans(now_ms)),
            Store::Durable(d) => pg::lapsed_bans(&d.pg, now_ms).await,
        }
    }

    /// The bans in force at `now_ms`, newest first.
    pub async fn bans(&self, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.bans(now_ms)),
            Store::Durable(d) => pg::bans(&d.pg, now_ms).await,
        }
    }

    /// Appends an admin action to the audit log.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        body: &serde_json::Value,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.audit(actor, action, target, body, now_ms);
                Ok(())
            }
            Store::Durable(d) => pg::audit(&d.pg, actor, action, target, body).await,
        }
    }

    /// Up to `limit` audit entries older than the entry `before`, newest first.
    pub async fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.audit_page(before, limit)),
            Store::Durable(d) => {
                d.operator_read(async |pool| pg::audit_page(pool, before, limit).await)
                    .await
            }
        }
    }
}
