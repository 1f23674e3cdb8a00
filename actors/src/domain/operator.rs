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
