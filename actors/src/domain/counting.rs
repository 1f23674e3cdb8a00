//! Counted scoring: in a `counted` campaign the score is the server's own count of the input
//! events it saw arrive in time, not what the client claims. A [`Tally`] is one game's count
//! in progress: each `input` frame is stamped on the server's clock when it arrives, each of
//! its events counts or is dropped for a named reason, and at the submit the tally ends in a
//! [`Counted`]: the score, the claim beside it, the drops by reason, the plausibility flags
//! with their numbers, and the input log as evidence. docs/FAIR-PLAY.md says what this
//! catches and what it does not.

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::{Deserialize, Serialize};

pub use super::input_log::Drop;
use super::input_log::{Fate, InputLog, Logged};

/// Event kinds a counted campaign may name.
pub const MAX_EVENT_KINDS: usize = 15;
/// Events one `input` frame may carry; more is `bad_message`.
pub const MAX_FRAME_EVENTS: usize = 128;
/// `too_regular` needs at least this many intervals to judge.
pub const MIN_REGULAR_INTERVALS: usize = 20;
/// The window `inhuman_rate` measures a sustained rate over.
const HUMAN_RATE_WINDOW_MS: u64 = 2_000;

/// One kind of event and what it is worth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    pub points: u64,
    /// Most events of this kind that count in one game; unset: no limit of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_game: Option<u32>,
}

/// How a counted campaign counts. The thresholds left unset are the engine's
/// ([`CountingDefaults`], `GAME_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counting {
    /// The event kinds that score, by name.
    pub events: BTreeMap<String, EventRule>,
    /// Most events that count in any 1,000 ms of the game's own time (`t_ms`).
    pub max_events_per_second: u32,
    /// Least time between two counted events; 0 means no minimum.
    #[serde(default)]
    pub min_event_interval_ms: u64,
    /// How often the client should send its events (`game_started` reports it).
    #[serde(default = "default_input_flush_ms")]
    pub input_flush_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_tolerance_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_max_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_cv: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_max_rate: Option<f64>,
}

fn default_input_flush_ms() -> u64 {
    250
}

/// Tap Rush's counting: a tap is a point.
impl Default for Counting {
    fn default() -> Self {
        Self {
            events: BTreeMap::from([(
                "tap".to_owned(),
                EventRule {
                    points: 1,
                    max_per_game: None,
                },
            )]),
            max_events_per_second: 25,
            min_event_interval_ms: 30,
            input_flush_ms: default_input_flush_ms(),
            clock_tolerance_ms: None,
            input_max_delay_ms: None,
            min_interval_cv: None,
            human_max_rate: None,
        }
    }
}

/// The engine's thresholds, for campaigns that do not set their own (`GAME_CLOCK_TOLERANCE_MS`,
/// `GAME_INPUT_MAX_DELAY_MS`, `GAME_MIN_INTERVAL_CV`, `GAME_HUMAN_MAX_RATE`), and the bound on
/// one game's input log (`GAME_INPUT_MAX_EVENTS`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountingDefaults {
    pub clock_tolerance_ms: u64,
    pub input_max_delay_ms: u64,
    pub min_interval_cv: f64,
    pub human_max_rate: f64,
    pub input_max_events: u32,
}

impl Default for CountingDefaults {
    fn default() -> Self {
        Self {
            clock_tolerance_ms: 1_500,
            input_max_delay_ms: 3_000,
            min_interval_cv: 0.1,
            human_max_rate: 16.0,
            input_max_events: 5_000,
        }
    }
}

/// The thresholds one game is judged by: the campaign's, else the engine's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub max_events_per_second: u32,
    pub min_event_interval_ms: u64,
    pub clock_tolerance_ms: u64,
    pub input_max_delay_ms: u64,
    pub min_interval_cv: f64,
    pub human_max_rate: f64,
    pub input_max_events: u32,
}

impl Counting {
    pub fn thresholds(&self, d: &CountingDefaults) -> Thresholds {
        Thresholds {
            max_events_per_second: self.max_events_per_second,
            min_event_interval_ms: self.min_event_interval_ms,
            clock_tolerance_ms: self.clock_tolerance_ms.unwrap_or(d.clock_tolerance_ms),
            input_max_delay_ms: self.input_max_delay_ms.unwrap_or(d.input_max_delay_ms),
            min_interval_cv: self.min_interval_cv.unwrap_or(d.min_interval_cv),
            human_max_rate: self.human_max_rate.unwrap_or(d.human_max_rate),
            input_max_events: d.input_max_events,
        }
    }

    /// The first setting that cannot work, as (field, what it expects).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        let names_ok = self.events.keys().all(|k| {
            (1..=32).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
        let checks = [
            (
                (1..=MAX_EVENT_KINDS).contains(&self.events.len()) && names_ok,
                "events",
                "1 to 15 kinds named by 1 to 32 of a-z, 0-9, _ and -",
            ),
            (
                self.events
                    .values()
                    .all(|e| e.points <= 1_000_000 && e.max_per_game.is_none_or(|m| m >= 1)),
                "events",
                "points from 0 to 1000000 and max_per_game at least 1",
            ),
            (
                (1..=1_000).contains(&self.max_events_per_second),
                "max_events_per_second",
                "1 to 1000",
            ),
            (
                self.min_event_interval_ms <= 10_000,
                "min_event_interval_ms",
                "0 to 10000",
            ),
            (
                (50..=5_000).contains(&self.input_flush_ms),
                "input_flush_ms",
                "50 to 5000",
            ),
            (
                self.clock_tolerance_ms.is_none_or(|t| t <= 60_000),
                "clock_tolerance_ms",
                "0 to 60000",
            ),
            (
                self.input_max_delay_ms
                    .is_none_or(|t| (100..=60_000).contains(&t)),
                "input_max_delay_ms",
                "100 to 60000",
            ),
            (
                self.min_interval_cv
                    .is_none_or(|v| (0.0..=1.0).contains(&v)),
                "min_interval_cv",
                "a number from 0 to 1",
            ),
            (
                self.human_max_rate.is_none_or(|v| v > 0.0 && v <= 1_000.0),
                "human_max_rate",
                "a number above 0, at most 1000",
            ),
        ];
        checks
            .into_iter()
            .find(|(ok, ..)| !ok)
            .map(|(_, field, expected)| (field, expected))
    }
}

/// A plausibility flag: raised on a result with its numbers, never refusing it by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagKind {
    /// Intervals between events too even for a hand: a machine.
    TooRegular,
    /// A rate above what a person sustains, over 2 s.
    InhumanRate,
    /// Events stamped ahead of the server's clock (dropped).
    ClockSkew,
    /// Events sent long after they happened (dropped).
    LateInput,
    /// The client claimed more than the server counted.
    ScoreMismatch,
}

impl FlagKind {
    pub const ALL: [FlagKind; 5] = [
        FlagKind::TooRegular,
        FlagKind::InhumanRate,
        FlagKind::ClockSkew,
        FlagKind::LateInput,
        FlagKind::ScoreMismatch,
    ];

    pub fn code(self) -> &'static str {
        match self {
            FlagKind::TooRegular => "too_regular",
            FlagKind::InhumanRate => "inhuman_rate",
            FlagKind::ClockSkew => "clock_skew",
            FlagKind::LateInput => "late_input",
            FlagKind::ScoreMismatch => "score_mismatch",
        }
    }

    /// The threshold a flag of this kind crossed, by its setting's name.
    pub fn rule(self) -> &'static str {
        match self {
            FlagKind::TooRegular => "min_interval_cv",
            FlagKind::InhumanRate => "human_max_rate",
            FlagKind::ClockSkew => "clock_tolerance_ms",
            FlagKind::LateInput => "input_max_delay_ms",
            FlagKind::ScoreMismatch => "counted score",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// One flag and the numbers behind it: `value` measured against `limit` (the threshold it
/// crossed), over `events` events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flag {
    pub kind: FlagKind,
    /// `too_regular`: the intervals' coefficient of variation; `inhuman_rate`: events per
    /// second; `clock_skew`: the furthest ahead (ms); `late_input`: the longest delay (ms);
    /// `score_mismatch`: the claim.
    pub value: f64,
    /// The threshold, or for `score_mismatch` the count.
    pub limit: f64,
    /// The intervals, events or drops the value comes from.
    pub events: u32,
}

/// A counted game, ended by its submit.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    /// The server's count: the result's score.
    pub score: u64,
    /// What the client's submit said.
    pub claimed: u64,
    /// Events that did not count, by reason (only reasons with drops).
    pub dropped: Vec<(Drop, u32)>,
    pub flags: Vec<Flag>,
    /// The input log, encoded ([`InputLog::encode`]).
    pub log: Vec<u8>,
}

/// What became of one `input` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFate {
    /// Read: each event counted or was dropped.
    Taken,
    /// A `seq` already seen: ignored, whatever it carries.
    Repeated,
}

/// One counted game in progress. Lives on the socket that started the game, so every frame
/// is stamped by the clock of the server that started it.
#[derive(Debug, Clone)]
pub struct Tally {
    kinds: Vec<(String, EventRule)>,
    th: Thresholds,
    started_ms: u64,
    max_duration_ms: u64,
    /// Frames already read, by `seq`: a repeat counts once.
    seen: HashSet<u32>,
    log: InputLog,
    /// `t_ms` of the last event that was in order, whether or not it counted.
    last_t: Option<u64>,
    last_counted_t: Option<u64>,
    /// Counted events' `t_ms` within the last 1,000 ms of game time, for the rate limit.
    recent: VecDeque<u64>,
    per_kind: Vec<u32>,
    points: u64,
    dropped: [u32; Drop::ALL.len()],
    max_ahead_ms: u64,
    max_delay_ms: u64,
}

impl Tally {
    pub fn new(counting: &Counting, th: Thresholds, started_ms: u64, max_duration_ms: u64) -> Self {
        let kinds: Vec<(String, EventRule)> = counting
            .events
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect();
        Self {
            log: InputLog::new(kinds.iter().map(|(k, _)| k.clone()).collect()),
            per_kind: vec![0; kinds.len()],
            kinds,
            th,
            started_ms,
            max_duration_ms,
            seen: HashSet::new(),
            last_t: None,
            last_counted_t: None,
            recent: VecDeque::new(),
            points: 0,
            dropped: [0; Drop::ALL.len()],
            max_ahead_ms: 0,
            max_delay_ms: 0,
        }
    }

    /// The events counted so far.
    pub fn events_counted(&self) -> u64 {
        self.per_kind.iter().map(|&n| u64::from(n)).sum()
    }

    /// Reads one frame that arrived at `arrival_ms` (server clock). Answers each event's fate
    /// through the tally's counts; `Repeated` when its `seq` was read before.
    pub fn take<K: AsRef<str>>(
        &mut self,
        seq: u32,
        events: &[(i64, K)],
        arrival_ms: u64,
    ) -> FrameFate {
        if self.seen.contains(&seq) {
            return FrameFate::Repeated;
        }
        let room = (self.th.input_max_events as usize).saturating_sub(self.log.events.len());
        if room == 0 || self.seen.len() >= self.th.input_max_events as usize {
            self.dropped[Drop::LogFull.index()] += events.len() as u32;
            return FrameFate::Taken;
        }
        self.seen.insert(seq);
        let elapsed = arrival_ms.saturating_sub(self.started_ms);
        let frame = self.log.frame(seq, elapsed);
        for (n, (t, kind)) in events.iter().enumerate() {
            if n >= room {
                self.dropped[Drop::LogFull.index()] += (events.len() - n) as u32;
                break;
            }
            let (t, kind) = (*t, kind.as_ref());
            let kind = self.kinds.iter().position(|(k, _)| k == kind);
            let fate = self.judge(t, kind, elapsed);
            if let Fate::Dropped(d) = fate {
                self.dropped[d.index()] += 1;
            }
            self.log.events.push(Logged {
                t_ms: t,
                kind: kind.map(|k| k as u8),
                frame,
                fate,
            });
        }
        FrameFate::Taken
    }

    /// Drops every event of a frame that came past the socket's input frame budget.
    pub fn over_budget(&mut self, events: usize) {
        self.dropped[Drop::FrameRate.index()] += events as u32;
    }

    fn judge(&mut self, t: i64, kind: Option<usize>, elapsed: u64) -> Fate {
        let Some(kind) = kind else {
            return Fate::Dropped(Drop::UnknownKind);
        };
        let Ok(t) = u64::try_from(t) else {
            return Fate::Dropped(Drop::NegativeTime);
        };
        if self.last_t.is_some_and(|last| t < last) {
            return Fate::Dropped(Drop::Backwards);
        }
        if t > self.max_duration_ms {
            return Fate::Dropped(Drop::PastMaxDuration);
        }
        self.last_t = Some(t);
        if t > elapsed + self.th.clock_tolerance_ms {
            self.max_ahead_ms = self.max_ahead_ms.max(t - elapsed);
            return Fate::Dropped(Drop::AheadOfClock);
        }
        if elapsed > t + self.th.input_max_delay_ms {
            self.max_delay_ms = self.max_delay_ms.max(elapsed - t);
            return Fate::Dropped(Drop::Late);
        }
        if self
            .last_counted_t
            .is_some_and(|last| t - last < self.th.min_event_interval_ms)
        {
            return Fate::Dropped(Drop::TooClose);
        }
        while self.recent.front().is_some_and(|&f| f + 1_000 <= t) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.th.max_events_per_second as usize {
            return Fate::Dropped(Drop::OverRate);
        }
        let rule = &self.kinds[kind].1;
        if rule
            .max_per_game
            .is_some_and(|max| self.per_kind[kind] >= max)
        {
            return Fate::Dropped(Drop::OverKindLimit);
        }
        self.per_kind[kind] += 1;
        self.points = self.points.saturating_add(rule.points);
        self.recent.push_back(t);
        self.last_counted_t = Some(t);
        Fate::Counted
    }

    /// Ends the game at its submit, which claimed `claimed`.
    pub fn finish(&self, claimed: u64) -> Counted {
        let times: Vec<u64> = self
            .log
            .events
            .iter()
            .filter(|e| e.fate == Fate::Counted)
            .map(|e| e.t_ms as u64)
            .collect();
        let intervals: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let cv = coefficient_of_variation(&intervals);
        let busiest = busiest_window(&times, HUMAN_RATE_WINDOW_MS);
        let rate = busiest as f64 * 1_000.0 / HUMAN_RATE_WINDOW_MS as f64;
        let (ahead, late) = (
            self.dropped[Drop::AheadOfClock.index()],
            self.dropped[Drop::Late.index()],
        );
        let th = &self.th;
        // Each flag: whether it is raised, then its value, threshold and events.
        let candidates = [
            (
                intervals.len() >= MIN_REGULAR_INTERVALS && cv < th.min_interval_cv,
                FlagKind::TooRegular,
                cv,
                th.min_interval_cv,
                intervals.len() as u32,
            ),
            (
                rate > th.human_max_rate,
                FlagKind::InhumanRate,
                rate,
                th.human_max_rate,
                busiest as u32,
            ),
            (
                ahead > 0,
                FlagKind::ClockSkew,
                self.max_ahead_ms as f64,
                th.clock_tolerance_ms as f64,
                ahead,
            ),
            (
                late > 0,
                FlagKind::LateInput,
                self.max_delay_ms as f64,
                th.input_max_delay_ms as f64,
                late,
            ),
            (
                claimed > self.points,
                FlagKind::ScoreMismatch,
                claimed as f64,
                self.points as f64,
                times.len() as u32,
            ),
        ];
        let flags = candidates
            .into_iter()
            .filter(|c| c.0)
            .map(|(_, kind, value, limit, events)| Flag {
                kind,
                value,
                limit,
                events,
            })
            .collect();
        Counted {
            score: self.points,
            claimed,
            dropped: Drop::ALL
                .into_iter()
                .filter(|d| self.dropped[d.index()] > 0)
                .map(|d| (d, self.dropped[d.index()]))
                .collect(),
            flags,
            log: self.log.encode(),
        }
    }
}

/// Standard deviation over mean; 0 when the mean is 0 (every event at one instant).
fn coefficient_of_variation(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.is_empty() || mean <= 0.0 {
        return 0.0;
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// The most of the sorted `times` in any window of `width` ms.
fn busiest_window(times: &[u64], width: u64) -> usize {
    let (mut start, mut best) = (0, 0);
    for end in 0..times.len() {
        while times[end] - times[start] >= width {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally() -> Tally {
        let mut counting = Counting::default();
        counting.events.insert(
            "bonus".into(),
            EventRule {
                points: 25,
                max_per_game: Some(2),
            },
        );
        let th = counting.thresholds(&CountingDefaults::default());
        Tally::new(&counting, th, 1_000_000, 30_000)
    }

    /// Events at `t`, sent together at game time `at` (ms after the start).
    fn send(t: &mut Tally, seq: u32, events: &[(i64, &str)], at: u64) -> FrameFate {
        t.take(seq, events, 1_000_000 + at)
    }

    fn dropped(c: &Counted, d: Drop) -> u32 {
        c.dropped
            .iter()
            .find(|(x, _)| *x == d)
            .map_or(0, |(_, n)| *n)
    }

    fn flagged(c: &Counted) -> Vec<FlagKind> {
        c.flags.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn events_count_their_points_and_a_repeated_frame_counts_once() {
        let mut t = tally();
        assert_eq!(
            send(&mut t, 0, &[(100, "tap"), (300, "bonus")], 350),
            FrameFate::Taken
        );
        assert_eq!(
            send(&mut t, 0, &[(400, "bonus")], 450),
            FrameFate::Repeated,
            "the first frame with a seq counts, whatever a later one carries"
        );
        send(&mut t, 1, &[(500, "tap")], 550);
        let c = t.finish(27);
        assert_eq!((c.score, c.claimed), (27, 27));
        assert!(c.dropped.is_empty() && c.flags.is_empty(), "{c:?}");
    }

    #[test]
    fn each_bad_event_is_dropped_on_its_own_by_reason() {
        let mut t = tally();
        send(
            &mut t,
            0,
            &[
                (-5, "tap"),
                (100, "jump"),
                (200, "tap"),
                (150, "tap"),
                (210, "tap"),
                (40_000, "tap"),
            ],
            300,
        );
        send(
            &mut t,
            1,
            &[(300, "bonus"), (400, "bonus"), (500, "bonus")],
            600,
        );
        let c = t.finish(0);
        assert_eq!(c.score, 1 + 50);
        for (d, n) in [
            (Drop::NegativeTime, 1),
            (Drop::UnknownKind, 1),
            (Drop::Backwards, 1),
            (Drop::TooClose, 1),
            (Drop::PastMaxDuration, 1),
            (Drop::OverKindLimit, 1),
        ] {
            assert_eq!(dropped(&c, d), n, "{d:?} in {:?}", c.dropped);
        }
    }

    #[test]
    fn a_log_sent_at_the_end_counts_only_its_last_seconds_and_is_flagged() {
        let mut t = tally();
        // 20 s of taps, 8 a second, all sent in one frame at 20.5 s.
        let events: Vec<(i64, &str)> = (0..128).map(|i| (i * 156, "tap")).collect();
        send(&mut t, 0, &events, 20_500);
        let c = t.finish(128);
        assert!(
            c.score < 25,
            "only what is within 3 s of arrival: {}",
            c.score
        );
        assert!(dropped(&c, Drop::Late) > 100);
        assert_eq!(flagged(&c), [FlagKind::LateInput, FlagKind::ScoreMismatch]);
        let late = c.flags[0];
        assert_eq!(
            (late.limit, late.events),
            (3_000.0, dropped(&c, Drop::Late))
        );
    }

    #[test]
    fn events_stamped_ahead_of_the_servers_clock_are_dropped_and_flagged() {
        let mut t = tally();
        // A clock that runs 1.5 times fast: by 3 s of server time it is 1.5 s ahead.
        for (seq, at) in (250..10_000).step_by(250).enumerate() {
            let t_ms = (at as f64 * 1.5) as i64;
            send(&mut t, seq as u32, &[(t_ms, "tap")], at);
        }
        let c = t.finish(39);
        assert!(dropped(&c, Drop::AheadOfClock) > 20, "{:?}", c.dropped);
        assert!(flagged(&c).contains(&FlagKind::ClockSkew));
    }

    #[test]
    fn a_metronome_is_too_regular_and_a_flood_is_cut_to_the_rate_limit() {
        let mut t = tally();
        for i in 0..100u32 {
            let at = u64::from(i) * 50;
            send(&mut t, i, &[(at as i64, "tap")], at + 20);
        }
        let c = t.finish(100);
        assert_eq!(c.score, 100);
        assert_eq!(flagged(&c), [FlagKind::TooRegular, FlagKind::InhumanRate]);
        assert_eq!(c.flags[0].value, 0.0);
        assert_eq!(c.flags[1].value, 20.0);

        let mut flood = tally();
        let events: Vec<(i64, &str)> = (0..100).map(|i| (1_000 + i * 2, "tap")).collect();
        send(&mut flood, 0, &events, 1_300);
        let c = flood.finish(0);
        // 30 ms apart at least: 200 ms of events hold 7.
        assert_eq!(c.score, 7);
        assert_eq!(dropped(&c, Drop::TooClose), 93);
    }

    #[test]
    fn the_rate_limit_holds_in_any_second() {
        let counting = Counting {
            min_event_interval_ms: 0,
            max_events_per_second: 5,
            ..Counting::default()
        };
        let th = counting.thresholds(&CountingDefaults::default());
        let mut t = Tally::new(&counting, th, 0, 30_000);
        let events: Vec<(i64, &str)> = (0..20).map(|i| (i * 100, "tap")).collect();
        t.take(0, &events, 2_000);
        // 0..=400 count (5), 500..=900 dropped, 1000..=1400 count, ...
        assert_eq!(t.finish(0).score, 10);
    }

    #[test]
    fn the_log_is_bounded_and_what_it_cannot_hold_is_dropped() {
        let counting = Counting {
            min_event_interval_ms: 0,
            max_events_per_second: 1_000,
            ..Counting::default()
        };
        let th = Thresholds {
            input_max_events: 10,
            ..counting.thresholds(&CountingDefaults::default())
        };
        let mut t = Tally::new(&counting, th, 0, 30_000);
        let events: Vec<(i64, &str)> = (0..8).map(|i| (i, "tap")).collect();
        t.take(0, &events, 10);
        t.take(1, &events[..5], 10);
        t.take(2, &events[..3], 10);
        let c = t.finish(0);
        assert_eq!(dropped(&c, Drop::LogFull), 6);
        assert_eq!(InputLog::decode(&c.log).unwrap().events.len(), 10);
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        assert_eq!(Counting::default().problem(), None);
        let bad = |f: fn(&mut Counting)| {
            let mut c = Counting::default();
            f(&mut c);
            c.problem().map(|(field, _)| field)
        };
        assert_eq!(bad(|c| c.events.clear()), Some("events"));
        assert_eq!(
            bad(|c| {
                c.events.insert(
                    "Bad Name".into(),
                    EventRule {
                        points: 1,
                        max_per_game: None,
                    },
                );
            }),
            Some("events")
        );
        assert_eq!(
            bad(|c| c.max_events_per_second = 0),
            Some("max_events_per_second")
        );
        assert_eq!(bad(|c| c.input_flush_ms = 10), Some("input_flush_ms"));
        assert_eq!(
            bad(|c| c.min_interval_cv = Some(2.0)),
            Some("min_interval_cv")
        );
        assert_eq!(
            bad(|c| c.human_max_rate = Some(0.0)),
            Some("human_max_rate")
        );
    }
}
