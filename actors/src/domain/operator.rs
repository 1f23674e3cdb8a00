//! What operators act with: bans, and the audit log of every admin action.

use serde::Serialize;

use super::ids::UserId;

/// A player barred from playing: their sockets close, `auth` and submits are refused, and
/// they leave every board until the ban lapses or is lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ban {
    pub user: UserId,
    pub reason: String,
    /// When it lapses (Unix ms); `None` is for good.
    pub until_ms: Option<u64>,
    /// Who set it: an admin key's name, an admin token's `sub`, or `auto`.
    pub by: String,
    pub at_ms: u64,
}

impl Ban {
    pub fn is_active_at(&self, ms: u64) -> bool {
        self.until_ms.is_none_or(|until| ms < until)
    }
}

/// One admin action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Grows with every entry: the log's order and its cursor.
    pub id: u64,
    pub at_ms: u64,
    /// Who: `key:<name>` or `jwt:<sub>`, or `auto` for what podium did by itself.
    pub actor: String,
    pub action: String,
    pub target: String,
    pub body: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_lapses_at_its_end() {
        let ban = Ban {
            user: UserId::parse("a").unwrap(),
            reason: "x".into(),
            until_ms: Some(10),
            by: "ops".into(),
            at_ms: 0,
        };
        assert!(ban.is_active_at(9));
        assert!(!ban.is_active_at(10));
        let forever = Ban {
            until_ms: None,
            ..ban
        };
        assert!(forever.is_active_at(u64::MAX));
    }
}

/// Where a refused attempt is in review.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FlagState {
    /// Not dismissed: the review queue.
    Open,
    Dismissed,
    #[default]
    All,
}

impl FlagState {
    pub fn admits(self, dismissed: bool) -> bool {
        match self {
            FlagState::Open => !dismissed,
            FlagState::Dismissed => dismissed,
            FlagState::All => true,
        }
    }
}

/// An operator looked at a refused attempt and found nothing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dismissal {
    /// `key:<name>` or `jwt:<sub>`.
    pub by: String,
    pub at_ms: u64,
}

/// A refused attempt and, once reviewed, its dismissal.
#[derive(Debug, Clone)]
pub struct Flagged {
    pub record: super::decision::Record,
    pub dismissed: Option<Dismissal>,
}

/// Which refused attempts a review asks for, newest first.
#[derive(Debug, Clone, Default)]
pub struct FlagQuery {
    pub state: FlagState,
    pub campaign: Option<String>,
    pub user: Option<String>,
    pub reason: Option<super::campaign::Refusal>,
    /// Refused at or after (Unix ms).
    pub since_ms: Option<u64>,
    /// Strictly older than this (refused at ms, session id): the cursor of the page before.
    pub before: Option<(i64, String)>,
    pub limit: usize,
}

impl FlagQuery {
    /// Whether a refused attempt is one this query asks for.
    pub fn matches(&self, r: &super::decision::Record) -> bool {
        r.reason.is_some()
            && self.campaign.as_ref().is_none_or(|c| *c == r.campaign_id)
            && self.user.as_ref().is_none_or(|u| *u == r.user_id)
            && self.reason.is_none_or(|want| r.reason == Some(want))
            && self.since_ms.is_none_or(|s| r.at_ms >= s as i64)
            && self
                .before
                .as_ref()
                .is_none_or(|(at, id)| (r.at_ms, &r.session_id) < (*at, id))
    }
}

/// A board's standings as they were when an operator reset it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Archive {
    pub campaign: String,
    /// The stored board name (`global`, `daily:2026-12-02`, `region:eu`).
    pub board: String,
    pub name: String,
    pub at_ms: u64,
    pub rows: Vec<super::board::Entry>,
}
