//! The `memory` engine's store: every board and idempotency mark in process, for a
//! newcomer's first run, the demo and fast tests. Same semantics as Redis: best score per
//! user, ties to the earlier, one outcome per session, a version per board; and the operators'
//! campaigns, bans and audit log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;

use crate::domain::board::{Board, Entry, Standing};
use crate::domain::campaign::Campaign;
use crate::domain::decision::{Attempt, Outcome, Record};
use crate::domain::ids::{BoardKey, UserId};
use crate::domain::operator::{Archive, AuditEntry, Ban, Dismissal, FlagQuery, Flagged};

#[derive(Default)]
struct Inner {
    boards: HashMap<BoardKey, (Board, u64)>,
    /// Session id -> outcome and when the mark may be forgotten (Unix ms).
    outcomes: HashMap<String, (Outcome, u64)>,
    /// Grows by one per accepted result: the tie-break stamp (earlier wins).
    stamp: u64,
    /// Banned players: their submits decide nothing, and their bests wait in `held`.
    banned: std::collections::HashSet<UserId>,
    /// A banned player's bests, taken off the boards until the ban is lifted.
    held: HashMap<UserId, Vec<(BoardKey, u64, u64)>>,
    /// When an operator removed a player's scores from a campaign: (campaign, user) -> ms.
    removals: HashMap<(String, UserId), u64>,
    /// The latest decided attempts, newest first, as PostgreSQL would hold them (for review);
    /// at most [`MEMORY_RECORDS_KEPT`].
    records: VecDeque<Record>,
}

/// Decided attempts the memory engine keeps for review; older ones are dropped.
const MEMORY_RECORDS_KEPT: usize = 50_000;

/// A std mutex guards everything: each call is a few map operations, never held across an
/// await, and one lock keeps "mark the session + update the boards" atomic as the Redis
/// engine's script does.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// Campaigns, bans and the audit log: apart from the boards, so an admin read never
    /// waits on a submit.
    ops: Mutex<Ops>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn outcome(&self, session: &str) -> Option<Outcome> {
        self.lock().outcomes.get(session).map(|(o, _)| o.clone())
    }

    /// Bars the player (under the same lock as [`Self::decide`], so no submit lands after
    /// it) and takes their bests off every board.
    pub fn hide_player(&self, user: &UserId) {
        let mut inner = self.lock();
        inner.banned.insert(user.clone());
        let mut taken = Vec::new();
        for (key, (board, version)) in inner.boards.iter_mut() {
            if let Some((score, stamp)) = board.take(user) {
                *version += 1;
                taken.push((key.clone(), score, stamp));
            }
        }
        inner.held.entry(user.clone()).or_default().extend(taken);
    }

    /// Empties a board, answering the rows it held, best first.
    pub fn reset(&self, key: &BoardKey) -> Vec<Entry> {
        let mut inner = self.lock();
        let (board, version) = inner.boards.entry(key.clone()).or_default();
        let rows = board.top(board.len());
        *board = Board::default();
        *version += 1;
        rows
    }

    pub fn archive(&self, archive: Archive) -> bool {
        let mut ops = self.ops();
        let taken = ops.archives.iter().any(|a| {
            (&a.campaign, &a.board, &a.name) == (&archive.campaign, &archive.board, &archive.name)
        });
        if !taken {
            ops.archives.push(archive);
        }
        !taken
    }

    pub fn archives(&self, campaign: &str, board: &str) -> Vec<Archive> {
        let ops = self.ops();
        let mut found: Vec<Archive> = ops
            .archives
            .iter()
            .filter(|a| a.campaign == campaign && a.board == board)
            .cloned()
            .collect();
        found.sort_by_key(|a| std::cmp::Reverse(a.at_ms));
        found
    }

    /// Drops the player's bests from every board of `campaign`; answers from how many.
    pub fn remove_scores(&self, user: &UserId, campaign: &str, now_ms: u64) -> u64 {
        let mut inner = self.lock();
        inner
            .removals
            .insert((campaign.to_owned(), user.clone()), now_ms);
        let mut removed = 0;
        for (key, (board, version)) in inner.boards.iter_mut() {
            if key.campaign.as_str() == campaign && board.take(user).is_some() {
                *version += 1;
                removed += 1;
            }
        }
        removed
    }

    /// Lifts the bar and puts the player's bests back where they were.
    pub fn restore_player(&self, user: &UserId) {
        let mut inner = self.lock();
        inner.banned.remove(user);
        for (key, score, stamp) in inner.held.remove(user).unwrap_or_default() {
            let (board, version) = inner.boards.entry(key).or_default();
            if board.offer(user, score, stamp) {
                *version += 1;
            }
        }
    }

    pub fn decide(&self, a: &Attempt<'_>) -> Result<Outcome, crate::store::error::StoreError> {
        let mut inner = self.lock();
        if let Some((done, _)) = inner.outcomes.get(a.session_id) {
            return Ok(done.clone());
        }
        if inner.banned.contains(a.user) {
            return Err(crate::store::error::StoreError::Banned);
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
        inner.records.push_front(a.record());
        inner.records.truncate(MEMORY_RECORDS_KEPT);
        Ok(outcome)
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

/// Audit entries the memory engine keeps; older ones are dropped (it is for a first run and
/// for tests, not for a campaign's record).
const MEMORY_AUDIT_KEPT: usize = 10_000;

/// The memory engine's operator data: campaigns, bans and the audit log.
#[derive(Default)]
struct Ops {
    campaigns: BTreeMap<String, Campaign>,
    bans: HashMap<UserId, Ban>,
    audit: VecDeque<AuditEntry>,
    next_audit: u64,
    archives: Vec<Archive>,
    /// Refused attempts an operator dismissed, by session.
    dismissed: HashMap<String, Dismissal>,
}

impl MemoryStore {
    fn ops(&self) -> std::sync::MutexGuard<'_, Ops> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn campaigns(&self) -> Vec<Campaign> {
        self.ops().campaigns.values().cloned().collect()
    }

    pub fn campaign(&self, name: &str) -> Option<Campaign> {
        self.ops().campaigns.get(name).cloned()
    }

    pub fn create_campaign(&self, c: &Campaign) -> bool {
        let mut ops = self.ops();
        if ops.campaigns.contains_key(c.name.as_str()) {
            return false;
        }
        ops.campaigns.insert(c.name.to_string(), c.clone());
        true
    }

    pub fn update_campaign(&self, c: &Campaign, read_version: u64) -> bool {
        match self.ops().campaigns.get_mut(c.name.as_str()) {
            Some(held) if held.version == read_version => {
                *held = c.clone();
                true
            }
            _ => false,
        }
    }

    pub fn put_ban(&self, ban: &Ban) {
        self.ops().bans.insert(ban.user.clone(), ban.clone());
    }

    pub fn lift_ban(&self, user: &UserId) -> bool {
        self.ops().bans.remove(user).is_some()
    }

    /// A player's latest accepted results, newest first.
    pub fn recent(&self, user: &UserId, limit: usize) -> Vec<Record> {
        self.lock()
            .records
            .iter()
            .filter(|r| r.reason.is_none() && r.user_id == user.as_str())
            .take(limit)
            .cloned()
            .collect()
    }

    /// The campaign's accepted results this engine still keeps, oldest first, as CSV rows
    /// (the columns of `postgres::results::CSV_HEADER`).
    pub fn results_csv(&self, campaign: &str) -> Vec<String> {
        let inner = self.lock();
        let mut rows: Vec<&Record> = inner
            .records
            .iter()
            .filter(|r| r.reason.is_none() && r.campaign_id == campaign)
            .collect();
        rows.sort_by_key(|r| r.at_ms);
        rows.iter()
            .map(|r| {
                let removed = UserId::stored(&r.user_id)
                    .and_then(|u| inner.removals.get(&(campaign.to_owned(), u)))
                    .is_some_and(|at| r.at_ms <= *at as i64);
                format!(
                    "{},{},{},{},{},{},{}\n",
                    r.session_id,
                    csv_field(&r.user_id),
                    r.region.as_deref().unwrap_or(""),
                    r.score,
                    crate::domain::clock::utc_ms(r.started_ms.max(0) as u64),
                    crate::domain::clock::utc_ms(r.at_ms.max(0) as u64),
                    if removed { "t" } else { "f" },
                )
            })
            .collect()
    }

    /// The decided attempt of `session`, with a counted game's evidence, if still kept.
    pub fn session(&self, session: &str) -> Option<Record> {
        self.lock()
            .records
            .iter()
            .find(|r| r.session_id == session)
            .cloned()
    }

    /// Refused attempts the query asks for, newest first.
    pub fn flagged(&self, q: &FlagQuery) -> Vec<Flagged> {
        let matching: Vec<Record> = self
            .lock()
            .records
            .iter()
            .filter(|r| q.matches(r))
            .cloned()
            .collect();
        // The records' lock is released before the dismissals' is taken: never both at once.
        let ops = self.ops();
        let mut found: Vec<Flagged> = matching
            .into_iter()
            .filter_map(|record| {
                let dismissed = ops.dismissed.get(&record.session_id).cloned();
                q.state
                    .admits(dismissed.is_some())
                    .then_some(Flagged { record, dismissed })
            })
            .collect();
        drop(ops);
        // The cursor's order, as PostgreSQL sorts: time, then session, both descending.
        found.sort_by(|a, b| {
            let (a, b) = (&a.record, &b.record);
            (b.at_ms, &b.session_id).cmp(&(a.at_ms, &a.session_id))
        });
        found.truncate(q.limit);
        found
    }

    /// Dismisses the refused attempt of `session`; false when there is none. A second
    /// dismissal keeps the first.
    pub fn dismiss_flag(&self, session: &str, by: &str, at_ms: u64) -> bool {
        let refused = self
            .lock()
            .records
            .iter()
            .any(|r| r.session_id == session && r.reason.is_some());
        if refused {
            self.ops()
                .dismissed
                .entry(session.to_owned())
                .or_insert(Dismissal {
                    by: by.to_owned(),
                    at_ms,
                });
        }
        refused
    }

    /// Bans whose time ran out by `now_ms`.
    pub fn lapsed_bans(&self, now_ms: u64) -> Vec<Ban> {
        let ops = self.ops();
        ops.bans
            .values()
            .filter(|b| !b.is_active_at(now_ms))
            .cloned()
            .collect()
    }

    /// The bans in force at `now_ms`, newest first.
    pub fn bans(&self, now_ms: u64) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .ops()
            .bans
            .values()
            .filter(|b| b.is_active_at(now_ms))
            .cloned()
            .collect();
        bans.sort_by_key(|b| std::cmp::Reverse(b.at_ms));
        bans
    }

    pub fn audit(&self, actor: &str, action: &str, target: &str, body: &Value, now_ms: u64) {
        let mut ops = self.ops();
        ops.next_audit += 1;
        let entry = AuditEntry {
            id: ops.next_audit,
            at_ms: now_ms,
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            body: body.clone(),
        };
        ops.audit.push_front(entry);
        ops.audit.truncate(MEMORY_AUDIT_KEPT);
    }

    pub fn audit_page(&self, before: Option<u64>, limit: usize) -> Vec<AuditEntry> {
        self.ops()
            .audit
            .iter()
            .filter(|e| before.is_none_or(|b| e.id < b))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (user ids may).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
