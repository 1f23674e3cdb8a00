//! Newtypes for the identities that flow through the engine, so a user id, a campaign and a
//! connection id cannot be swapped by accident.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::ClientError;

/// A player, as named by the `sub` claim of their JWT. Cheap to clone: it is shared by every
/// room membership and board entry of that player.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

/// Longest user id accepted from a token's `sub`, in bytes; keeps board entries and frames
/// small.
pub const MAX_USER_ID_LEN: usize = 64;

/// Characters that change how text around them is shown without being seen themselves: bidi
/// controls (U+202E would show `evil` as `live` on a board), zero-width characters (two names
/// that look the same) and the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

impl UserId {
    /// Validates a `sub` claim: 1 to 64 bytes of printable text in Unicode NFC, with no
    /// control, bidi-control or zero-width characters, since it is shown on public boards.
    pub fn parse(raw: &str) -> Result<Self, ClientError> {
        use unicode_normalization::UnicodeNormalization;
        let printable = !raw.chars().any(|c| c.is_control() || is_invisible(c));
        if raw.is_empty() || raw.len() > MAX_USER_ID_LEN || !printable || raw.nfc().ne(raw.chars())
        {
            return Err(ClientError::Unauthorized(
                "sub must be 1 to 64 bytes of printable NFC text, without bidi or zero-width characters",
            ));
        }
        Ok(Self(raw.into()))
    }

    /// A user id read back from a store, which checked it when it was written: rules
    /// tightened since then must not make old boards unreadable.
    pub fn stored(raw: &str) -> Option<Self> {
        (!raw.is_empty()).then(|| Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", &self.0)
    }
}

/// A campaign (one promo game run), as configured under `[campaigns.<name>]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(Arc<str>);

impl CampaignId {
    pub fn new(raw: &str) -> Self {
        Self(raw.into())
    }

    /// A name an operator gives a new campaign: 1 to 64 of letters, digits, `-` and `_` (it
    /// appears in room names, URLs and keys).
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        valid.then(|| Self::new(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A player's region, from the optional `region` claim of their token (`eu`, `us-east`): each
/// campaign has a `region:<code>` board per region.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Region(Arc<str>);

impl Region {
    /// 1 to 16 characters of lowercase letters, digits and `-`.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.len() <= 16
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        valid.then(|| Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One WebSocket connection, unique for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Which board of a campaign a room shows.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum BoardKind {
    /// Best score of the whole campaign.
    Global,
    /// Best score of the current UTC day; the board key rolls over at midnight.
    Daily,
    /// Best score of the players of one region.
    Region(Region),
}

/// A room is one board of one campaign, written `campaign/board` on the wire (`demo/global`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RoomId {
    pub campaign: CampaignId,
    pub board: BoardKind,
}

impl RoomId {
    /// Parses `campaign/board`; whether the campaign exists is the room registry's question.
    pub fn parse(raw: &str) -> Result<Self, ClientError> {
        let (campaign, board) = raw.split_once('/').ok_or(ClientError::UnknownRoom(
            "a room is written campaign/board, e.g. demo/global",
        ))?;
        let board = match board {
            "global" => BoardKind::Global,
            "daily" => BoardKind::Daily,
            _ => match board.strip_prefix("region:").and_then(Region::parse) {
                Some(region) => BoardKind::Region(region),
                None => {
                    return Err(ClientError::UnknownRoom(
                        "boards are global, daily and region:<code>",
                    ))
                }
            },
        };
        Ok(Self {
            campaign: CampaignId::new(campaign),
            board,
        })
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.board {
            BoardKind::Global => write!(f, "{}/global", self.campaign),
            BoardKind::Daily => write!(f, "{}/daily", self.campaign),
            BoardKind::Region(r) => write!(f, "{}/region:{}", self.campaign, r.as_str()),
        }
    }
}

/// One stored board of a campaign. Rooms map to a board at read time, so a daily room rolls
/// over at midnight UTC.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum BoardName {
    /// The whole campaign, kept for good.
    Global,
    /// One UTC day, kept for the campaign's `daily_retention_days`.
    Daily(time::Date),
    /// The players of one region, kept for good.
    Region(Region),
}

impl BoardName {
    /// Whether the board expires (daily boards do; the others are kept for good).
    pub fn expires(&self) -> bool {
        matches!(self, BoardName::Daily(_))
    }
}

/// How stored keys name a board: `global`, `daily:2026-11-22`, `region:eu`.
impl fmt::Display for BoardName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardName::Global => f.write_str("global"),
            BoardName::Daily(day) => write!(f, "daily:{}", format_date(*day)),
            BoardName::Region(r) => write!(f, "region:{}", r.as_str()),
        }
    }
}

/// A board in play and how long its stored key lives (a daily board's ends with its day).
pub type LiveBoard = (BoardKey, Option<std::time::Duration>);

/// The key of one stored board: a campaign and which of its boards.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BoardKey {
    pub campaign: CampaignId,
    pub board: BoardName,
}

impl BoardKey {
    /// The board a room shows right now (`now_ms` is the server's clock, UTC).
    pub fn for_room(room: &RoomId, now_ms: u64) -> Self {
        Self::of(&room.campaign, &room.board, now_ms)
    }

    /// The board of `kind` of `campaign` at `now_ms`.
    pub fn of(campaign: &CampaignId, kind: &BoardKind, now_ms: u64) -> Self {
        let board = match kind {
            BoardKind::Global => BoardName::Global,
            BoardKind::Daily => BoardName::Daily(utc_day(now_ms)),
            BoardKind::Region(r) => BoardName::Region(r.clone()),
        };
        Self {
            campaign: campaign.clone(),
            board,
        }
    }

    /// Every board a result counts on: global, today's, and the player's region's if any.
    pub fn all_for(campaign: &CampaignId, now_ms: u64, region: Option<&Region>) -> Vec<Self> {
        let mut kinds = vec![BoardKind::Global, BoardKind::Daily];
        kinds.extend(region.cloned().map(BoardKind::Region));
        kinds
            .iter()
            .map(|kind| Self::of(campaign, kind, now_ms))
            .collect()
    }
}

/// The UTC day of a Unix time in milliseconds.
pub fn utc_day(now_ms: u64) -> time::Date {
    time::OffsetDateTime::from_unix_timestamp((now_ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `YYYY-MM-DD` of a Unix time in milliseconds, UTC.
pub fn utc_date(now_ms: u64) -> String {
    format_date(utc_day(now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_round_trip_and_reject_unknown_boards() {
        let room = RoomId::parse("demo/global").unwrap();
        assert_eq!(room.to_string(), "demo/global");
        assert!(RoomId::parse("demo").is_err());
        assert!(RoomId::parse("demo/weekly").is_err());
        assert_eq!(
            RoomId::parse("demo/region:eu").unwrap().to_string(),
            "demo/region:eu"
        );
        assert!(RoomId::parse("demo/region:EU").is_err());
        assert!(RoomId::parse("demo/region:").is_err());
    }

    #[test]
    fn daily_board_key_uses_the_utc_date() {
        let room = RoomId::parse("demo/daily").unwrap();
        // 2026-11-22T23:59:59Z and one second later.
        assert_eq!(
            BoardKey::for_room(&room, 1_795_391_999_000)
                .board
                .to_string(),
            "daily:2026-11-22"
        );
        assert_eq!(
            BoardKey::for_room(&room, 1_795_392_000_000)
                .board
                .to_string(),
            "daily:2026-11-23"
        );
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"x".repeat(65)).is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("évé").is_ok(), "NFC accents are fine");
        assert!(
            UserId::parse("e\u{301}ve").is_err(),
            "the same name decomposed is not NFC"
        );
        assert!(
            UserId::parse("abc\u{202E}def").is_err(),
            "right-to-left override"
        );
        assert!(UserId::parse("ad\u{200B}min").is_err(), "zero-width space");
        assert!(UserId::parse("\u{FEFF}bob").is_err());
    }
}
