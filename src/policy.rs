//! What every HTTP answer carries and which origins may call: security headers on every
//! answer (the game page passes the Content-Security-Policy), and CORS for the origins of
//! `CORS_ALLOWED_ORIGINS` (empty: same-origin only). A WebSocket upgrade from a browser page
//! of another origin is refused with 403 when the list is set, so another site cannot open
//! sockets in its visitors' names.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse, ResponseError};
use podium_actors::domain::error::ClientError;

/// The page's own scripts, styles and sockets only; no framing by other sites.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Origins allowed to call from a browser, as configured.
pub struct Origins(pub Arc<Vec<String>>);

/// Whether `origin` is the server's own (the `Host` the request came to).
fn same_origin(req: &ServiceRequest, origin: &str) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let allowed = req
        .app_data::<web::Data<Origins>>()
        .map(|o| o.0.clone())
        .unwrap_or_default();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let listed = origin
        .as_deref()
        .is_some_and(|o| allowed.iter().any(|a| a == o));
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|u| u.to_str().ok())
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if is_upgrade && !allowed.is_empty() {
        if let Some(o) = origin.as_deref() {
            if !listed && !same_origin(&req, o) {
                podium_actors::telemetry::connection_refused("origin_not_allowed");
                let res = ClientError::Forbidden.error_response();
                return Ok(req.into_response(res).map_into_right_body());
            }
        }
    }
    // A preflight from an allowed origin is answered here.
    if listed && req.method() == actix_web::http::Method::OPTIONS {
        let mut res = HttpResponse::NoContent().finish();
        cors(res.headers_mut(), origin.as_deref().unwrap_or_default());
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        secure(h);
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if listed {
        cors(headers, origin.as_deref().unwrap_or_default());
    }
    secure(headers);
    Ok(res.map_into_left_body())
}

fn cors(headers: &mut actix_web::http::header::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

fn secure(headers: &mut actix_web::http::header::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
}
