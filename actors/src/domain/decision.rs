//! A submitted score, decided: the attempt the Store records and the outcome a retry is
//! answered with again.

use super::campaign::Refusal;
use super::counting::Counted;
use super::ids::{CampaignId, LiveBoard, Region, UserId};

/// The answer given to one session's submit, kept so a retry gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub user: UserId,
    pub score: u64,
    /// `None` when accepted.
    pub refused: Option<Refusal>,
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
    /// `None` to accept.
    pub refused: Option<Refusal>,
    /// The player's region, recorded with the result.
    pub region: Option<&'a Region>,
    /// Boards the score counts on, the first being the one `best`/`rank` report, each with
    /// how long it is kept (`None`: for good).
    pub boards: &'a [LiveBoard],
    /// Decided straight in PostgreSQL (see `GameSession::fallback`).
    pub fallback: bool,
    /// For a refusal, the limit of the rule it broke (see `Refusal::limit`), kept for review.
    pub limit: Option<u64>,
    /// A counted game's count, claim, drops, flags and input log; `score` is its count.
    pub counted: Option<&'a Counted>,
}

impl Attempt<'_> {
    /// What is written to PostgreSQL for this attempt.
    pub fn record(&self) -> Record {
        Record {
            session_id: self.session_id.to_owned(),
            user_id: self.user.to_string(),
            campaign_id: self.campaign.to_string(),
            score: self.score as i64,
            started_ms: self.started_ms as i64,
            at_ms: self.now_ms as i64,
            reason: self.refused,
            region: self.region.map(|r| r.as_str().to_owned()),
            limit: self.limit.map(|l| l.min(i64::MAX as u64) as i64),
            counted: self.counted.cloned(),
        }
    }
}

/// A result or a refused attempt as PostgreSQL keeps it (`results` or `flagged`), in the
/// column types it is written with.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub session_id: String,
    pub user_id: String,
    pub campaign_id: String,
    pub score: i64,
    pub started_ms: i64,
    pub at_ms: i64,
    /// `None` for an accepted result.
    pub reason: Option<Refusal>,
    /// The player's region, if their token named one.
    pub region: Option<String>,
    /// A refusal's broken limit (`flagged.rule_limit`).
    pub limit: Option<i64>,
    /// A counted game's evidence (`inputs`, `result_flags`, `claimed_score`).
    pub counted: Option<Counted>,
}
