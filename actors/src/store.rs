//! The `memory` engine's store: boards and idempotency marks held in process, with the
//! semantics the Redis engine gives them (best score per user, ties to the earlier, one
//! outcome per session). Rooms read boards from here; the results pipeline writes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::board::{Board, Entry};
use crate::ids::{BoardKey, UserId};
use crate::protocol::Standing;

/// The answer given to one session's submit, kept so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub user: UserId,
    pub score: u64,
    /// `None` when accepted, else the refusal code.
    pub refused: Option<&'static str>,
    pub best: Option<u64>,
    pub rank: Option<u64>,
}

#[derive(Default)]
struct Inner {
    boards: HashMap<BoardKey, Board>,
    /// Session id -> outcome and when the mark may be forgotten (Unix ms).
    outcomes: HashMap<String, (Outcome, u64)>,
    /// Grows by one per accepted result: the tie-break stamp (earlier wins).
    stamp: u64,
}

/// A std mutex guards everything: each call is a few map operations, never held across an
/// await, and one lock keeps "mark the session + update the boards" atomic as the Redis
/// engine's MULTI will.
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

    /// Accepts a result: marks the session and offers the score to each board. Returns the
    /// outcome (best and rank on the first board) and whether any board changed. If the
    /// session was already marked, returns that outcome untouched.
    pub fn accept(
        &self,
        session: &str,
        user: &UserId,
        score: u64,
        boards: &[BoardKey],
        keep_until_ms: u64,
    ) -> (Outcome, bool) {
        let mut inner = self.lock();
        if let Some((done, _)) = inner.outcomes.get(session) {
            return (done.clone(), false);
        }
        inner.stamp += 1;
        let stamp = inner.stamp;
        let mut changed = false;
        for key in boards {
            changed |= inner
                .boards
                .entry(key.clone())
                .or_default()
                .offer(user, score, stamp);
        }
        let standing = boards
            .first()
            .and_then(|k| inner.boards.get(k))
            .and_then(|b| b.standing(user));
        let outcome = Outcome {
            user: user.clone(),
            score,
            refused: None,
            best: standing.map(|s| s.score),
            rank: standing.map(|s| s.rank),
        };
        inner
            .outcomes
            .insert(session.to_owned(), (outcome.clone(), keep_until_ms));
        (outcome, changed)
    }

    /// Records a refusal so a retry of the same session gets the same answer.
    pub fn refuse(&self, session: &str, outcome: Outcome, keep_until_ms: u64) -> Outcome {
        let mut inner = self.lock();
        inner
            .outcomes
            .entry(session.to_owned())
            .or_insert((outcome, keep_until_ms))
            .0
            .clone()
    }

    pub fn top(&self, board: &BoardKey, n: usize) -> Vec<Entry> {
        self.lock()
            .boards
            .get(board)
            .map(|b| b.top(n))
            .unwrap_or_default()
    }

    pub fn standing(&self, board: &BoardKey, user: &UserId) -> Option<Standing> {
        self.lock().boards.get(board).and_then(|b| b.standing(user))
    }

    /// Forgets idempotency marks past their keep time (by then the session token is expired
    /// and a resubmit is refused as `too_slow`). Returns how many remain.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let mut inner = self.lock();
        inner.outcomes.retain(|_, (_, until)| *until > now_ms);
        inner.outcomes.len()
    }
}
