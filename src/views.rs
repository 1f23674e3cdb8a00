//! What the HTTP routes answer: one type per JSON body, serialized by the handler and stated
//! by `/openapi.json` from the same definition (`ToSchema`), so the document cannot drift
//! from the answers (schemathesis checks each answer against it in CI). Times are RFC 3339
//! text or null. The error shape is [`crate::openapi::ErrorBody`].

use podium_actors::cluster_bus::InstanceInfo;
use podium_actors::domain::board::Entry;
use podium_actors::domain::campaign::{Campaign, CampaignRules, Refusal};
use podium_actors::domain::decision::Record;
use podium_actors::domain::operator::{Archive, AuditEntry, Ban, Flagged};
use podium_actors::store::counters::SocketPlace;
use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// `ms` (Unix milliseconds) as RFC 3339 text; `None` stays null.
pub fn rfc3339(ms: Option<u64>) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms?) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A database time (Unix ms, never negative in practice) as RFC 3339.
fn rfc3339_db(ms: i64) -> Option<String> {
    rfc3339(Some(ms.max(0) as u64))
}

/// One row of a board.
#[derive(Serialize, ToSchema)]
pub struct Row {
    /// 1 is the top.
    pub rank: u64,
    pub user: String,
    pub score: u64,
}

/// A campaign's limits, as players and operators see them. In a counted campaign the score
/// limits apply to the server's count.
#[derive(Serialize, ToSchema)]
pub struct Rules {
    pub min_duration_ms: u64,
    pub max_duration_ms: u64,
    pub max_score: u64,
    pub max_score_per_second: u64,
    /// 0 = no limit.
    pub max_games_per_hour: u32,
    /// `claimed`: the submit's score is judged; `counted`: the server counts the game's
    /// `input` events (docs/FAIR-PLAY.md).
    #[schema(example = "counted")]
    pub scoring: &'static str,
    /// A counted campaign's event kinds and their points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<BTreeMap<String, EventPoints>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_events_per_second: Option<u32>,
    /// 0 = no minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_event_interval_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_flush_ms: Option<u64>,
    /// The plausibility thresholds a counted campaign sets (null: the engine's `GAME_*`);
    /// shown to operators only, beside the other rules.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
}

/// What one kind of event is worth.
#[derive(Serialize, ToSchema)]
pub struct EventPoints {
    pub points: u64,
    /// null: no limit of its own.
    pub max_per_game: Option<u32>,
}

/// A counted campaign's own plausibility thresholds; null where the engine's apply.
#[derive(Serialize, ToSchema)]
pub struct Thresholds {
    pub clock_tolerance_ms: Option<u64>,
    pub input_max_delay_ms: Option<u64>,
    pub min_interval_cv: Option<f64>,
    pub human_max_rate: Option<f64>,
}

impl Rules {
    /// As players see them.
    pub fn of(r: &CampaignRules) -> Self {
        let c = r.counting.as_ref();
        Self {
            min_duration_ms: r.min_duration_ms,
            max_duration_ms: r.max_duration_ms,
            max_score: r.max_score,
            max_score_per_second: r.max_score_per_second,
            max_games_per_hour: r.max_games_per_hour,
            scoring: r.scoring(),
            events: c.map(|c| {
                c.events
                    .iter()
                    .map(|(k, e)| {
                        let points = EventPoints {
                            points: e.points,
                            max_per_game: e.max_per_game,
                        };
                        (k.clone(), points)
                    })
                    .collect()
            }),
            max_events_per_second: c.map(|c| c.max_events_per_second),
            min_event_interval_ms: c.map(|c| c.min_event_interval_ms),
            input_flush_ms: c.map(|c| c.input_flush_ms),
            thresholds: None,
        }
    }

    /// As operators see them: with a counted campaign's thresholds.
    pub fn admin(r: &CampaignRules) -> Self {
        Self {
            thresholds: r.counting.as_ref().map(|c| Thresholds {
                clock_tolerance_ms: c.clock_tolerance_ms,
                input_max_delay_ms: c.input_max_delay_ms,
                min_interval_cv: c.min_interval_cv,
                human_max_rate: c.human_max_rate,
            }),
            ..Self::of(r)
        }
    }
}

/// A campaign as the admin API shows it.
#[derive(Serialize, ToSchema)]
pub struct AdminCampaign {
    pub name: String,
    pub title: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    /// When an operator closed it; null while it is not closed.
    pub closed_at: Option<String>,
    /// Whether it takes new games now.
    pub open: bool,
    pub regions: Vec<String>,
    pub daily_retention_days: u32,
    pub rules: Rules,
    /// Places that win per prize board (`global`, `daily`: each UTC day, `region:<code>`).
    pub prizes: BTreeMap<String, u32>,
    /// Grows with every change; a change names none, the store checks it.
    pub version: u64,
    pub updated_at: Option<String>,
}

impl AdminCampaign {
    pub fn of(c: &Campaign, now: u64) -> Self {
        let r = &c.rules;
        Self {
            name: c.name.to_string(),
            title: c.title().to_owned(),
            starts_at: rfc3339(r.starts_at_ms),
            ends_at: rfc3339(r.ends_at_ms),
            closed_at: rfc3339(c.closed_at_ms),
            open: c.takes_games_at(now),
            regions: r.regions.clone(),
            daily_retention_days: r.daily_retention_days,
            rules: Rules::admin(r),
            prizes: r.prizes.clone(),
            version: c.version,
            updated_at: rfc3339(Some(c.updated_at_ms)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<AdminCampaign>,
}

/// A campaign as anyone may read it.
#[derive(Serialize, ToSchema)]
pub struct PublicCampaign {
    pub name: String,
    pub title: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub open: bool,
    /// `global`, `daily` and `region:<code>` for each region.
    pub boards: Vec<String>,
    pub regions: Vec<String>,
    pub rules: Rules,
    /// Places that win per prize board.
    pub prizes: BTreeMap<String, u32>,
}

impl PublicCampaign {
    pub fn of(c: &Campaign, now: u64) -> Self {
        let r = &c.rules;
        let mut boards = vec!["global".to_owned(), "daily".to_owned()];
        boards.extend(r.regions.iter().map(|code| format!("region:{code}")));
        Self {
            name: c.name.to_string(),
            title: c.title().to_owned(),
            starts_at: rfc3339(r.starts_at_ms),
            ends_at: rfc3339(r.ends_at_ms),
            open: c.takes_games_at(now),
            boards,
            regions: r.regions.clone(),
            rules: Rules::of(r),
            prizes: r.prizes.clone(),
        }
    }
}

/// A page of a board, with its size so a client can page either way.
#[derive(Serialize, ToSchema)]
pub struct BoardPage {
    /// `campaign/board`, as a WebSocket `join` names it.
    pub room: String,
    pub total: u64,
    /// Rows above the first one shown (0 is the top).
    pub offset: u64,
    pub limit: usize,
    #[schema(value_type = Vec<Row>)]
    pub rows: Vec<Entry>,
}

/// The rows around one player.
#[derive(Serialize, ToSchema)]
pub struct Around {
    pub room: String,
    pub user: String,
    #[schema(value_type = Vec<Row>)]
    pub rows: Vec<Entry>,
}

/// A board's standings as a reset kept them.
#[derive(Serialize, ToSchema)]
pub struct ArchiveView {
    pub name: String,
    /// The stored board (`global`, `daily:2026-12-02`, `region:eu`).
    pub board: String,
    pub archived_at: Option<String>,
    /// How many players it held.
    pub players: usize,
    /// Its top rows.
    #[schema(value_type = Vec<Row>)]
    pub rows: Vec<Entry>,
}

impl ArchiveView {
    pub fn of(a: &Archive, rows: usize) -> Self {
        Self {
            name: a.name.clone(),
            board: a.board.clone(),
            archived_at: rfc3339(Some(a.at_ms)),
            players: a.rows.len(),
            rows: a.rows[..a.rows.len().min(rows)].to_vec(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Archives {
    pub room: String,
    /// Newest first.
    pub archives: Vec<ArchiveView>,
}

/// `POST /admin/campaigns/{name}/rebuild`.
#[derive(Serialize, ToSchema)]
pub struct Rebuilt {
    pub campaign: String,
    /// Board rows raised to what the database holds.
    pub rows_changed: u64,
}

/// `DELETE /admin/campaigns/{name}/boards/scores/{user}`.
#[derive(Serialize, ToSchema)]
pub struct ScoresRemoved {
    pub campaign: String,
    pub user: String,
    /// Boards the player was taken off.
    pub boards: u64,
}

/// `POST /admin/campaigns/{name}/boards/{board}/reset`.
#[derive(Serialize, ToSchema)]
pub struct BoardReset {
    pub room: String,
    pub board: String,
    pub archive: String,
    pub archived_players: usize,
}

#[derive(Serialize, ToSchema)]
pub struct BanView {
    pub user: String,
    pub reason: String,
    /// Null: for good.
    pub until: Option<String>,
    /// `key:<name>`, `jwt:<sub>` or `auto`.
    pub by: String,
    pub at: Option<String>,
}

impl BanView {
    pub fn of(b: &Ban) -> Self {
        Self {
            user: b.user.to_string(),
            reason: b.reason.clone(),
            until: rfc3339(b.until_ms),
            by: b.by.clone(),
            at: rfc3339(Some(b.at_ms)),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BanList {
    /// Newest first.
    pub bans: Vec<BanView>,
}

#[derive(Serialize, ToSchema)]
pub struct Unbanned {
    pub user: String,
    pub banned: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Kicked {
    pub user: String,
    pub reason: String,
    /// False when the bus could not carry it: only this instance's sockets were closed.
    pub every_instance: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Announced {
    pub sent: bool,
    /// False when the bus could not carry it: only this instance's players got it.
    pub every_instance: bool,
}

/// One socket of a player.
#[derive(Serialize, ToSchema)]
pub struct SocketView {
    /// The instance holding it (as `GET /admin/instances` lists it).
    pub instance: String,
    pub conn: u64,
    pub ip: String,
    pub since: Option<String>,
}

impl SocketView {
    pub fn of(s: &SocketPlace) -> Self {
        Self {
            instance: s.instance.clone(),
            conn: s.conn,
            ip: s.ip.to_string(),
            since: rfc3339(Some(s.since_ms)),
        }
    }
}

/// A player's best on one board.
#[derive(Serialize, ToSchema)]
pub struct Standing {
    pub campaign: String,
    pub board: String,
    pub best: u64,
    pub rank: u64,
}

/// An accepted result.
#[derive(Serialize, ToSchema)]
pub struct ResultView {
    pub session: String,
    pub campaign: String,
    pub score: i64,
    pub region: Option<String>,
    pub accepted_at: Option<String>,
}

impl ResultView {
    pub fn of(r: &Record) -> Self {
        Self {
            session: r.session_id.clone(),
            campaign: r.campaign_id.clone(),
            score: r.score,
            region: r.region.clone(),
            accepted_at: rfc3339_db(r.at_ms),
        }
    }
}

/// A refused attempt, its numbers beside the rule it broke.
#[derive(Serialize, ToSchema)]
pub struct Flag {
    pub session: String,
    pub user: String,
    pub campaign: String,
    /// The refusal's code (`too_fast`, `score_too_high`, ...).
    pub reason: Option<String>,
    pub score: i64,
    /// The server's measure of the game.
    pub duration_ms: i64,
    pub points_per_second: f64,
    /// The rule broken (`min_duration_ms`, `max_score`, ...) and its value then.
    pub rule: Option<String>,
    pub limit: Option<i64>,
    pub started_at: Option<String>,
    pub flagged_at: Option<String>,
    /// When an operator dismissed it, and who; null while it waits for review.
    pub dismissed_at: Option<String>,
    pub dismissed_by: Option<String>,
}

impl Flag {
    pub fn of(f: &Flagged) -> Self {
        let r = &f.record;
        let duration_ms = (r.at_ms - r.started_ms).max(0);
        let per_second = if duration_ms > 0 {
            r.score as f64 * 1000.0 / duration_ms as f64
        } else {
            0.0
        };
        Self {
            session: r.session_id.clone(),
            user: r.user_id.clone(),
            campaign: r.campaign_id.clone(),
            reason: r.reason.map(|x| Refusal::code(x).to_owned()),
            score: r.score,
            duration_ms,
            points_per_second: (per_second * 100.0).round() / 100.0,
            rule: r.reason.map(|x| Refusal::rule(x).to_owned()),
            limit: r.limit,
            started_at: rfc3339_db(r.started_ms),
            flagged_at: rfc3339_db(r.at_ms),
            dismissed_at: f.dismissed.as_ref().and_then(|d| rfc3339(Some(d.at_ms))),
            dismissed_by: f.dismissed.as_ref().map(|d| d.by.clone()),
        }
    }
}

/// `POST /admin/flagged/{session}/dismiss`.
#[derive(Serialize, ToSchema)]
pub struct Dismissed {
    pub session: String,
    pub dismissed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct FlaggedPage {
    /// Newest first.
    pub flagged: Vec<Flag>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `GET /admin/users/{user}`.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub user: String,
    /// On every instance.
    pub sockets: Vec<SocketView>,
    pub boards: Vec<Standing>,
    pub ban: Option<BanView>,
    /// Newest first.
    pub results: Vec<ResultView>,
    pub flags: Vec<Flag>,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: Option<String>,
    pub connections: i64,
    pub users: i64,
    pub rooms: i64,
    pub last_heartbeat: Option<String>,
    /// Submits it answered in each of the last 30 minutes, oldest first.
    pub submits: Vec<SubmitMinuteView>,
}

#[derive(Serialize, ToSchema)]
pub struct SubmitMinuteView {
    /// The minute's start.
    pub minute: Option<String>,
    pub accepted: u64,
    /// Refused for any reason.
    pub refused: u64,
}

impl InstanceView {
    pub fn of(i: &InstanceInfo) -> Self {
        Self {
            id: i.id.clone(),
            address: i.address.clone(),
            version: i.version.clone(),
            started_at: rfc3339(Some(i.started_at_ms)),
            connections: i.connections,
            users: i.users,
            rooms: i.rooms,
            last_heartbeat: rfc3339(Some(i.heartbeat_ms)),
            submits: i
                .submits
                .iter()
                .map(|m| SubmitMinuteView {
                    minute: rfc3339(Some(m.minute_ms)),
                    accepted: m.accepted,
                    refused: m.refused,
                })
                .collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InstanceList {
    pub instances: Vec<InstanceView>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: u64,
    pub at: Option<String>,
    /// `key:<name>`, `jwt:<sub>` or `auto`.
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The request's body as sent (null when it had none).
    pub body: serde_json::Value,
}

impl AuditView {
    pub fn of(e: &AuditEntry) -> Self {
        Self {
            id: e.id,
            at: rfc3339(Some(e.at_ms)),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            body: e.body.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditView>,
    pub next_cursor: Option<u64>,
}

/// `GET /health`: the worst of its checks, the figures behind them, and what is wrong.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `healthy`, `warning` or `critical` (503).
    pub status: String,
    pub timestamp: String,
    pub metrics: HealthMetrics,
    pub issues: Vec<HealthIssue>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthMetrics {
    pub total_connections: u64,
    pub total_users: i64,
    pub messages_per_minute: u64,
    /// Milliseconds.
    pub average_response_time: f64,
    pub error_rate: f64,
    /// Seconds.
    pub uptime: u64,
    pub persist_backlog: u64,
    pub persist_lag_ms: u64,
}

/// One check past its threshold.
#[derive(Serialize, ToSchema)]
pub struct HealthIssue {
    /// `warning` or `critical`.
    pub severity: &'static str,
    pub check: &'static str,
    /// The measured value, or what the check says in words or figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    pub ready: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DevToken {
    pub token: String,
    pub user: String,
    /// Seconds.
    pub expires_in: u64,
}

/// `GET /admin/sessions/{id}`: one decided session as evidence.
#[derive(Serialize, ToSchema)]
pub struct SessionEvidence {
    pub session_id: String,
    pub user: String,
    pub campaign: String,
    /// `accepted` or `rejected`.
    pub status: &'static str,
    /// The refusal's code, for a rejected one.
    pub reason: Option<String>,
    pub region: Option<String>,
    /// When the server started the game, and when it decided it.
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// `claimed` or `counted`.
    pub scoring: &'static str,
    /// The score decided: the claim, or in a counted game the server's count.
    pub score: i64,
    /// A counted game's claim.
    pub claimed: Option<u64>,
    /// A counted game's events that did not count, by reason.
    pub dropped: BTreeMap<String, u32>,
    pub flags: Vec<PlausibilityFlag>,
    /// A counted game's input log; null for a claimed one.
    pub input: Option<InputEvidence>,
}

/// A plausibility flag and its numbers: `value` against `limit`, the threshold it crossed
/// (for `score_mismatch`, the claim against the count), over `events`.
#[derive(Serialize, ToSchema)]
pub struct PlausibilityFlag {
    #[schema(example = "too_regular")]
    pub kind: &'static str,
    /// The setting whose threshold it crossed.
    pub rule: &'static str,
    pub value: f64,
    pub limit: f64,
    pub events: u32,
}

/// Every frame as it arrived and every event as it was read.
#[derive(Serialize, ToSchema)]
pub struct InputEvidence {
    pub kinds: Vec<String>,
    pub frames: Vec<InputFrame>,
    pub events: Vec<InputEvent>,
    /// Set when the stored log could not be read back.
    pub unreadable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InputFrame {
    pub seq: u32,
    /// Server time since the game started when it arrived.
    pub arrived_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct InputEvent {
    /// The client's time since the game started.
    pub t_ms: i64,
    /// Its kind; null for one the campaign does not name.
    pub kind: Option<String>,
    /// Index into `frames`.
    pub frame: u32,
    pub counted: bool,
    /// Why it did not count (`late`, `too_close`, ...).
    pub dropped: Option<&'static str>,
}

impl SessionEvidence {
    pub fn of(r: &Record) -> Self {
        use podium_actors::domain::input_log::{Fate, InputLog};
        let counted = r.counted.as_ref();
        let input = counted.map(|c| match InputLog::decode(&c.log) {
            Ok(log) => InputEvidence {
                events: log
                    .events
                    .iter()
                    .map(|e| InputEvent {
                        t_ms: e.t_ms,
                        kind: e.kind.and_then(|k| log.kinds.get(usize::from(k)).cloned()),
                        frame: e.frame,
                        counted: e.fate == Fate::Counted,
                        dropped: match e.fate {
                            Fate::Counted => None,
                            Fate::Dropped(d) => Some(d.code()),
                        },
                    })
                    .collect(),
                frames: log
                    .frames
                    .iter()
                    .map(|f| InputFrame {
                        seq: f.seq,
                        arrived_ms: f.arrived_ms,
                    })
                    .collect(),
                kinds: log.kinds,
                unreadable: false,
            },
            Err(_) => InputEvidence {
                kinds: Vec::new(),
                frames: Vec::new(),
                events: Vec::new(),
                unreadable: true,
            },
        });
        Self {
            session_id: r.session_id.clone(),
            user: r.user_id.clone(),
            campaign: r.campaign_id.clone(),
            status: if r.reason.is_some() {
                "rejected"
            } else {
                "accepted"
            },
            reason: r.reason.map(|x| x.code().to_owned()),
            region: r.region.clone(),
            started_at: rfc3339_db(r.started_ms),
            ended_at: rfc3339_db(r.at_ms),
            scoring: if counted.is_some() {
                "counted"
            } else {
                "claimed"
            },
            score: r.score,
            claimed: counted.map(|c| c.claimed),
            dropped: counted
                .map(|c| {
                    c.dropped
                        .iter()
                        .map(|(d, n)| (d.code().to_owned(), *n))
                        .collect()
                })
                .unwrap_or_default(),
            flags: counted
                .map(|c| {
                    c.flags
                        .iter()
                        .map(|f| PlausibilityFlag {
                            kind: f.kind.code(),
                            rule: f.kind.rule(),
                            value: f.value,
                            limit: f.limit,
                            events: f.events,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            input,
        }
    }
}
