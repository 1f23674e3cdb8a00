//! The one enum of client-facing errors. Each variant has a stable snake_case code (the
//! contract with game clients, listed in docs/PROTOCOL.md), a human message, an HTTP status
//! for the HTTP routes and a WebSocket close code where the error ends the connection.

use serde::Serialize;

/// A client-facing error. The `&'static str` payloads say what exactly was wrong; they are
/// part of the message, never of the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("malformed message: {0}")]
    BadMessage(String),
    #[error("authentication failed: {0}")]
    Unauthorized(&'static str),
    #[error("too many connections for this user")]
    TooManyConnectionsForUser,
    #[error("too many connections from this address")]
    TooManyConnectionsForIp,
    #[error("the server is at capacity, try again shortly")]
    ServerAtCapacity,
    #[error("too many messages, slow down")]
    RateLimited,
    #[error("unknown room: {0}")]
    UnknownRoom(&'static str),
    #[error("too many rooms joined on this connection")]
    TooManyRooms,
    #[error("unknown campaign")]
    UnknownCampaign,
    #[error("the campaign is not open")]
    CampaignClosed,
    #[error("invalid game session: {0}")]
    BadSession(&'static str),
    #[error("this game session was already submitted with another score")]
    AlreadySubmitted,
    /// A counted game's inputs are with the socket that started it.
    #[error(
        "a counted game is played and submitted on the socket that started it; start a new game"
    )]
    WrongSocket,
    #[error("the game ended sooner than the campaign allows")]
    TooFast,
    #[error("the game session expired")]
    TooSlow,
    #[error("score above the campaign's maximum")]
    ScoreTooHigh,
    #[error("score too high for the time played")]
    ScoreRateTooHigh,
    #[error("not found")]
    NotFound,
    /// Valid credentials that do not carry the admin role.
    #[error("these credentials may not do this")]
    Forbidden,
    /// The thing to create exists, or changed since it was read.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("this player is banned")]
    Banned,
    #[error("too many games started this hour for this campaign")]
    TooManyGames,
    #[error("the request body is larger than this route takes")]
    PayloadTooLarge,
    #[error("the request took too long to arrive")]
    RequestTimeout,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A store is briefly out of reach (restarting, loading, failing over): retry the same
    /// message shortly; nothing was decided.
    #[error("briefly unavailable, retry shortly")]
    Unavailable,
    /// The server is holding back work it cannot keep up with (results not yet in PostgreSQL
    /// reached their bound, or every database connection is taken): retry the same message
    /// in a few seconds; nothing was decided.
    #[error("busy, retry in a few seconds")]
    Busy,
    #[error("internal error, try again")]
    Internal,
}

impl ClientError {
    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::BadMessage(_) => "bad_message",
            ClientError::Unauthorized(_) => "unauthorized",
            ClientError::TooManyConnectionsForUser => "too_many_connections_for_user",
            ClientError::TooManyConnectionsForIp => "too_many_connections_for_ip",
            ClientError::ServerAtCapacity => "server_at_capacity",
            ClientError::RateLimited => "rate_limited",
            ClientError::UnknownRoom(_) => "unknown_room",
            ClientError::TooManyRooms => "too_many_rooms",
            ClientError::UnknownCampaign => "unknown_campaign",
            ClientError::CampaignClosed => "campaign_closed",
            ClientError::BadSession(_) => "bad_session",
            ClientError::AlreadySubmitted => "already_submitted",
            ClientError::WrongSocket => "wrong_socket",
            ClientError::TooFast => "too_fast",
            ClientError::TooSlow => "too_slow",
            ClientError::ScoreTooHigh => "score_too_high",
            ClientError::ScoreRateTooHigh => "score_rate_too_high",
            ClientError::NotFound => "not_found",
            ClientError::Forbidden => "forbidden",
            ClientError::Conflict(_) => "conflict",
            ClientError::Banned => "banned",
            ClientError::TooManyGames => "too_many_games",
            ClientError::PayloadTooLarge => "payload_too_large",
            ClientError::RequestTimeout => "request_timeout",
            ClientError::ShuttingDown => "shutting_down",
            ClientError::Unavailable => "unavailable",
            ClientError::Busy => "busy",
            ClientError::Internal => "internal",
        }
    }

    /// The status an HTTP route answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            ClientError::BadMessage(_) => 400,
            ClientError::Unauthorized(_) => 401,
            ClientError::Forbidden | ClientError::Banned => 403,
            ClientError::Conflict(_) => 409,
            ClientError::NotFound | ClientError::UnknownRoom(_) | ClientError::UnknownCampaign => {
                404
            }
            ClientError::TooManyConnectionsForUser
            | ClientError::TooManyConnectionsForIp
            | ClientError::RateLimited
            | ClientError::TooManyGames => 429,
            ClientError::ServerAtCapacity
            | ClientError::ShuttingDown
            | ClientError::Unavailable
            | ClientError::Busy => 503,
            ClientError::Internal => 500,
            ClientError::PayloadTooLarge => 413,
            ClientError::RequestTimeout => 408,
            _ => 422,
        }
    }

    /// Whether the server, not the client, is at fault: what `/health`'s error rate counts.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            ClientError::Internal | ClientError::Unavailable | ClientError::Busy
        )
    }

    /// The JSON body of an HTTP error, `{"error":{"code":..,"message":..}}`.
    pub fn http_body(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }
}

/// WebSocket close codes podium uses, one place so docs and tests agree.
pub mod close {
    /// Normal close.
    pub const NORMAL: u16 = 1000;
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Frame larger than `WS_MAX_PAYLOAD`.
    pub const TOO_BIG: u16 = 1009;
    /// Client too slow to read its frames: the outbound queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// Bad or missing token, or the auth deadline passed.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Silent past the heartbeat timeout, or only pinging past the inactivity timeout.
    pub const TIMEOUT: u16 = 4408;
    /// Too many connections for this user, or rate-limit abuse.
    pub const TOO_MANY: u16 = 4429;
    /// An operator closed the socket; the player may reconnect.
    pub const KICKED: u16 = 4000;
    /// The player is banned.
    pub const BANNED: u16 = 4403;
}

/// A reason carried by a close frame and counted in `podium_ws_closes_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    ClientClosed,
    Shutdown,
    TooBig,
    InvalidPayload,
    SlowConsumer,
    Unauthorized,
    AuthTimeout,
    TokenExpired,
    HeartbeatTimeout,
    Inactive,
    TooManyConnectionsForUser,
    RateLimitAbuse,
    ProtocolError,
    Kicked,
    Banned,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Shutdown => "shutdown",
            CloseReason::TooBig => "too_big",
            CloseReason::InvalidPayload => "invalid_payload",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Unauthorized => "unauthorized",
            CloseReason::AuthTimeout => "auth_timeout",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::HeartbeatTimeout => "heartbeat_timeout",
            CloseReason::Inactive => "inactive",
            CloseReason::TooManyConnectionsForUser => "too_many_connections_for_user",
            CloseReason::RateLimitAbuse => "rate_limit_abuse",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::Kicked => "kicked",
            CloseReason::Banned => "banned",
        }
    }

    pub fn code(self) -> u16 {
        match self {
            CloseReason::ClientClosed => close::NORMAL,
            CloseReason::Shutdown => close::GOING_AWAY,
            CloseReason::TooBig => close::TOO_BIG,
            CloseReason::InvalidPayload => close::INVALID_PAYLOAD,
            CloseReason::SlowConsumer => close::SLOW_CONSUMER,
            CloseReason::Unauthorized | CloseReason::AuthTimeout | CloseReason::TokenExpired => {
                close::UNAUTHORIZED
            }
            CloseReason::HeartbeatTimeout | CloseReason::Inactive => close::TIMEOUT,
            CloseReason::TooManyConnectionsForUser | CloseReason::RateLimitAbuse => close::TOO_MANY,
            CloseReason::ProtocolError => 1002,
            CloseReason::Kicked => close::KICKED,
            CloseReason::Banned => close::BANNED,
        }
    }
}
