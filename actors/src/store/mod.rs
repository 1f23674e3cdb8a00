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
pub mod memory;
pub mod postgres;
pub mod redis;

use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use error::StoreError;

use crate::config::{Config, EngineKind};
use crate::domain::board::{Entry, Standing};
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, UserId};
use crate::domain::session::GameSession;
use counters::Counters;
use durable::{Durable, OpenError};
use memory::MemoryStore;

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
            Store::Memory(m) => Ok(m.decide(attempt)),
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
}
