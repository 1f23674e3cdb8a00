//! Player tokens: JWTs checked with jsonwebtoken, the algorithm pinned by configuration, so a
//! token signed any other way (or with `none`) is refused.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::ClientError;
use super::ids::{Region, UserId};

/// The one algorithm a server accepts (`JWT_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// A shared secret; the only one with which the server can also mint dev tokens.
    HS256,
    /// An RSA public key (PEM).
    RS256,
    /// A P-256 public key (PEM).
    ES256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwtAlgorithm {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        [
            JwtAlgorithm::HS256,
            JwtAlgorithm::RS256,
            JwtAlgorithm::ES256,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or(())
    }
}

/// What a token must carry besides a valid signature.
#[derive(Debug, Clone, Default)]
pub struct TokenRules {
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`.
    pub leeway_secs: u64,
    /// Lifetime of the tokens [`TokenVerifier::mint_dev_token`] makes.
    pub dev_ttl_secs: u64,
}

/// Claims podium reads from a player token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    /// Optional: the player's region, for the `region:<code>` boards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Who a valid token names, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub region: Option<Region>,
    /// `exp` plus the leeway, Unix seconds: a socket authenticated with this token is closed
    /// then.
    pub valid_until_secs: u64,
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
    /// `key` is the shared secret for HS256 and the PEM public key for RS256 and ES256.
    pub fn new(
        algorithm: JwtAlgorithm,
        key: &[u8],
        rules: &TokenRules,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let (decoding, dev_signer) = match algorithm {
            JwtAlgorithm::HS256 => (
                DecodingKey::from_secret(key),
                Some(EncodingKey::from_secret(key)),
            ),
            JwtAlgorithm::RS256 => (DecodingKey::from_rsa_pem(key)?, None),
            JwtAlgorithm::ES256 => (DecodingKey::from_ec_pem(key)?, None),
        };
        let alg = algorithm.jsonwebtoken();
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = rules.leeway_secs;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        match &rules.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &rules.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Self {
            key: decoding,
            validation,
            dev_signer,
            dev_ttl_secs: rules.dev_ttl_secs,
        })
    }

    /// The claims of a token with a valid signature and times, or why it is refused.
    fn decode<C: serde::de::DeserializeOwned>(&self, token: &str) -> Result<C, ClientError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<C>(token, &self.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                ClientError::Unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
                    ErrorKind::InvalidAlgorithm => "token algorithm not accepted",
                    ErrorKind::InvalidSignature => "bad token signature",
                    ErrorKind::MissingRequiredClaim(_) => "token lacks exp or sub",
                    ErrorKind::InvalidAudience => "token audience not accepted",
                    ErrorKind::InvalidIssuer => "token issuer not accepted",
                    _ => "malformed token",
                })
            })
    }

    /// The player a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Identity, ClientError> {
        let claims: Claims = self.decode(token)?;
        let region = match claims.region.as_deref() {
            None => None,
            Some(raw) => Some(Region::parse(raw).ok_or(ClientError::Unauthorized(
                "region must be 1 to 16 of a-z, 0-9 and -",
            ))?),
        };
        Ok(Identity {
            user: UserId::parse(&claims.sub)?,
            region,
            valid_until_secs: claims.exp.saturating_add(self.validation.leeway),
        })
    }

    /// Whether a valid token's `claim` is `admin`, with the `sub` it names: how an operator
    /// signs in with the same identity provider as the players.
    pub fn admin(&self, token: &str, claim: &str) -> Result<(UserId, bool), ClientError> {
        let claims: serde_json::Map<String, serde_json::Value> = self.decode(token)?;
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let user = UserId::parse(sub)?;
        let is_admin = claims.get(claim).and_then(|v| v.as_str()) == Some("admin");
        Ok((user, is_admin))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_tokens_verify_and_tampering_is_caught() {
        let rules = TokenRules {
            dev_ttl_secs: 60,
            ..TokenRules::default()
        };
        let v = TokenVerifier::new(JwtAlgorithm::HS256, b"0123456789abcdef0123", &rules).unwrap();
        let now = super::super::clock::now_ms() / 1000;
        let token = v
            .mint_dev_token(&UserId::parse("alice").unwrap(), now)
            .unwrap();
        assert_eq!(v.verify(&token).unwrap().user.as_str(), "alice");
        let mut bad = token.clone();
        bad.push('x');
        assert_eq!(v.verify(&bad).unwrap_err().code(), "unauthorized");
    }

    #[test]
    fn algorithm_names_parse_exactly() {
        assert_eq!("RS256".parse(), Ok(JwtAlgorithm::RS256));
        assert!("none".parse::<JwtAlgorithm>().is_err());
        assert!("hs256".parse::<JwtAlgorithm>().is_err());
    }
}
