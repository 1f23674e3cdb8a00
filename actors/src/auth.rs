//! Player tokens (JWT, checked with jsonwebtoken, algorithm pinned by config) and game
//! session tokens (HMAC-SHA256 signed by the server, so the client's clock and claims are
//! never trusted).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::{ConfigError, JwtConfig};
use crate::error::ClientError;
use crate::ids::{CampaignId, Region, UserId};

/// Claims podium reads from a player token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    /// Optional: the player's region, for the `region:<code>` boards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub region: Option<Region>,
}

/// Checks player tokens. Built once at start; cheap to share.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    /// Present only with HS256, the one algorithm where the server can mint dev tokens.
    dev_signer: Option<EncodingKey>,
    dev_ttl_secs: u64,
}

impl TokenVerifier {
    /// `generated_secret` is used when HS256 has no configured secret (dev mode only).
    pub fn new(config: &JwtConfig, generated_secret: Option<&str>) -> Result<Self, ConfigError> {
        let bad = |key: &str, expected: &str, got: String| ConfigError {
            key: key.into(),
            expected: expected.into(),
            got,
        };
        let (alg, key, dev_signer) = match config.algorithm.as_str() {
            "HS256" => {
                let secret = config
                    .secret
                    .as_deref()
                    .or(generated_secret)
                    .ok_or_else(|| {
                        bad(
                            "JWT_SECRET",
                            "a secret of at least 16 characters (required outside dev mode)",
                            String::new(),
                        )
                    })?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                    Some(EncodingKey::from_secret(secret.as_bytes())),
                )
            }
            alg @ ("RS256" | "ES256") => {
                let raw = config.public_key.as_deref().ok_or_else(|| {
                    bad(
                        "JWT_PUBLIC_KEY",
                        "a PEM public key or a path to one",
                        String::new(),
                    )
                })?;
                let pem = if raw.trim_start().starts_with("-----BEGIN") {
                    raw.to_owned()
                } else {
                    std::fs::read_to_string(raw).map_err(|e| {
                        bad(
                            "JWT_PUBLIC_KEY",
                            "a PEM public key or a readable path to one",
                            format!("{raw}: {e}"),
                        )
                    })?
                };
                let parsed = if alg == "RS256" {
                    DecodingKey::from_rsa_pem(pem.as_bytes()).map(|k| (Algorithm::RS256, k))
                } else {
                    DecodingKey::from_ec_pem(pem.as_bytes()).map(|k| (Algorithm::ES256, k))
                };
                let (alg, key) = parsed.map_err(|e| {
                    bad(
                        "JWT_PUBLIC_KEY",
                        &format!("a valid {alg} public key in PEM"),
                        e.to_string(),
                    )
                })?;
                (alg, key, None)
            }
            other => {
                return Err(bad(
                    "JWT_ALGORITHM",
                    "HS256, RS256 or ES256",
                    other.to_owned(),
                ))
            }
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = config.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            key,
            validation,
            dev_signer,
            dev_ttl_secs: config.dev_token_ttl_secs,
        })
    }

    /// The player a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Identity, ClientError> {
        use jsonwebtoken::errors::ErrorKind;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
                ClientError::Unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
                    ErrorKind::InvalidSignature => "bad token signature",
                    ErrorKind::MissingRequiredClaim(_) => "token lacks exp or sub",
                    ErrorKind::InvalidAudience => "token audience not accepted",
                    ErrorKind::InvalidIssuer => "token issuer not accepted",
                    _ => "malformed token",
                })
            })?;
        let region = match data.claims.region.as_deref() {
            None => None,
            Some(raw) => Some(Region::parse(raw).ok_or(ClientError::Unauthorized(
                "region must be 1 to 16 of a-z, 0-9 and -",
            ))?),
        };
        Ok(Identity {
            user: UserId::parse(&data.claims.sub)?,
            region,
        })
    }

    /// Mints a short-lived player token for `POST /dev/token`; `None` when the server holds
    /// only a public key.
    pub fn mint_dev_token(&self, user: &UserId, now_secs: u64) -> Option<String> {
        let signer = self.dev_signer.as_ref()?;
        let claims = Claims {
            sub: user.to_string(),
            exp: now_secs + self.dev_ttl_secs,
            region: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, signer).ok()
    }
}

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

/// A random 32-byte secret, hex, for a key the operator did not set.
pub fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs_config() -> JwtConfig {
        JwtConfig {
            secret: Some("0123456789abcdef0123".into()),
            ..JwtConfig::default()
        }
    }

    #[test]
    fn dev_tokens_verify_and_tampering_is_caught() {
        let v = TokenVerifier::new(&hs_config(), None).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = v
            .mint_dev_token(&UserId::parse("alice").unwrap(), now)
            .unwrap();
        assert_eq!(v.verify(&token).unwrap().user.as_str(), "alice");
        let mut bad = token.clone();
        bad.push('x');
        assert_eq!(v.verify(&bad).unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn session_tokens_round_trip_and_refuse_forgery() {
        let s = SessionSigner::new(b"k");
        let session = GameSession {
            id: "abc".into(),
            user: UserId::parse("bob").unwrap(),
            campaign: CampaignId::new("demo"),
            started_ms: 5,
            region: None,
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
    fn a_missing_secret_outside_dev_mode_names_the_key() {
        let err = TokenVerifier::new(&JwtConfig::default(), None)
            .err()
            .unwrap();
        assert_eq!(err.key, "JWT_SECRET");
    }
}
