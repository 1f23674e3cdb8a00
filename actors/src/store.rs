//! Where boards and idempotency marks live: [`Store`] is the one seam between the engine and
//! its storage. The `memory` engine keeps everything in process ([`MemoryStore`]); the
//! `redis` engine uses [`RedisStore`]. Both give the same semantics: best score per user,
//! ties to the earlier, one outcome per session, a version per board that grows with every
//! change (rooms poll it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::board::{Board, Entry};
use crate::ids::{BoardKey, CampaignId, UserId};
use crate::protocol::Standing;
pub use crate::redis_store::RedisStore;

/// The answer given to one session's submit, kept so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub user: UserId,
    pub score: u64,
    /// `None` when accepted, else the refusal code.
    pub refused: Option<String>,
    /// Best and rank on the campaign's global board after this result (accepted only).
    pub best: Option<u64>,
    pub rank: Option<u64>,
}

/// One decided attempt, ready to be recorded.
pub struct Attempt<'a> {
    pub session_id: &'a str,
    pub user: &'a UserId,
    pub campaign: &'a CampaignId,
    pub score: u64,
    pub started_ms: u64,
    pub now_ms: u64,
    /// The idempotency mark is kept until then.
    pub keep_until_ms: u64,
    /// `None` to accept, else the refusal code.
    pub refused: Option<&'static str>,
    /// The player's region, recorded with the result.
    pub region: Option<&'a crate::ids::Region>,
    /// Boards the score counts on, the first being the one `best`/`rank` report, each with
    /// how long it is kept (`None`: for good).
    pub boards: &'a [(BoardKey, Option<Duration>)],
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store timed out")]
    Timeout,
    #[error("store command failed: {0}")]
    Command(String),
    #[error("corrupt {0} in the store")]
    Corrupt(&'static str),
}

impl StoreError {
    /// The store could not be reached (as opposed to refusing a command): the case the
    /// PostgreSQL fallback is for.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Timeout)
    }
}

#[derive(Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(RedisStore),
}

impl Store {
    pub async fn outcome(&self, session: &str) -> Result<Option<Outcome>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.outcome(session)),
            Store::Redis(r) => r.outcome(session).await,
        }
    }

    /// Records the attempt unless the session was decided before; answers the session's
    /// outcome either way (the earlier one wins).
    pub async fn decide(&self, attempt: &Attempt<'_>) -> Result<Outcome, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.decide(attempt)),
            Store::Redis(r) => r.decide(attempt).await,
        }
    }

    pub async fn top(&self, board: &BoardKey, n: usize) -> Result<Vec<Entry>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.top(board, n)),
            Store::Redis(r) => r.top(board, n).await,
        }
    }

    pub async fn standing(
        &self,
        board: &BoardKey,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.standing(board, user)),
            Store::Redis(r) => r.standing(board, user).await,
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
            Store::Redis(r) => r.page(board, from_rank, count).await,
        }
    }

    /// Players on the board.
    pub async fn count(&self, board: &BoardKey) -> Result<u64, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.count(board)),
            Store::Redis(r) => r.count(board).await,
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
            Store::Redis(r) => r.version(board).await,
        }
    }

    /// Forgets expired idempotency marks (Redis expires its own).
    pub fn sweep(&self, now_ms: u64) {
        if let Store::Memory(m) = self {
            m.sweep(now_ms);
        }
    }
}

#[derive(Default)]
struct Inner {
    boards: HashMap<BoardKey, (Board, u64)>,
    /// Session id -> outcome and when the mark may be forgotten (Unix ms).
    outcomes: HashMap<String, (Outcome, u64)>,
    /// Grows by one per accepted result: the tie-break stamp (earlier wins).
    stamp: u64,
}

/// A std mutex guards everything: each call is a few map operations, never held across an
/// await, and one lock keeps "mark the session + update the boards" atomic as the Redis
/// engine's script does.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn outcome(&self, session: &str) -> Option<Outcome> {
        self.lock().outcomes.get(session).map(|(o, _)| o.clone())
    }

    pub fn decide(&self, a: &Attempt<'_>) -> Outcome {
        let mut inner = self.lock();
        if let Some((done, _)) = inner.outcomes.get(a.session_id) {
            return done.clone();
        }
        let mut standing = None;
        if a.refused.is_none() {
            inner.stamp += 1;
            let stamp = inner.stamp;
            for (i, (key, _)) in a.boards.iter().enumerate() {
                let (board, version) = inner.boards.entry(key.clone()).or_default();
                if board.offer(a.user, a.score, stamp) {
                    *version += 1;
                }
                if i == 0 {
                    standing = board.standing(a.user);
                }
            }
        }
        let outcome = Outcome {
            user: a.user.clone(),
            score: a.score,
            refused: a.refused.map(str::to_owned),
            best: standing.map(|s| s.score),
            rank: standing.map(|s| s.rank),
        };
        inner
            .outcomes
            .insert(a.session_id.to_owned(), (outcome.clone(), a.keep_until_ms));
        outcome
    }

    pub fn top(&self, board: &BoardKey, n: usize) -> Vec<Entry> {
        self.lock()
            .boards
            .get(board)
            .map(|(b, _)| b.top(n))
            .unwrap_or_default()
    }

    pub fn standing(&self, board: &BoardKey, user: &UserId) -> Option<Standing> {
        self.lock()
            .boards
            .get(board)
            .and_then(|(b, _)| b.standing(user))
    }

    pub fn page(&self, board: &BoardKey, from_rank: u64, count: usize) -> Vec<Entry> {
        let skip = from_rank.saturating_sub(1) as usize;
        let mut rows = self
            .lock()
            .boards
            .get(board)
            .map(|(b, _)| b.top(skip + count))
            .unwrap_or_default();
        rows.drain(..skip.min(rows.len()));
        rows
    }

    pub fn count(&self, board: &BoardKey) -> u64 {
        self.lock()
            .boards
            .get(board)
            .map_or(0, |(b, _)| b.len() as u64)
    }

    pub fn version(&self, board: &BoardKey) -> u64 {
        self.lock().boards.get(board).map_or(0, |(_, v)| *v)
    }

    /// Forgets idempotency marks past their keep time (by then the session token is expired
    /// and a resubmit is refused as `too_slow`).
    pub fn sweep(&self, now_ms: u64) {
        self.lock().outcomes.retain(|_, (_, until)| *until > now_ms);
    }
}
