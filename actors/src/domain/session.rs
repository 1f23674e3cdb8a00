//! Game sessions: the server starts a game and hands the client a token it signed
//! (HMAC-SHA256), so the start time, the player and the campaign are the server's word, never
//! the client's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::campaign::Limits;
use super::error::ClientError;
use super::ids::{CampaignId, Region, UserId};

/// What a session token proves: the server started this game for this player and campaign at
/// `started_ms` (server clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameSession {
    #[serde(rename = "s")]
    pub id: String,
    #[serde(rename = "u")]
    pub user: UserId,
    #[serde(rename = "c")]
    pub campaign: CampaignId,
    #[serde(rename = "t")]
    pub started_ms: u64,
    /// The player's region when the game started: the result counts on that region's board.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// Where this session is decided, fixed when the game starts: `false` by the store's
    /// primary (Redis, or memory), `true` straight in PostgreSQL because the game started while
    /// Redis was unreachable. One home per session is what keeps its decision single: neither
    /// side ever decides a session the other may already hold.
    #[serde(rename = "f", default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    /// The campaign's limits when the game started: the submit is judged by these, wherever
    /// and whenever it arrives. Absent in tokens signed before limits were carried; those are
    /// judged by the campaign's limits in force.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Set for a counted game: its score is the server's count of its input events, and this
    /// is the seed its client was given (for games whose rules use chance).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
}

impl GameSession {
    /// A new game, started at `started_ms` by the server's clock, under an id of 128 random
    /// bits: unguessable, so one player cannot collide with another's session.
    pub fn start(
        user: UserId,
        campaign: CampaignId,
        region: Option<Region>,
        started_ms: u64,
        fallback: bool,
        limits: Limits,
        counted: bool,
    ) -> Self {
        Self {
            id: random_hex(16),
            user,
            campaign,
            started_ms,
            region,
            fallback,
            limits: Some(limits),
            seed: counted.then(rand::random),
        }
    }
}

/// Signs and checks session tokens: `base64url(json) "." base64url(hmac_sha256(json))`.
pub struct SessionSigner {
    mac: Hmac<Sha256>,
}

impl SessionSigner {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC takes keys of any length, so this cannot fail.
        Self {
            mac: Hmac::new_from_slice(secret).expect("hmac accepts any key length"),
        }
    }

    pub fn sign(&self, session: &GameSession) -> String {
        let body = B64.encode(serde_json::to_vec(session).expect("sessions serialize"));
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    pub fn verify(&self, token: &str) -> Result<GameSession, ClientError> {
        let (body, sig) = token
            .split_once('.')
            .ok_or(ClientError::BadSession("malformed session token"))?;
        let sig = B64
            .decode(sig)
            .map_err(|_| ClientError::BadSession("malformed session token"))?;
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| ClientError::BadSession("bad session signature"))?;
        let json = B64
            .decode(body)
            .map_err(|_| ClientError::BadSession("malformed session token"))?;
        serde_json::from_slice(&json)
            .map_err(|_| ClientError::BadSession("malformed session token"))
    }
}

/// `bytes` random bytes, hex.
fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    let mut hex = String::with_capacity(bytes * 2);
    for b in buf {
        hex.push(HEX[usize::from(b >> 4)] as char);
        hex.push(HEX[usize::from(b & 0xF)] as char);
    }
    hex
}

/// A random 32-byte secret, hex, for a key the operator did not set.
pub fn random_secret() -> String {
    random_hex(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_round_trip_and_refuse_forgery() {
        let s = SessionSigner::new(b"k");
        let session = GameSession {
            id: "abc".into(),
            user: UserId::parse("bob").unwrap(),
            campaign: CampaignId::new("demo"),
            started_ms: 5,
            region: None,
            fallback: false,
            limits: Some(crate::domain::campaign::CampaignRules::default().limits()),
            seed: Some(7),
        };
        let token = s.sign(&session);
        assert_eq!(s.verify(&token).unwrap(), session);
        let forged = SessionSigner::new(b"other").sign(&session);
        assert_eq!(
            s.verify(&forged).unwrap_err(),
            ClientError::BadSession("bad session signature")
        );
        assert!(s.verify("garbage").is_err());
    }

    #[test]
    fn started_sessions_get_distinct_ids() {
        let start = || {
            GameSession::start(
                UserId::parse("a").unwrap(),
                CampaignId::new("c"),
                None,
                1,
                false,
                crate::domain::campaign::CampaignRules::default().limits(),
                false,
            )
        };
        let (a, b) = (start(), start());
        assert_eq!(a.id.len(), 32);
        assert_ne!(a.id, b.id);
    }
}
