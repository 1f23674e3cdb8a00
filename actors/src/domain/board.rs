//! Leaderboards as the domain sees them: one in-memory board (used by the `memory` engine)
//! and the top-N diff that rooms broadcast.
//!
//! Order: higher score first; on a tie, whoever reached that score first (the smaller
//! `reached` stamp) wins; the user id only breaks ties between equal stamps, which the
//! engine never hands out twice.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::ids::UserId;

/// Where a player stands on a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub rank: u64,
    pub score: u64,
}

/// One row of a top-N list as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Entry {
    pub rank: u64,
    pub user: UserId,
    pub score: u64,
}

/// A row that changed between two top-N lists. `from` is the rank it had before, or `None`
/// for a player new to the list (so a client can animate the move).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub rank: u64,
    pub user: UserId,
    pub score: u64,
    pub from: Option<u64>,
}

/// What turns one top-N list into the next. Apply it with [`apply`]: take out `removed` and
/// every user in `changed`, keep the rest in order, then put each `changed` row at its rank.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Diff {
    pub removed: Vec<UserId>,
    pub changed: Vec<Change>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The diff from `old` to `new`, both sorted by rank. A row is `changed` when its player is
/// new to the list or has a new score; rows whose score stayed keep their relative order
/// (the tie-break stamp only changes with the score), so they need not be sent.
pub fn diff(old: &[Entry], new: &[Entry]) -> Diff {
    let before: HashMap<&UserId, &Entry> = old.iter().map(|e| (&e.user, e)).collect();
    let after: HashSet<&UserId> = new.iter().map(|e| &e.user).collect();
    let removed = old
        .iter()
        .filter(|e| !after.contains(&e.user))
        .map(|e| e.user.clone())
        .collect();
    let changed = new
        .iter()
        .filter_map(|e| match before.get(&e.user) {
            Some(prev) if prev.score == e.score => None,
            prev => Some(Change {
                rank: e.rank,
                user: e.user.clone(),
                score: e.score,
                from: prev.map(|p| p.rank),
            }),
        })
        .collect();
    Diff { removed, changed }
}

/// Applies a diff the way docs/PROTOCOL.md tells clients to.
pub fn apply(old: &[Entry], diff: &Diff) -> Vec<Entry> {
    let out: HashSet<&UserId> = diff
        .removed
        .iter()
        .chain(diff.changed.iter().map(|c| &c.user))
        .collect();
    let mut kept = old.iter().filter(|e| !out.contains(&e.user));
    let mut changed: Vec<&Change> = diff.changed.iter().collect();
    changed.sort_by_key(|c| c.rank);
    let mut changed = changed.into_iter().peekable();
    let mut list = Vec::with_capacity(old.len() + diff.changed.len());
    loop {
        let rank = list.len() as u64 + 1;
        let row = match changed.peek() {
            Some(c) if c.rank == rank => changed.next().map(|c| (c.user.clone(), c.score)),
            _ => kept
                .next()
                .map(|e| (e.user.clone(), e.score))
                .or_else(|| changed.next().map(|c| (c.user.clone(), c.score))),
        };
        match row {
            Some((user, score)) => list.push(Entry { rank, user, score }),
            None => return list,
        }
    }
}

/// One board held in memory: best score per user with the stamp of when it was reached.
#[derive(Debug, Default)]
pub struct Board {
    best: HashMap<UserId, (u64, u64)>,
    order: BTreeSet<(Reverse<u64>, u64, UserId)>,
}

impl Board {
    /// Records `score` for `user` if it beats their best (ZADD GT semantics); `reached` is a
    /// stamp that grows with time. Returns whether the board changed.
    pub fn offer(&mut self, user: &UserId, score: u64, reached: u64) -> bool {
        if let Some(&(best, stamp)) = self.best.get(user) {
            if score <= best {
                return false;
            }
            self.order.remove(&(Reverse(best), stamp, user.clone()));
        }
        self.best.insert(user.clone(), (score, reached));
        self.order.insert((Reverse(score), reached, user.clone()));
        true
    }

    /// The first `n` rows.
    pub fn top(&self, n: usize) -> Vec<Entry> {
        self.order
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, (Reverse(score), _, user))| Entry {
                rank: i as u64 + 1,
                user: user.clone(),
                score: *score,
            })
            .collect()
    }

    /// Where `user` stands. O(rank): fine for the memory engine, which is for demos and tests;
    /// the Redis engine answers this with ZREVRANK.
    pub fn standing(&self, user: &UserId) -> Option<Standing> {
        let &(score, stamp) = self.best.get(user)?;
        let key = (Reverse(score), stamp, user.clone());
        let rank = self.order.range(..key).count() as u64 + 1;
        Some(Standing { rank, score })
    }

    /// Takes `user` off the board, answering their best and its stamp (to put back with
    /// [`Board::offer`]).
    pub fn take(&mut self, user: &UserId) -> Option<(u64, u64)> {
        let (score, stamp) = self.best.remove(user)?;
        self.order.remove(&(Reverse(score), stamp, user.clone()));
        Some((score, stamp))
    }

    pub fn len(&self) -> usize {
        self.best.len()
    }

    pub fn is_empty(&self) -> bool {
        self.best.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(i: u8) -> UserId {
        UserId::parse(&format!("u{i}")).unwrap()
    }

    #[test]
    fn best_score_wins_and_earlier_breaks_ties() {
        let mut b = Board::default();
        assert!(b.offer(&user(1), 50, 1));
        assert!(b.offer(&user(2), 50, 2));
        assert!(
            !b.offer(&user(1), 40, 3),
            "a lower score never replaces the best"
        );
        assert!(b.offer(&user(3), 60, 4));
        let top: Vec<_> = b
            .top(10)
            .into_iter()
            .map(|e| (e.rank, e.user.to_string(), e.score))
            .collect();
        assert_eq!(
            top,
            vec![
                (1, "u3".into(), 60),
                (2, "u1".into(), 50),
                (3, "u2".into(), 50)
            ]
        );
        assert_eq!(b.standing(&user(2)), Some(Standing { rank: 3, score: 50 }));
        assert_eq!(b.standing(&user(9)), None);
    }

    #[test]
    fn diff_names_moves_inserts_and_removals() {
        let mut b = Board::default();
        b.offer(&user(1), 30, 1);
        b.offer(&user(2), 20, 2);
        b.offer(&user(3), 10, 3);
        let old = b.top(2);
        b.offer(&user(3), 40, 4);
        let new = b.top(2);
        let d = diff(&old, &new);
        assert_eq!(d.removed, vec![user(2)]);
        assert_eq!(
            d.changed,
            vec![Change {
                rank: 1,
                user: user(3),
                score: 40,
                from: None
            }]
        );
        assert_eq!(apply(&old, &d), new);
        assert!(diff(&new, &new).is_empty());
    }

    proptest! {
        /// Applying diff(a, b) to a gives b, for boards that evolve the way real ones do:
        /// players improve, new players arrive, and the list is cut at N.
        #[test]
        fn applying_the_diff_rebuilds_the_new_top(
            first in prop::collection::vec((0u8..40, 0u64..50), 0..60),
            second in prop::collection::vec((0u8..40, 0u64..50), 0..60),
            n in 1usize..15,
        ) {
            let mut board = Board::default();
            let mut stamp = 0;
            for (u, s) in first { stamp += 1; board.offer(&user(u), s, stamp); }
            let a = board.top(n);
            for (u, s) in second { stamp += 1; board.offer(&user(u), s, stamp); }
            let b = board.top(n);
            prop_assert_eq!(apply(&a, &diff(&a, &b)), b);
        }
    }
}
