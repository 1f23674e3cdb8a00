//! The `memory` engine's store: every board and idempotency mark in process, for a
//! newcomer's first run, the demo and fast tests. Same semantics as Redis: best score per
//! user, ties to the earlier, one outcome per session, a version per board.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::board::{Board, Entry, Standing};
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, UserId};

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
            refused: a.refused,
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
