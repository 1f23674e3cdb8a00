//! ResultsPipeline: decides every submitted score.
//!
//! Owns: the per-user submit windows. Receives [`Submit`] from Connections and answers with an
//! [`Outcome`] (accepted with best and rank, or refused with a reason code). Checks, in order:
//! the session token's signature, that it belongs to this player, the per-user submit rate, the
//! campaign's window, the duration the server measured, the max score and the max score per
//! second. The store then records the verdict unless the session was decided before, in which
//! case the earlier answer stands (a retry gets the same answer and counts once; another score
//! is `already_submitted`). Then the store records the
//! decision in one step (idempotency mark, boards, and the results stream that feeds
//! PostgreSQL) and only then is the answer given. Refusals are recorded the same way, for
//! review. Each HTTP worker thread runs its own instance ([`Pipelines::here`]), all sharing one
//! state, so a submit is decided on the thread of its socket: no thread is woken to decide it
//! or to answer it, and the store's I/O for it runs there too. A socket always submits to the
//! same instance, the one of its thread. Where the store decides (Redis, or PostgreSQL while
//! Redis is unreachable) is the Store's business. The first instance is started by the Engine
//! (it sweeps for all), the others by the first socket of each thread ([`Pipelines`]); an
//! instance holds no state a restart would lose, and each submit runs as its own future, so a
//! slow store never queues other players' submits behind it.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use actix::prelude::*;

use crate::cluster_bus::{AutoBanned, ClusterBus};
use crate::domain::clock::now_ms;
use crate::domain::counting::Counted;
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::error::ClientError;
use crate::domain::ids::UserId;
use crate::domain::session::{GameSession, SessionSigner};
use crate::domain::window::{Verdict, WindowLimiter};
use crate::store::counters::WindowCounts;
use crate::store::live::{BanBook, CampaignBook};
use crate::store::Store;
use crate::telemetry;

/// Bans a player by `auto` once they reach `flags` cheat refusals within the window
/// (`GAME_AUTO_BAN_FLAGS`, `GAME_AUTO_BAN_WINDOW`); the ClusterBus carries out the ban.
pub struct AutoBan {
    pub counts: WindowCounts,
    pub flags: u32,
    pub bus: Addr<ClusterBus>,
}

/// Whether a submit's answer says the client lied: what `GAME_AUTO_BAN_FLAGS` counts.
fn is_cheat(result: &Result<Outcome, ClientError>) -> bool {
    match result {
        Ok(outcome) => outcome.refused.is_some_and(|r| r.is_cheat()),
        Err(err) => matches!(err, ClientError::BadSession(_)),
    }
}

impl AutoBan {
    /// Counts a cheat refusal of `user`, and has them banned at the threshold.
    async fn note(&self, user: &UserId) {
        let seen = self.counts.count(user.as_str(), now_ms()).await;
        // Exactly at the threshold: one ban per window, however many refusals follow.
        if seen == u64::from(self.flags) {
            self.bus.do_send(AutoBanned {
                user: user.clone(),
                refusals: seen,
            });
        }
    }
}

/// What every submit needs, shared by the in-flight futures.
struct Shared {
    store: Store,
    signer: Arc<SessionSigner>,
    campaigns: Arc<CampaignBook>,
    bans: Arc<BanBook>,
    /// Submits per user per minute.
    submits: WindowLimiter<UserId>,
    auto_ban: Option<AutoBan>,
}

/// Every instance (one per core, see [`ResultsPipeline::sibling`]) shares the same state.
pub struct ResultsPipeline {
    shared: Arc<Shared>,
    /// How often expired marks and windows are swept; `None` on all instances but the first,
    /// since they share what is swept.
    cleanup: Option<Duration>,
}

impl ResultsPipeline {
    pub fn new(
        store: Store,
        signer: Arc<SessionSigner>,
        campaigns: Arc<CampaignBook>,
        bans: Arc<BanBook>,
        max_submits_per_minute: u32,
        cleanup: Duration,
        auto_ban: Option<AutoBan>,
    ) -> Self {
        let submits = WindowLimiter::new(Duration::from_secs(60), max_submits_per_minute);
        Self {
            shared: Arc::new(Shared {
                store,
                signer,
                campaigns,
                bans,
                submits,
                auto_ban,
            }),
            cleanup: Some(cleanup),
        }
    }
}

async fn decide(shared: &Shared, msg: &Submit, now: u64) -> Answered {
    let session = match shared.signer.verify(&msg.session) {
        Ok(session) => session,
        Err(err) => {
            return Answered {
                session_id: None,
                result: Err(err),
            }
        }
    };
    let result = decide_session(shared, msg, &session, now).await;
    Answered {
        session_id: Some(session.id),
        result,
    }
}

async fn decide_session(
    shared: &Shared,
    msg: &Submit,
    session: &GameSession,
    now: u64,
) -> Result<Outcome, ClientError> {
    if session.user != msg.user {
        return Err(ClientError::BadSession(
            "this session belongs to another player",
        ));
    }
    // A counted game's score is the count its socket kept; without it (submitted on another
    // socket, after a reconnect) only a decision already made can answer.
    let counted = match (session.seed, &msg.counted) {
        (Some(_), None) => {
            return match shared.store.outcome(session).await? {
                Some(done) => Ok(done),
                None => Err(ClientError::WrongSocket),
            }
        }
        (Some(_), Some(counted)) => Some(counted),
        (None, _) => None,
    };
    let score = counted.map_or(msg.score, |c| c.score);
    if let Verdict::Refused { .. } = shared.submits.check(&msg.user) {
        // A retry of a decided session still gets its answer; anything else waits. Only this
        // rare path reads the mark first: otherwise the decide step below answers a retry.
        let earlier = shared.store.outcome(session).await?;
        return match earlier {
            Some(done) => same_session(done, score),
            // Not recorded: a rate-limited player may submit this session again later.
            None => Err(ClientError::RateLimited),
        };
    }
    if shared.bans.is_banned(&msg.user, now) {
        // Not recorded: lifting the ban lets the session be submitted while it is valid.
        return Err(ClientError::Banned);
    }
    let campaign = shared
        .campaigns
        .get(session.campaign.as_str())
        .ok_or(ClientError::UnknownCampaign)?;
    let rules = &campaign.rules;
    // The limits in force when the game started, signed into its session.
    let limits = session.limits.unwrap_or_else(|| rules.limits());
    // Marks outlive the session's validity by as much again. Past that a session is never
    // decided: its mark may be gone, and deciding it now (as `too_slow`) would give a session
    // that was decided in time a second decision.
    let keep_until_ms = session.started_ms + limits.max_duration_ms * 2;
    if now > keep_until_ms {
        return Err(ClientError::TooSlow);
    }
    let refused = rules.check(&limits, session.started_ms, now, score).err();
    let boards = rules.result_boards(
        &session.campaign,
        now,
        rules.board_region(session.region.as_ref()),
    );
    let attempt = Attempt {
        session_id: &session.id,
        user: &msg.user,
        campaign: &session.campaign,
        score,
        started_ms: session.started_ms,
        now_ms: now,
        keep_until_ms,
        refused,
        region: rules.board_region(session.region.as_ref()),
        boards: &boards,
        fallback: session.fallback,
        limit: refused.and_then(|r| r.limit(&limits)),
        counted,
    };
    // A store failure answers as `From<StoreError>` says: banned between the check above and
    // the store's own, or unreachable, both decided nothing (or the store answers the retry
    // with what it decided).
    let outcome = shared.store.decide(&attempt).await?;
    // The store answers a session decided before (here or on another engine) with that decision.
    same_session(outcome, score)
}

/// A session's decision answers a submit of the same score again; another score is refused.
fn same_session(decided: Outcome, score: u64) -> Result<Outcome, ClientError> {
    if decided.score == score {
        Ok(decided)
    } else {
        Err(ClientError::AlreadySubmitted)
    }
}

impl ResultsPipeline {
    /// Another instance over the same state, which leaves the sweeping to this one.
    fn sibling(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            cleanup: None,
        }
    }
}

/// The instances of one engine's pipeline: the first, started where the engine starts, sweeps
/// for all; each thread that has sockets starts its own the first time one of them asks.
pub struct Pipelines {
    /// Never started: what each thread's instance is cloned from.
    seed: ResultsPipeline,
    per_thread: std::sync::Mutex<HashMap<ThreadId, Addr<ResultsPipeline>>>,
    _sweeper: Addr<ResultsPipeline>,
}

impl Pipelines {
    /// Starts `first` (the sweeper) on the current arbiter.
    pub fn start(first: ResultsPipeline) -> Self {
        Self {
            seed: first.sibling(),
            per_thread: Default::default(),
            _sweeper: first.start(),
        }
    }

    /// The instance of the calling thread, started on its arbiter if it has none yet.
    pub fn here(&self) -> Addr<ResultsPipeline> {
        let mut started = self.per_thread.lock().unwrap_or_else(|p| p.into_inner());
        started
            .entry(std::thread::current().id())
            .or_insert_with(|| self.seed.sibling().start())
            .clone()
    }
}

impl Actor for ResultsPipeline {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(every) = self.cleanup else { return };
        ctx.run_interval(every, |act, _| {
            act.shared.store.sweep(now_ms());
            act.shared.submits.sweep();
        });
    }
}

/// A player submits a score for a game session.
#[derive(Message)]
#[rtype(result = "Answered")]
pub struct Submit {
    pub user: UserId,
    pub session: String,
    /// What the client says it scored; in a counted game, its claim.
    pub score: u64,
    /// A counted game's count, from the socket that started it.
    pub counted: Option<Counted>,
}

/// The answer to a [`Submit`], and the session it decided when the token named one.
pub struct Answered {
    pub session_id: Option<String>,
    pub result: Result<Outcome, ClientError>,
}

impl Handler<Submit> for ResultsPipeline {
    type Result = ResponseFuture<Answered>;

    /// `Err` is a refusal that is not about this session's numbers (bad token, rate limit,
    /// another score for a decided session, a failing store); `Ok` with `refused` set is a
    /// decided refusal.
    fn handle(&mut self, msg: Submit, _: &mut Self::Context) -> Self::Result {
        let shared = self.shared.clone();
        Box::pin(async move {
            let answered = decide(&shared, &msg, now_ms()).await;
            let result = &answered.result;
            if shared.auto_ban.is_some() && is_cheat(result) {
                // After the answer: the player hears their refusal before any ban closes them.
                let (shared, user) = (shared.clone(), msg.user.clone());
                actix_rt::spawn(async move {
                    if let Some(auto_ban) = &shared.auto_ban {
                        auto_ban.note(&user).await;
                    }
                });
            }
            let (outcome, reason) = match result {
                Ok(o) => (
                    if o.refused.is_some() {
                        "rejected"
                    } else {
                        "accepted"
                    },
                    o.refused.map(|r| r.code()),
                ),
                // The server's fault (`internal`, `unavailable`, `busy`): what alerts and /health
                // count.
                Err(e) if e.is_server_fault() => ("failed", Some(e.code())),
                Err(e) => ("rejected", Some(e.code())),
            };
            let score = match result {
                Ok(o) => o.score,
                Err(_) => msg.score,
            };
            telemetry::submit(outcome, reason, msg.user.as_str(), score);
            answered
        })
    }
}
