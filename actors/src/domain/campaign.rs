//! A campaign, its anti-cheat rules, the limits a game session is judged by, and the reasons
//! a decided attempt is refused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counting::Counting;
use super::error::ClientError;
use super::ids::{BoardKey, BoardKind, CampaignId, LiveBoard, Region};

/// One campaign as it is in force: its settings, whether an operator closed it, and a version
/// that grows with every change (so instances apply changes in order, and two operators
/// editing at once cannot silently overwrite each other).
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub name: CampaignId,
    pub rules: CampaignRules,
    /// When an operator closed it (Unix ms): no game starts from then on.
    pub closed_at_ms: Option<u64>,
    pub version: u64,
    pub updated_at_ms: u64,
}

impl Campaign {
    /// A campaign as configured, at version 1.
    pub fn configured(name: CampaignId, rules: CampaignRules, now_ms: u64) -> Self {
        Self {
            name,
            rules,
            closed_at_ms: None,
            version: 1,
            updated_at_ms: now_ms,
        }
    }

    /// What players are shown: the title, else the name.
    pub fn title(&self) -> &str {
        self.rules.title.as_deref().unwrap_or(self.name.as_str())
    }

    /// Every board the campaign may hold a player on at `now_ms`, with its TTL: global, each
    /// region's, and the daily boards still kept.
    pub fn boards(&self, now_ms: u64) -> Vec<(BoardKey, Option<std::time::Duration>)> {
        let mut boards = vec![(BoardKey::of(&self.name, &BoardKind::Global, now_ms), None)];
        boards.extend(self.rules.regions.iter().filter_map(|r| {
            let kind = BoardKind::Region(Region::parse(r)?);
            Some((BoardKey::of(&self.name, &kind, now_ms), None))
        }));
        let ttl = Some(self.rules.daily_retention());
        for day in 0..u64::from(self.rules.daily_retention_days) {
            let at = now_ms.saturating_sub(day * 86_400_000);
            boards.push((BoardKey::of(&self.name, &BoardKind::Daily, at), ttl));
        }
        boards
    }

    /// Whether a game may start at `ms`: inside the window and not closed.
    pub fn takes_games_at(&self, ms: u64) -> bool {
        self.rules.is_open_at(ms) && self.closed_at_ms.is_none_or(|c| ms < c)
    }

    /// When the campaign ended, if it has by `now_ms`: the earlier of an operator closing it
    /// and its `ends_at`. The same rule ages its PostgreSQL partitions out.
    pub fn ended_at(&self, now_ms: u64) -> Option<u64> {
        [self.closed_at_ms, self.rules.ends_at_ms]
            .into_iter()
            .flatten()
            .filter(|&t| t <= now_ms)
            .min()
    }
}

/// The limits a game is judged by, fixed when it starts and signed into its session, so a rule
/// changed mid-game never judges a game started under the old one, on any instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "[u64; 4]", into = "[u64; 4]")]
pub struct Limits {
    pub min_duration_ms: u64,
    pub max_duration_ms: u64,
    pub max_score: u64,
    pub max_score_per_second: u64,
}

impl From<[u64; 4]> for Limits {
    fn from([min, max, score, rate]: [u64; 4]) -> Self {
        Self {
            min_duration_ms: min,
            max_duration_ms: max,
            max_score: score,
            max_score_per_second: rate,
        }
    }
}

impl From<Limits> for [u64; 4] {
    fn from(l: Limits) -> Self {
        [
            l.min_duration_ms,
            l.max_duration_ms,
            l.max_score,
            l.max_score_per_second,
        ]
    }
}

impl Limits {
    /// The rules that depend only on the time the server measured and the score: `Err` names
    /// the first one the attempt broke.
    pub fn check(&self, started_ms: u64, now_ms: u64, score: u64) -> Result<(), Refusal> {
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

/// A campaign's settings: its title, window, regions and anti-cheat rules, as configured under
/// `[campaigns.<name>]` or set through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignRules {
    /// What players and operators are shown; unset: the campaign's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Shortest game the server accepts, measured by the server.
    pub min_duration_ms: u64,
    /// Longest; a later submit is `too_slow` (the session expired).
    pub max_duration_ms: u64,
    pub max_score: u64,
    pub max_score_per_second: u64,
    /// Games one player may start per hour; 0 means no limit.
    #[serde(default)]
    pub max_games_per_hour: u32,
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
    /// Set for a `counted` campaign: the server counts the score from the game's input
    /// events (`[campaigns.NAME.counting]`); unset, the campaign is `claimed` and the submit's
    /// score is judged by the limits above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counting: Option<Counting>,
    /// How many places win on each prize board (`global`, `daily`: each UTC day's, or
    /// `region:<code>`), for the winners list a finalize computes; none: no prizes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prizes: BTreeMap<String, u32>,
}

/// Region boards one campaign may have.
const MAX_REGIONS: usize = 100;
/// Most places one prize board may have.
const MAX_PRIZE_PLACES: u32 = 1_000;
/// Longest game a campaign may allow: a day.
const MAX_GAME_MS: u64 = 86_400_000;

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
            title: None,
            max_games_per_hour: 0,
            min_duration_ms: 2_000,
            max_duration_ms: 120_000,
            max_score: 100_000,
            max_score_per_second: 50,
            starts_at_ms: None,
            ends_at_ms: None,
            daily_retention_days: default_retention_days(),
            regions: default_regions(),
            counting: None,
            prizes: BTreeMap::new(),
        }
    }
}

impl CampaignRules {
    /// The `tap-rush` campaign's rules: Tap Rush counted by the server, a tap a point.
    pub fn tap_rush() -> Self {
        Self {
            title: Some("Tap Rush".into()),
            counting: Some(Counting::default()),
            ..Self::default()
        }
    }

    /// How long a daily board is kept.
    pub fn daily_retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.daily_retention_days) * 86_400)
    }

    /// The boards a result reached at `at_ms` counts on, each with how long it is kept: the
    /// daily board expires, the global and region boards are kept for good. `region` is the
    /// board region already (see [`Self::board_region`]).
    pub fn result_boards(
        &self,
        campaign: &CampaignId,
        at_ms: u64,
        region: Option<&Region>,
    ) -> Vec<LiveBoard> {
        let retention = self.daily_retention();
        BoardKey::all_for(campaign, at_ms, region)
            .into_iter()
            .map(|key| {
                let ttl = key.board.expires().then_some(retention);
                (key, ttl)
            })
            .collect()
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

    /// The first setting that cannot work, as (field, what it expects); the config file and
    /// the admin API both refuse such settings with it.
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let regions_ok = self.regions.len() <= MAX_REGIONS
            && self.regions.iter().all(|r| Region::parse(r).is_some());
        let prizes_ok = self.prizes.iter().all(|(board, places)| {
            let board_ok = match board.strip_prefix("region:") {
                Some(code) => self.regions.iter().any(|r| r == code),
                None => board == "global" || board == "daily",
            };
            board_ok && (1..=MAX_PRIZE_PLACES).contains(places)
        });
        let checks = [
            (
                self.min_duration_ms < self.max_duration_ms,
                "min_duration_ms",
                "less than max_duration_ms",
            ),
            (
                self.max_duration_ms <= MAX_GAME_MS,
                "max_duration_ms",
                "at most 86400000 (a day)",
            ),
            (
                self.max_score >= 1 && self.max_score <= super::protocol::MAX_SCORE,
                "max_score",
                "1 to 9007199254740991",
            ),
            (
                self.max_score_per_second >= 1,
                "max_score_per_second",
                "at least 1",
            ),
            (
                self.starts_at_ms
                    .zip(self.ends_at_ms)
                    .is_none_or(|(s, e)| s < e),
                "starts_at",
                "before ends_at",
            ),
            (
                (1..=3_650).contains(&self.daily_retention_days),
                "daily_retention_days",
                "1 to 3650 days",
            ),
            (
                regions_ok,
                "regions",
                "at most 100 region codes of 1 to 16 of a-z, 0-9 and -",
            ),
            (
                prizes_ok,
                "prizes",
                "places from 1 to 1000 per board: global, daily, or region:<one of regions>",
            ),
            (
                self.title.as_ref().is_none_or(|t| {
                    !t.trim().is_empty()
                        && t.chars().count() <= 100
                        && !t.chars().any(char::is_control)
                }),
                "title",
                "1 to 100 printable characters",
            ),
        ];
        checks
            .into_iter()
            .find(|(ok, ..)| !ok)
            .map(|(_, field, expected)| (field, expected))
            .or_else(|| self.counting.as_ref().and_then(Counting::problem))
    }

    /// `claimed` or `counted`, as the admin API and `game_started` name the campaign's scoring.
    pub fn scoring(&self) -> &'static str {
        if self.counting.is_some() {
            "counted"
        } else {
            "claimed"
        }
    }

    /// The limits a game started now is judged by.
    pub fn limits(&self) -> Limits {
        Limits {
            min_duration_ms: self.min_duration_ms,
            max_duration_ms: self.max_duration_ms,
            max_score: self.max_score,
            max_score_per_second: self.max_score_per_second,
        }
    }

    /// Every rule of a submit: the game started inside the window, then the `limits` it was
    /// started under. A game started before the campaign ended may be submitted until its
    /// `max_duration_ms` runs out, as when an operator closes a campaign.
    pub fn check(
        &self,
        limits: &Limits,
        started_ms: u64,
        now_ms: u64,
        score: u64,
    ) -> Result<(), Refusal> {
        if !self.is_open_at(started_ms) {
            return Err(Refusal::CampaignClosed);
        }
        limits.check(started_ms, now_ms, score)
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

    /// Whether the refusal says the client lied rather than that it was late: what
    /// `GAME_AUTO_BAN_FLAGS` counts (with forged sessions).
    pub fn is_cheat(self) -> bool {
        matches!(
            self,
            Refusal::TooFast | Refusal::ScoreTooHigh | Refusal::ScoreRateTooHigh
        )
    }

    /// The stable code: the same as the client error's.
    pub fn code(self) -> &'static str {
        ClientError::from(self).code()
    }

    /// The rule an attempt refused for this reason broke, by its setting's name (`window` for
    /// a closed campaign): what review shows beside [`Refusal::limit`].
    pub fn rule(self) -> &'static str {
        match self {
            Refusal::CampaignClosed => "window",
            Refusal::TooFast => "min_duration_ms",
            Refusal::TooSlow => "max_duration_ms",
            Refusal::ScoreTooHigh => "max_score",
            Refusal::ScoreRateTooHigh => "max_score_per_second",
        }
    }

    /// The limit an attempt refused for this reason broke, in the rule's own unit (ms,
    /// points, points per second); `None` for a closed campaign, whose limit is its window.
    pub fn limit(self, limits: &Limits) -> Option<u64> {
        match self {
            Refusal::CampaignClosed => None,
            Refusal::TooFast => Some(limits.min_duration_ms),
            Refusal::TooSlow => Some(limits.max_duration_ms),
            Refusal::ScoreTooHigh => Some(limits.max_score),
            Refusal::ScoreRateTooHigh => Some(limits.max_score_per_second),
        }
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
        let code =
            |started: u64, now: u64, score: u64| r.check(&r.limits(), started, now, score).err();
        assert_eq!(code(0, 1_999, 10), Some(Refusal::TooFast));
        assert_eq!(code(0, 120_001, 10), Some(Refusal::TooSlow));
        assert_eq!(code(0, 10_000, 100_001), Some(Refusal::ScoreTooHigh));
        assert_eq!(code(0, 10_000, 501), Some(Refusal::ScoreRateTooHigh));
        assert_eq!(
            code(0, 10_000, 500),
            None,
            "exactly the allowed rate is fine"
        );
        let ended = CampaignRules {
            starts_at_ms: Some(1_000),
            ends_at_ms: Some(5_000),
            ..CampaignRules::default()
        };
        let limits = ended.limits();
        assert_eq!(
            ended.check(&limits, 0, 10_000, 1).unwrap_err().code(),
            "campaign_closed",
            "a game started before the window opened"
        );
        assert_eq!(
            ended.check(&limits, 4_000, 10_000, 1),
            Ok(()),
            "a game started before the end may be submitted after it"
        );
    }

    #[test]
    fn limits_travel_as_four_numbers() {
        let limits = CampaignRules::default().limits();
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(json, "[2000,120000,100000,50]");
        assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), limits);
    }

    #[test]
    fn a_closed_campaign_takes_no_game() {
        let mut c = Campaign::configured(CampaignId::new("x"), CampaignRules::default(), 0);
        assert!(c.takes_games_at(10));
        c.closed_at_ms = Some(10);
        assert!(!c.takes_games_at(10));
        assert!(c.takes_games_at(9));
        assert_eq!(c.title(), "x");
    }

    #[test]
    fn prizes_name_boards_the_campaign_has() {
        let with = |prizes: &[(&str, u32)]| CampaignRules {
            prizes: prizes.iter().map(|(b, n)| (b.to_string(), *n)).collect(),
            ..CampaignRules::default()
        };
        assert_eq!(
            with(&[("global", 10), ("daily", 3), ("region:eu", 1)]).problem(),
            None
        );
        for bad in [
            &[("weekly", 1)][..],
            &[("region:mars", 1)],
            &[("global", 0)],
            &[("daily", 1_001)],
        ] {
            assert_eq!(
                with(bad).problem().map(|(f, _)| f),
                Some("prizes"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_campaign_ends_at_its_end_or_when_closed_whichever_came_first() {
        let mut c = Campaign::configured(CampaignId::new("x"), CampaignRules::default(), 0);
        assert_eq!(c.ended_at(100), None, "no end, not closed");
        c.rules.ends_at_ms = Some(50);
        assert_eq!(c.ended_at(49), None, "the end is still ahead");
        assert_eq!(c.ended_at(100), Some(50));
        c.closed_at_ms = Some(30);
        assert_eq!(c.ended_at(100), Some(30), "closed before its end");
        c.rules.ends_at_ms = Some(200);
        assert_eq!(c.ended_at(100), Some(30), "closed, its end moved ahead");
        c.closed_at_ms = None;
        assert_eq!(c.ended_at(100), None, "reopened with a later end");
    }

    #[test]
    fn every_refusal_round_trips_through_its_code() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_code(r.code()), Some(r));
        }
        assert_eq!(Refusal::from_code("bad_session"), None);
    }
}
