//! ResultsPipeline: decides every submitted score.
//!
//! Owns: the per-user submit windows. Receives [`Submit`] from Connections and answers with an
//! [`Outcome`] (accepted with best and rank, or refused with a reason code). Checks, in order:
//! the session token's signature, that it belongs to this player, an earlier answer for the
//! same session (a retry gets the same answer and counts once; another score is
//! `already_submitted`), the per-user submit rate, the campaign's window, the duration the
//! server measured, the max score and the max score per second. Accepted results go to the
//! store (idempotency mark + boards in one step) and a [`BoardsChanged`] goes to the
//! RoomRegistry. Refusals are answered, counted and logged with their numbers for review.
//! Started by the Engine; it sweeps expired idempotency marks on the cleanup interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::auth::SessionSigner;
use crate::config::CampaignRules;
use crate::error::ClientError;
use crate::ids::{BoardKey, UserId};
use crate::limits::{Verdict, WindowLimiter};
use crate::room_registry::{BoardsChanged, RoomRegistry};
use crate::store::{MemoryStore, Outcome};
use crate::telemetry;
use crate::time::now_ms;

pub struct ResultsPipeline {
    store: Arc<MemoryStore>,
    signer: Arc<SessionSigner>,
    campaigns: Arc<BTreeMap<String, CampaignRules>>,
    rooms: Addr<RoomRegistry>,
    /// Submits per user per minute.
    submits: WindowLimiter<UserId>,
    cleanup: Duration,
}

impl ResultsPipeline {
    pub fn new(
        store: Arc<MemoryStore>,
        signer: Arc<SessionSigner>,
        campaigns: Arc<BTreeMap<String, CampaignRules>>,
        rooms: Addr<RoomRegistry>,
        max_submits_per_minute: u32,
        cleanup: Duration,
    ) -> Self {
        let submits = WindowLimiter::new(Duration::from_secs(60), max_submits_per_minute);
        Self {
            store,
            signer,
            campaigns,
            rooms,
            submits,
            cleanup,
        }
    }

    fn decide(&mut self, msg: &Submit, now: u64) -> Result<Outcome, ClientError> {
        let session = self.signer.verify(&msg.session)?;
        if session.user != msg.user {
            return Err(ClientError::BadSession(
                "this session belongs to another player",
            ));
        }
        if let Some(done) = self.store.outcome(&session.id) {
            return if done.score == msg.score {
                Ok(done)
            } else {
                Err(ClientError::AlreadySubmitted)
            };
        }
        if let Verdict::Refused { .. } = self.submits.check(&msg.user) {
            // Not recorded: a rate-limited player may submit this session again later.
            return Err(ClientError::RateLimited);
        }
        let rules = self
            .campaigns
            .get(session.campaign.as_str())
            .ok_or(ClientError::UnknownCampaign)?;
        // Marks outlive the session's validity, after which a resubmit is `too_slow` anyway.
        let keep_until = session.started_ms + rules.max_duration_ms * 2;
        let refuse = |store: &MemoryStore, err: ClientError| {
            let refused = Outcome {
                user: msg.user.clone(),
                score: msg.score,
                refused: Some(err.code()),
                best: None,
                rank: None,
            };
            store.refuse(&session.id, refused, keep_until)
        };
        if let Err(err) = check_rules(rules, session.started_ms, now, msg.score) {
            return Ok(refuse(&self.store, err));
        }
        let boards = BoardKey::all_for(&session.campaign, now);
        let (outcome, changed) =
            self.store
                .accept(&session.id, &msg.user, msg.score, &boards, keep_until);
        if changed {
            self.rooms.do_send(BoardsChanged {
                campaign: session.campaign,
            });
        }
        Ok(outcome)
    }
}

/// The anti-cheat rules that depend only on the campaign, the server's clock and the score.
pub fn check_rules(
    rules: &CampaignRules,
    started_ms: u64,
    now_ms: u64,
    score: u64,
) -> Result<(), ClientError> {
    if !rules.is_open_at(started_ms) || !rules.is_open_at(now_ms) {
        return Err(ClientError::CampaignClosed);
    }
    let played_ms = now_ms.saturating_sub(started_ms);
    if played_ms < rules.min_duration_ms {
        return Err(ClientError::TooFast);
    }
    if played_ms > rules.max_duration_ms {
        return Err(ClientError::TooSlow);
    }
    if score > rules.max_score {
        return Err(ClientError::ScoreTooHigh);
    }
    // score / seconds > rate, kept in integers: score * 1000 > rate * ms.
    if u128::from(score) * 1000 > u128::from(rules.max_score_per_second) * u128::from(played_ms) {
        return Err(ClientError::ScoreRateTooHigh);
    }
    Ok(())
}

impl Actor for ResultsPipeline {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.cleanup, |act, _| {
            act.store.sweep(now_ms());
            act.submits.sweep();
        });
    }
}

/// A player submits a score for a game session.
#[derive(Message)]
#[rtype(result = "Result<Outcome, ClientError>")]
pub struct Submit {
    pub user: UserId,
    pub session: String,
    pub score: u64,
}

impl Handler<Submit> for ResultsPipeline {
    type Result = Result<Outcome, ClientError>;

    /// `Err` is a refusal that is not about this session's numbers (bad token, rate limit,
    /// another score for a decided session); `Ok` with `refused` set is a decided refusal.
    fn handle(&mut self, msg: Submit, _: &mut Self::Context) -> Self::Result {
        let result = self.decide(&msg, now_ms());
        let (outcome, reason) = match &result {
            Ok(o) => (
                if o.refused.is_some() {
                    "rejected"
                } else {
                    "accepted"
                },
                o.refused,
            ),
            Err(e) => ("rejected", Some(e.code())),
        };
        telemetry::submit(outcome, reason, msg.user.as_str(), msg.score);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> CampaignRules {
        crate::config::Config::default().campaigns["demo"].clone()
    }

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let r = demo();
        let code = |started: u64, now: u64, score: u64| {
            check_rules(&r, started, now, score).err().map(|e| e.code())
        };
        assert_eq!(code(0, 1_999, 10), Some("too_fast"));
        assert_eq!(code(0, 120_001, 10), Some("too_slow"));
        assert_eq!(code(0, 10_000, 100_001), Some("score_too_high"));
        assert_eq!(code(0, 10_000, 501), Some("score_rate_too_high"));
        assert_eq!(
            code(0, 10_000, 500),
            None,
            "exactly the allowed rate is fine"
        );
        let closed = CampaignRules {
            ends_at_ms: Some(5_000),
            ..demo()
        };
        assert_eq!(
            check_rules(&closed, 0, 10_000, 1).unwrap_err().code(),
            "campaign_closed"
        );
    }
}
