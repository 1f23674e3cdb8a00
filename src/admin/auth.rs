//! Who may use `/admin/*`: a request presents `Authorization: Bearer <key>` with a key of
//! `ADMIN_API_KEYS`, or a player-style JWT whose `ADMIN_ROLE_CLAIM` is `admin`. No credentials
//! or a bad key is 401 `unauthorized`, a valid token without the role 403 `forbidden`, with the
//! same message whatever part was wrong. An address that fails too often is refused with 429
//! for the rest of the window, before its credentials are looked at.

use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use podium_actors::config::AdminKey;
use podium_actors::connection::{client_ip, Gateway};
use podium_actors::domain::error::ClientError;
use podium_actors::domain::window::WindowLimiter;
use sha2::{Digest, Sha256};

/// The window failed admin authentications are counted in (`ADMIN_AUTH_FAILURES_PER_MINUTE`).
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Built once at start; shared by every worker.
pub struct AdminAuth {
    /// Whether `/admin/*` exists: a key is configured, or dev mode made one.
    pub enabled: bool,
    /// Each key's name and the SHA-256 of its secret: compared digest to digest, every key
    /// every time, so the time taken says nothing of how close a guess was.
    keys: Vec<(String, [u8; 32])>,
    role_claim: String,
    failures: WindowLimiter<IpAddr>,
    trust_proxy: bool,
}

impl AdminAuth {
    pub fn new(
        keys: &[AdminKey],
        role_claim: &str,
        failures_per_minute: u32,
        trust_proxy: bool,
    ) -> Self {
        Self {
            enabled: !keys.is_empty(),
            keys: keys
                .iter()
                .map(|k| (k.name.clone(), digest(&k.secret)))
                .collect(),
            role_claim: role_claim.into(),
            failures: WindowLimiter::new(FAILURE_WINDOW, failures_per_minute),
            trust_proxy,
        }
    }

    /// The key's name, if `presented` is one of the keys.
    fn key_named(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (name, key) in &self.keys {
            let diff = key
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(name.as_str());
            }
        }
        found
    }

    fn check(&self, req: &HttpRequest, gateway: &Gateway) -> Result<Admin, Refusal> {
        if !self.enabled {
            return Err(Refusal(ClientError::NotFound));
        }
        let ip = client_ip(req, self.trust_proxy);
        if self.failures.is_over(&ip) {
            return Err(Refusal(ClientError::RateLimited));
        }
        let failed = |err: ClientError| {
            self.failures.check(&ip);
            podium_actors::telemetry::admin_auth(err.code());
            Refusal(err)
        };
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let Some(presented) = bearer else {
            return Err(failed(UNAUTHORIZED));
        };
        if let Some(name) = self.key_named(presented) {
            return Ok(Admin {
                actor: format!("key:{name}"),
            });
        }
        match gateway.verifier.admin(presented, &self.role_claim) {
            Ok((user, true)) => Ok(Admin {
                actor: format!("jwt:{user}"),
            }),
            Ok((_, false)) => Err(failed(ClientError::Forbidden)),
            Err(_) => Err(failed(UNAUTHORIZED)),
        }
    }
}

/// One message for every way credentials can be wrong, so a caller learns nothing of which.
const UNAUTHORIZED: ClientError =
    ClientError::Unauthorized("an admin key or an admin token is required");

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// An authenticated operator: what the audit log records as the actor.
pub struct Admin {
    /// `key:<name>` or `jwt:<sub>`.
    pub actor: String,
}

/// Why a request is not an admin's; a 429 says when to try again.
#[derive(Debug)]
pub struct Refusal(ClientError);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.0.error_response();
        if self.0 == ClientError::RateLimited {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(FAILURE_WINDOW.as_secs()),
            );
        }
        response
    }
}

impl FromRequest for Admin {
    type Error = Refusal;
    type Future = Ready<Result<Self, Refusal>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let auth = req.app_data::<web::Data<AdminAuth>>();
        let gateway = req.app_data::<web::Data<Arc<Gateway>>>();
        ready(match (auth, gateway) {
            (Some(auth), Some(gateway)) => auth.check(req, gateway),
            _ => Err(Refusal(ClientError::Internal)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_whole_and_only_whole() {
        let auth = AdminAuth::new(
            &[AdminKey {
                name: "ops".into(),
                secret: "k".repeat(24),
            }],
            "role",
            10,
            false,
        );
        assert_eq!(auth.key_named(&"k".repeat(24)), Some("ops"));
        assert_eq!(auth.key_named(&"k".repeat(23)), None);
        assert_eq!(auth.key_named(&"k".repeat(25)), None);
    }
}
