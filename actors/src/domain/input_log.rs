//! A counted game's input log, the evidence kept with its result: every frame (its `seq`
//! and when it arrived, by the server's clock) and every event read (its `t_ms`, kind, frame
//! and whether it counted or why not), bounded by `GAME_INPUT_MAX_EVENTS`.
//!
//! Encoded compactly for the results stream and PostgreSQL (`inputs.log`): a version byte,
//! the kind names, then each frame (its `seq` and arrival as zig-zag LEB128 deltas from the
//! previous frame's) followed by its events (`t_ms` as a delta from the previous event's, then
//! one byte of kind and fate). A 20 s game of 8 taps a second flushed every 250 ms takes about
//! 800 bytes.

const VERSION: u8 = 1;
/// The kind nibble of an event whose kind the campaign does not name (campaigns name at most
/// 15 kinds, so kind and fate share one byte).
const UNKNOWN_KIND: u8 = 15;

/// Why an event did not count. Its code is what metrics, the session's evidence and
/// docs/PROTOCOL.md name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// A kind the campaign does not name.
    UnknownKind,
    /// `t_ms` below 0.
    NegativeTime,
    /// `t_ms` before the previous event's.
    Backwards,
    /// `t_ms` past the game's maximum duration.
    PastMaxDuration,
    /// `t_ms` ahead of the server's elapsed time by more than the clock tolerance.
    AheadOfClock,
    /// Arrived more than the maximum delay after its `t_ms`.
    Late,
    /// Sooner after the previous counted event than `min_event_interval_ms`.
    TooClose,
    /// Past `max_events_per_second` in the 1,000 ms before it.
    OverRate,
    /// Past its kind's `max_per_game`.
    OverKindLimit,
    /// Past `GAME_INPUT_MAX_EVENTS`: not even kept in the log.
    LogFull,
    /// In a frame past the socket's input frame budget.
    FrameRate,
}

impl Drop {
    pub const ALL: [Drop; 11] = [
        Drop::UnknownKind,
        Drop::NegativeTime,
        Drop::Backwards,
        Drop::PastMaxDuration,
        Drop::AheadOfClock,
        Drop::Late,
        Drop::TooClose,
        Drop::OverRate,
        Drop::OverKindLimit,
        Drop::LogFull,
        Drop::FrameRate,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Drop::UnknownKind => "unknown_kind",
            Drop::NegativeTime => "negative_time",
            Drop::Backwards => "backwards",
            Drop::PastMaxDuration => "past_max_duration",
            Drop::AheadOfClock => "ahead_of_clock",
            Drop::Late => "late",
            Drop::TooClose => "too_close",
            Drop::OverRate => "over_rate",
            Drop::OverKindLimit => "over_kind_limit",
            Drop::LogFull => "log_full",
            Drop::FrameRate => "frame_rate",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.code() == code)
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Whether an event counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Counted,
    Dropped(Drop),
}

/// One event as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    pub t_ms: i64,
    /// Index into [`InputLog::kinds`]; `None` for a kind the campaign does not name.
    pub kind: Option<u8>,
    /// Index into [`InputLog::frames`].
    pub frame: u32,
    pub fate: Fate,
}

/// One frame as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub seq: u32,
    /// Server time since the game started when it arrived (ms).
    pub arrived_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputLog {
    pub kinds: Vec<String>,
    pub frames: Vec<Frame>,
    pub events: Vec<Logged>,
}

/// A log that does not decode: not written by this version of podium.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable input log")]
pub struct Undecodable;

impl InputLog {
    pub fn new(kinds: Vec<String>) -> Self {
        Self {
            kinds,
            ..Self::default()
        }
    }

    /// Records a frame; answers its index for its events.
    pub fn frame(&mut self, seq: u32, arrived_ms: u64) -> u32 {
        self.frames.push(Frame { seq, arrived_ms });
        (self.frames.len() - 1) as u32
    }

    /// Frames in order, each with its events (which a counting `Tally` appends
    /// frame by frame): the frame index is implicit.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        put(&mut out, self.kinds.len() as u64);
        for k in &self.kinds {
            put(&mut out, k.len() as u64);
            out.extend_from_slice(k.as_bytes());
        }
        put(&mut out, self.frames.len() as u64);
        let (mut seq, mut at, mut t) = (-1i64, 0i64, 0i64);
        let mut events = self.events.iter().peekable();
        for (i, f) in self.frames.iter().enumerate() {
            put_signed(&mut out, i64::from(f.seq) - seq - 1);
            seq = i64::from(f.seq);
            put_signed(&mut out, f.arrived_ms as i64 - at);
            at = f.arrived_ms as i64;
            let mine: Vec<&Logged> =
                std::iter::from_fn(|| events.next_if(|e| e.frame as usize == i)).collect();
            put(&mut out, mine.len() as u64);
            for e in mine {
                put_signed(&mut out, e.t_ms.saturating_sub(t));
                t = e.t_ms;
                let fate = match e.fate {
                    Fate::Counted => 0,
                    Fate::Dropped(d) => 1 + d.index() as u8,
                };
                out.push(e.kind.map_or(UNKNOWN_KIND, |k| k.min(UNKNOWN_KIND - 1)) << 4 | fate);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Undecodable> {
        let mut r = Reader { bytes, at: 0 };
        if r.byte()? != VERSION {
            return Err(Undecodable);
        }
        let mut log = InputLog::default();
        for _ in 0..r.count(usize::from(UNKNOWN_KIND))? {
            let len = r.count(256)?;
            let name = r.take(len)?;
            log.kinds
                .push(String::from_utf8(name.to_vec()).map_err(|_| Undecodable)?);
        }
        let (mut seq, mut at, mut t) = (-1i64, 0i64, 0i64);
        for frame in 0..r.count(bytes.len())? {
            seq = seq.saturating_add(r.signed()?).saturating_add(1);
            at = at.saturating_add(r.signed()?);
            log.frames.push(Frame {
                seq: u32::try_from(seq).map_err(|_| Undecodable)?,
                arrived_ms: u64::try_from(at).map_err(|_| Undecodable)?,
            });
            for _ in 0..r.count(bytes.len())? {
                t = t.saturating_add(r.signed()?);
                let b = r.byte()?;
                let kind = match b >> 4 {
                    UNKNOWN_KIND => None,
                    k if usize::from(k) < log.kinds.len() => Some(k),
                    _ => return Err(Undecodable),
                };
                let fate = match b & 0x0f {
                    0 => Fate::Counted,
                    d => Fate::Dropped(*Drop::ALL.get(usize::from(d) - 1).ok_or(Undecodable)?),
                };
                log.events.push(Logged {
                    t_ms: t,
                    kind,
                    frame: frame as u32,
                    fate,
                });
            }
        }
        if r.at != bytes.len() {
            return Err(Undecodable);
        }
        Ok(log)
    }
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put(out, ((v << 1) ^ (v >> 63)) as u64);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Undecodable> {
        let b = *self.bytes.get(self.at).ok_or(Undecodable)?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], Undecodable> {
        let end = self.at.checked_add(n).ok_or(Undecodable)?;
        let slice = self.bytes.get(self.at..end).ok_or(Undecodable)?;
        self.at = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, Undecodable> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Undecodable)
    }

    fn signed(&mut self) -> Result<i64, Undecodable> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// A count, refused past `max` (a corrupt log cannot make decoding allocate without
    /// bound).
    fn count(&mut self, max: usize) -> Result<usize, Undecodable> {
        let n = usize::try_from(self.varint()?).map_err(|_| Undecodable)?;
        if n > max {
            return Err(Undecodable);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_round_trips_small() {
        let mut log = InputLog::new(vec!["tap".into(), "bonus".into()]);
        let mut t = 0;
        for f in 0..80u32 {
            let frame = log.frame(f, u64::from(f) * 250 + 40);
            for _ in 0..2 {
                t += 120;
                log.events.push(Logged {
                    t_ms: t,
                    kind: Some((f % 2) as u8),
                    frame,
                    fate: Fate::Counted,
                });
            }
        }
        log.events.push(Logged {
            t_ms: -3,
            kind: None,
            frame: 79,
            fate: Fate::Dropped(Drop::NegativeTime),
        });
        let bytes = log.encode();
        assert!(bytes.len() < 900, "{} bytes", bytes.len());
        assert_eq!(InputLog::decode(&bytes).unwrap(), log);
    }

    #[test]
    fn corrupt_logs_are_refused_not_panicked_on() {
        let mut log = InputLog::new(vec!["tap".into()]);
        let frame = log.frame(0, 5);
        log.events.push(Logged {
            t_ms: 1,
            kind: Some(0),
            frame,
            fate: Fate::Counted,
        });
        let bytes = log.encode();
        for cut in 0..bytes.len() {
            assert!(InputLog::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(InputLog::decode(&extra).is_err());
        assert!(InputLog::decode(&[2]).is_err());
    }
}
