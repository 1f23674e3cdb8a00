//! A campaign's anti-cheat rules and the reasons a decided attempt is refused.

use serde::{Deserialize, Serialize};

use super::error::ClientError;
use super::ids::{BoardKind, Region};

/// Anti-cheat rules of one campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRules {
    /// Shortest game the server accepts, measured by the server.
    pub min_duration_ms: u64,
    /// Longest; a later submit is `too_slow` (the session expired).
    pub max_duration_ms: u64,
    pub max_score: u64,
    pub max_score_per_second: u64,
    /// Opening and closing times (Unix ms); unset means always open.
    #[serde(default)]
    pub starts_at_ms: Option<u64>,
    #[serde(default)]
    pub ends_at_ms: Option<u64>,
    /// Days a daily board is kept in Redis.
    #[serde(default = "default_retention_days")]
    pub daily_retention_days: u32,
    /// The regions that have a board (`region:<code>`). A token may name any region; only
    /// these count, so the boards (and rooms) a campaign has are bounded by configuration,
    /// not by what players' tokens say. A player from another region plays on the global and
    /// daily boards only.
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
}

fn default_regions() -> Vec<String> {
    ["eu", "us", "asia"].map(String::from).to_vec()
}

fn default_retention_days() -> u32 {
    7
}

/// The `demo` campaign's rules.
impl Default for CampaignRules {
    fn default() -> Self {
        Self {
            min_duration_ms: 2_000,
            max_duration_ms: 120_000,
            max_score: 100_000,
            max_score_per_second: 50,
            starts_at_ms: None,
            ends_at_ms: None,
            daily_retention_days: default_retention_days(),
            regions: default_regions(),
        }
    }
}

impl CampaignRules {
    /// How long a daily board is kept.
    pub fn daily_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.daily_retention_days) * 86_400)
    }

    /// The player's region if the campaign has a board for it.
    pub fn board_region<'a>(&self, region: Option<&'a Region>) -> Option<&'a Region> {
        region.filter(|r| self.regions.iter().any(|c| c == r.as_str()))
    }

    /// Whether the campaign has this board.
    pub fn has_board(&self, kind: &BoardKind) -> bool {
        match kind {
            BoardKind::Region(r) => self.board_region(Some(r)).is_some(),
            BoardKind::Global | BoardKind::Daily => true,
        }
    }

    /// Whether the campaign takes games at `ms` (server clock, Unix ms).
    pub fn is_open_at(&self, ms: u64) -> bool {
        self.starts_at_ms.is_none_or(|t| ms >= t) && self.ends_at_ms.is_none_or(|t| ms <= t)
    }

    /// The anti-cheat rules that depend only on the campaign, the server's clock and the
    /// score: `Err` names the first rule the attempt broke.
    pub fn check(&self, started_ms: u64, now_ms: u64, score: u64) -> Result<(), Refusal> {
        if !self.is_open_at(started_ms) || !self.is_open_at(now_ms) {
            return Err(Refusal::CampaignClosed);
        }
        let played_ms = now_ms.saturating_sub(started_ms);
        if played_ms < self.min_duration_ms {
            return Err(Refusal::TooFast);
        }
        if played_ms > self.max_duration_ms {
            return Err(Refusal::TooSlow);
        }
        if score > self.max_score {
            return Err(Refusal::ScoreTooHigh);
        }
        // score / seconds > rate, kept in integers: score * 1000 > rate * ms.
        if u128::from(score) * 1000 > u128::from(self.max_score_per_second) * u128::from(played_ms)
        {
            return Err(Refusal::ScoreRateTooHigh);
        }
        Ok(())
    }
}

/// Why a decided attempt was refused. It is recorded with the attempt (the session mark, the
/// results stream, PostgreSQL's `flagged.reason`) under its [`Refusal::code`], which is also
/// the `reason` a client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    CampaignClosed,
    TooFast,
    TooSlow,
    ScoreTooHigh,
    ScoreRateTooHigh,
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::CampaignClosed,
        Refusal::TooFast,
        Refusal::TooSlow,
        Refusal::ScoreTooHigh,
        Refusal::ScoreRateTooHigh,
    ];

    /// The stable code: the same as the client error's.
    pub fn code(self) -> &'static str {
        ClientError::from(self).code()
    }

    /// The refusal a stored code names; `None` for a code podium never writes.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl From<Refusal> for ClientError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::CampaignClosed => ClientError::CampaignClosed,
            Refusal::TooFast => ClientError::TooFast,
            Refusal::TooSlow => ClientError::TooSlow,
            Refusal::ScoreTooHigh => ClientError::ScoreTooHigh,
            Refusal::ScoreRateTooHigh => ClientError::ScoreRateTooHigh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let r = CampaignRules::default();
        let code = |started: u64, now: u64, score: u64| r.check(started, now, score).err();
        assert_eq!(code(0, 1_999, 10), Some(Refusal::TooFast));
        assert_eq!(code(0, 120_001, 10), Some(Refusal::TooSlow));
        assert_eq!(code(0, 10_000, 100_001), Some(Refusal::ScoreTooHigh));
        assert_eq!(code(0, 10_000, 501), Some(Refusal::ScoreRateTooHigh));
        assert_eq!(
            code(0, 10_000, 500),
            None,
            "exactly the allowed rate is fine"
        );
        let closed = CampaignRules {
            ends_at_ms: Some(5_000),
            ..CampaignRules::default()
        };
        assert_eq!(
            closed.check(0, 10_000, 1).unwrap_err().code(),
            "campaign_closed"
        );
    }

    #[test]
    fn every_refusal_round_trips_through_its_code() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_code(r.code()), Some(r));
        }
        assert_eq!(Refusal::from_code("bad_session"), None);
    }
}
