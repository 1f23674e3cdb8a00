//! The wire protocol: one serde enum per direction, internally tagged by `type`, snake_case.
//! Every message and field is documented for game developers in docs/PROTOCOL.md.

use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use super::board::{Diff, Entry, Standing};
use super::counting::MAX_FRAME_EVENTS;
use super::error::ClientError;

/// The optional `id` a client puts on a message; the direct reply echoes it as `re`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MsgId {
    Num(i64),
    Str(String),
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Auth {
        token: String,
    },
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Snapshot {
        room: String,
    },
    Around {
        room: String,
    },
    StartGame {
        campaign: String,
    },
    Submit {
        session: String,
        score: u64,
    },
    /// A counted game's events since the last frame: `[t_ms, kind]` each, `t_ms` the
    /// client's time since the game started.
    Input {
        session: String,
        seq: u32,
        events: Vec<(i64, String)>,
    },
    Ping,
}

impl ClientMsg {
    /// The label this message is counted under in `podium_ws_messages_in_total{type}`.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMsg::Auth { .. } => "auth",
            ClientMsg::Join { .. } => "join",
            ClientMsg::Leave { .. } => "leave",
            ClientMsg::Snapshot { .. } => "snapshot",
            ClientMsg::Around { .. } => "around",
            ClientMsg::StartGame { .. } => "start_game",
            ClientMsg::Submit { .. } => "submit",
            ClientMsg::Input { .. } => "input",
            ClientMsg::Ping => "ping",
        }
    }
}

#[derive(Deserialize)]
struct Inbound {
    #[serde(default)]
    id: Option<MsgId>,
    #[serde(flatten)]
    msg: ClientMsg,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<MsgId>,
}

/// The highest score a submit may carry: 2^53 - 1, the largest whole number every JSON client
/// (JavaScript's numbers are doubles) and every store (Redis sorted-set scores are doubles)
/// hold exactly. Past it a submit is `bad_message`.
pub const MAX_SCORE: u64 = (1 << 53) - 1;

/// Parses one text frame. On failure the error still carries the message's `id` when one
/// could be read, so the client can match the `bad_message` reply to what it sent.
/// `max_string_len` bounds `id`, room and campaign names (`WS_MAX_MESSAGE_LENGTH`).
pub fn parse(
    text: &str,
    max_string_len: usize,
) -> Result<(Option<MsgId>, ClientMsg), (Option<MsgId>, ClientError)> {
    match serde_json::from_str::<Inbound>(text) {
        Ok(Inbound { id, msg }) => {
            let too_long = match &msg {
                ClientMsg::Join { room }
                | ClientMsg::Leave { room }
                | ClientMsg::Snapshot { room }
                | ClientMsg::Around { room } => room.len() > max_string_len,
                ClientMsg::StartGame { campaign } => campaign.len() > max_string_len,
                _ => false,
            } || matches!(&id, Some(MsgId::Str(s)) if s.len() > max_string_len);
            if matches!(msg, ClientMsg::Submit { score, .. } if score > MAX_SCORE) {
                return Err((
                    id,
                    ClientError::BadMessage(format!(
                        "score is a whole number from 0 to {MAX_SCORE}"
                    )),
                ));
            }
            if matches!(&msg, ClientMsg::Input { events, .. } if events.len() > MAX_FRAME_EVENTS) {
                return Err((
                    id,
                    ClientError::BadMessage(format!(
                        "an input frame carries at most {MAX_FRAME_EVENTS} events"
                    )),
                ));
            }
            if too_long {
                return Err((
                    id,
                    ClientError::BadMessage(format!(
                        "a name or id is longer than {max_string_len} characters"
                    )),
                ));
            }
            Ok((id, msg))
        }
        Err(err) => {
            let id = serde_json::from_str::<IdOnly>(text).ok().and_then(|m| m.id);
            Err((id, ClientError::BadMessage(err.to_string())))
        }
    }
}

/// `result.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Accepted,
    Rejected,
}

/// A message to a client. Borrowed fields keep serialization free of copies.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg<'a> {
    Welcome {
        user: &'a str,
        server_time: u64,
        heartbeat_ms: u64,
    },
    Snapshot {
        room: &'a str,
        seq: u64,
        top: &'a [Entry],
        me: Option<Standing>,
    },
    Diff {
        room: &'a str,
        seq: u64,
        /// When the room sent it (server clock, Unix ms): lets a client measure delivery.
        server_time: u64,
        #[serde(flatten)]
        diff: &'a Diff,
    },
    Left {
        room: &'a str,
    },
    Around {
        room: &'a str,
        rows: &'a [Entry],
    },
    GameStarted {
        session: &'a str,
        campaign: &'a str,
        server_time: u64,
        min_duration_ms: u64,
        max_duration_ms: u64,
        /// `claimed` or `counted`.
        scoring: &'a str,
        /// A counted game's seed, signed into its session, for games whose rules use chance.
        #[serde(skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
        /// How often a counted game should send its `input` frames.
        #[serde(skip_serializing_if = "Option::is_none")]
        input_flush_ms: Option<u64>,
    },
    Result {
        status: ResultStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
        /// The session decided; absent when the token named none (forged or malformed).
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<&'a str>,
        /// The score decided: the submitted one, or in a counted game the server's count.
        score: u64,
        /// A counted game's claim: what the submit said.
        #[serde(skip_serializing_if = "Option::is_none")]
        claimed: Option<u64>,
        best: Option<u64>,
        rank: Option<u64>,
    },
    Pong {
        server_time: u64,
    },
    /// An operator's message to the players (`POST /admin/announce`).
    Announce {
        text: &'a str,
        server_time: u64,
    },
    Error {
        code: &'static str,
        message: String,
    },
}

impl<'a> ServerMsg<'a> {
    pub fn error(err: &ClientError) -> Self {
        ServerMsg::Error {
            code: err.code(),
            message: err.to_string(),
        }
    }

    /// The label for `podium_ws_messages_out_total{type}`.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMsg::Welcome { .. } => "welcome",
            ServerMsg::Snapshot { .. } => "snapshot",
            ServerMsg::Diff { .. } => "diff",
            ServerMsg::Left { .. } => "left",
            ServerMsg::Around { .. } => "around",
            ServerMsg::GameStarted { .. } => "game_started",
            ServerMsg::Result { .. } => "result",
            ServerMsg::Pong { .. } => "pong",
            ServerMsg::Announce { .. } => "announce",
            ServerMsg::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct Outbound<'a, 'b> {
    #[serde(flatten)]
    msg: &'b ServerMsg<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    re: Option<&'b MsgId>,
}

/// Serializes a server message once, ready to be shared by every recipient.
pub fn encode(msg: &ServerMsg<'_>, re: Option<&MsgId>) -> ByteString {
    // Serializing these types cannot fail: every map key is a string and no Serialize impl
    // of ours returns an error.
    let json = serde_json::to_string(&Outbound { msg, re }).expect("server messages serialize");
    ByteString::from(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_client_message_and_keeps_the_id() {
        let (id, msg) = parse(r#"{"type":"join","room":"demo/global","id":7}"#, 128).unwrap();
        assert_eq!(id, Some(MsgId::Num(7)));
        assert_eq!(
            msg,
            ClientMsg::Join {
                room: "demo/global".into()
            }
        );
        let (_, msg) = parse(r#"{"type":"submit","session":"s","score":12}"#, 128).unwrap();
        assert_eq!(
            msg,
            ClientMsg::Submit {
                session: "s".into(),
                score: 12
            }
        );
        assert_eq!(parse(r#"{"type":"ping"}"#, 128).unwrap().1, ClientMsg::Ping);
        let (_, msg) = parse(
            r#"{"type":"input","session":"s","seq":3,"events":[[120,"tap"],[-4,"jump"]]}"#,
            128,
        )
        .unwrap();
        assert_eq!(
            msg,
            ClientMsg::Input {
                session: "s".into(),
                seq: 3,
                events: vec![(120, "tap".into()), (-4, "jump".into())]
            }
        );
    }

    #[test]
    fn bad_frames_become_bad_message_with_the_id_when_readable() {
        for text in [
            "nope",
            "{}",
            r#"{"type":"fly"}"#,
            r#"{"type":"submit","session":"s","score":-1}"#,
            r#"{"type":"input","session":"s","seq":-1,"events":[]}"#,
            r#"{"type":"input","session":"s","seq":0,"events":[[1.5,"tap"]]}"#,
            r#"{"type":"input","session":"s","seq":0,"events":[["tap",1]]}"#,
            r#"{"type":"input","session":"s","seq":0}"#,
        ] {
            let (_, err) = parse(text, 128).unwrap_err();
            assert_eq!(err.code(), "bad_message", "{text}");
        }
        let many: Vec<String> = (0..=MAX_FRAME_EVENTS)
            .map(|i| format!(r#"[{i},"tap"]"#))
            .collect();
        let frame = format!(
            r#"{{"type":"input","session":"s","seq":0,"events":[{}]}}"#,
            many.join(",")
        );
        assert_eq!(parse(&frame, 128).unwrap_err().1.code(), "bad_message");
        let (id, _) = parse(r#"{"type":"fly","id":"a1"}"#, 128).unwrap_err();
        assert_eq!(id, Some(MsgId::Str("a1".into())));
        let (_, err) = parse(r#"{"type":"join","room":"xxxxxxxxxx"}"#, 4).unwrap_err();
        assert_eq!(err.code(), "bad_message");
        let at_most = format!(r#"{{"type":"submit","session":"s","score":{MAX_SCORE}}}"#);
        assert!(parse(&at_most, 128).is_ok());
        for past in [MAX_SCORE + 1, u64::MAX] {
            let frame = format!(r#"{{"type":"submit","session":"s","score":{past},"id":9}}"#);
            let (id, err) = parse(&frame, 128).unwrap_err();
            assert_eq!((id, err.code()), (Some(MsgId::Num(9)), "bad_message"));
        }
    }

    #[test]
    fn replies_echo_the_id_as_re() {
        let text = encode(&ServerMsg::Pong { server_time: 5 }, Some(&MsgId::Num(3)));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, serde_json::json!({"type":"pong","server_time":5,"re":3}));
    }
}
