//! HTTP routes: the WebSocket upgrade, health, readiness, metrics and dev tokens. Every error
//! is a [`ClientError`] rendered as `{"error":{"code","message"}}`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use metrics_exporter_prometheus::PrometheusHandle;
use podium_actors::connection;
use podium_actors::domain::clock::now_ms;
use podium_actors::domain::error::ClientError;
use podium_actors::domain::ids::{RoomId, UserId};
use podium_actors::domain::window::Verdict;
use podium_actors::engine::Engine;
use podium_actors::telemetry;
use serde::Deserialize;
use serde_json::json;

use crate::public::ReadCache;
use crate::views::{Health, HealthIssue, HealthMetrics};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // A malformed query string is a `bad_message` like any other bad input.
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ClientError::BadMessage(err.to_string()).into()),
    )
    .service(get("/ws").to(connection::upgrade))
    .service(get("/health").to(health))
    .service(get("/ready").to(ready))
    .service(get("/metrics").to(metrics))
    .service(get("/openapi.json").to(|| async {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(crate::openapi::document())
    }))
    .service(resource("/dev/token", "POST").route(web::post().to(dev_token)))
    .service(get("/leaderboard/{campaign}/{board}").to(leaderboard))
    .configure(crate::public::configure)
    .configure(crate::admin::configure)
    .service(get("/").to(|| page(INDEX_HTML, "text/html; charset=utf-8")))
    .service(get("/app.js").to(|| page(APP_JS, "text/javascript; charset=utf-8")))
    .service(get("/style.css").to(|| page(STYLE_CSS, "text/css; charset=utf-8")))
    .service(get("/console").to(|| page(CONSOLE_HTML, "text/html; charset=utf-8")))
    .service(get("/console/console.js").to(|| page(CONSOLE_JS, "text/javascript; charset=utf-8")))
    .service(get("/console/console.css").to(|| page(CONSOLE_CSS, "text/css; charset=utf-8")))
    .default_service(web::to(|| async { ClientError::NotFound.error_response() }));
}

/// Largest request body any route takes.
const MAX_BODY: usize = 4_096;

/// A path that exists, serving the methods `allow` lists (`"GET, POST"`): another method is
/// 405 `method_not_allowed` with that `Allow` header, not 404.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow))
            .json(
                json!({"error": {"code": "method_not_allowed", "message": "this path does not take that method"}}),
            )
    }))
}

/// A path served on GET.
fn get(path: &str) -> GetRoute {
    GetRoute(resource(path, "GET"))
}

struct GetRoute(actix_web::Resource);

impl GetRoute {
    fn to<F, Args>(self, handler: F) -> actix_web::Resource
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        self.0.route(web::get().to(handler))
    }
}

/// The JSON error shape for what the framework answers by itself (a body over the limit, a
/// bad header, a timeout): a response that is already JSON is left as it is.
pub fn json_errors<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let is_json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let code = match status.as_u16() {
        400 => "bad_message",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        500..=599 => "internal",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    let (req, res) = res.into_parts();
    let mut res = res.set_body(actix_web::body::BoxBody::new(body));
    res.headers_mut().insert(
        actix_web::http::header::CONTENT_TYPE,
        actix_web::http::header::HeaderValue::from_static("application/json"),
    );
    Ok(ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(req, res).map_into_right_body::<B>(),
    ))
}

// The demo game (web/), compiled in so the binary and the Docker image serve it with nothing
// beside them.
const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");
/// The operator console: a page on the admin API alone (web/console/).
const CONSOLE_HTML: &str = include_str!("../web/console/index.html");
const CONSOLE_JS: &str = include_str!("../web/console/console.js");
const CONSOLE_CSS: &str = include_str!("../web/console/console.css");

async fn page(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .body(body)
}

/// `/health`: the status is the worst of the checks below, each with thresholds from
/// `[health]` in the config (documented in README). Critical answers 503 so a load balancer
/// stops sending players here.
async fn health(engine: web::Data<Arc<Engine>>) -> HttpResponse {
    let stats = &engine.gateway.stats;
    let limits = &engine.config.health;
    let connections = stats.connections.load(Ordering::Relaxed).max(0) as f64;
    let minute = stats.last_minute();
    let error_rate = if minute.messages == 0 {
        0.0
    } else {
        minute.errors as f64 / minute.messages as f64
    };
    let load = connections / engine.config.ws.max_connections as f64;
    let mut status = 0; // 0 healthy, 1 warning, 2 critical
    let mut issues = Vec::new();
    let mut check = |value: f64, warn: f64, crit: f64, what: &'static str| {
        let level = if value >= crit {
            2
        } else if value >= warn {
            1
        } else {
            0
        };
        if level > 0 {
            issues.push(HealthIssue {
                severity: if level == 2 { "critical" } else { "warning" },
                check: what,
                value: Some(value.into()),
                threshold: Some(if level == 2 { crit } else { warn }),
            });
        }
        status = status.max(level);
    };
    check(
        load,
        limits.connections_warning_ratio,
        limits.connections_critical_ratio,
        "connections",
    );
    check(
        error_rate,
        limits.error_rate_warning,
        limits.error_rate_critical,
        "error_rate",
    );
    check(
        minute.average_response_ms,
        limits.response_time_warning_ms,
        limits.response_time_critical_ms,
        "response_time",
    );
    let store = engine.gateway.store.health();
    let (backlog, lag_ms) = store
        .persist
        .as_ref()
        .map_or((0, 0), |p| (p.backlog, p.lag_ms));
    if let Some(persist) = &store.persist {
        let mut warn = |check: &'static str, value: serde_json::Value| {
            issues.push(HealthIssue {
                severity: "warning",
                check,
                value: Some(value),
                threshold: None,
            });
            status = status.max(1);
        };
        if store.redis_down {
            warn(
                "redis_down",
                json!("results go straight to PostgreSQL; boards are rebuilt when Redis returns"),
            );
        }
        if persist.postgres_down {
            warn("postgres_down", json!({"backlog": backlog}));
        }
        if lag_ms >= limits.persist_lag_warning_ms {
            warn(
                "persist_lag",
                json!({"lag_ms": lag_ms, "backlog": backlog, "threshold_ms": limits.persist_lag_warning_ms}),
            );
        }
    }
    if !engine.is_accepting() {
        issues.push(HealthIssue {
            severity: "critical",
            check: "shutting_down",
            value: None,
            threshold: None,
        });
        status = 2;
    }
    let label = ["healthy", "warning", "critical"][status];
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let body = Health {
        status: label.into(),
        timestamp,
        metrics: HealthMetrics {
            total_connections: connections as u64,
            total_users: stats.users.load(Ordering::Relaxed).max(0),
            messages_per_minute: minute.messages,
            average_response_time: minute.average_response_ms,
            error_rate,
            uptime: stats.uptime().as_secs(),
            persist_backlog: backlog,
            persist_lag_ms: lag_ms,
        },
        issues,
    };
    if status == 2 {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// `/ready`: 200 while this instance takes new players, 503 once shutdown began.
async fn ready(engine: web::Data<Arc<Engine>>) -> HttpResponse {
    if engine.is_accepting() {
        HttpResponse::Ok().json(crate::views::Ready { ready: true })
    } else {
        ClientError::ShuttingDown.error_response()
    }
}

async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    telemetry::process();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

#[derive(Deserialize)]
struct PageQuery {
    from: Option<u64>,
    limit: Option<usize>,
}

/// Rows one page may hold.
const MAX_PAGE: usize = 1_000;
/// The highest rank a page may start at: the largest whole number JSON clients hold exactly,
/// and well inside the range Redis takes for an index.
const MAX_RANK: u64 = podium_actors::domain::protocol::MAX_SCORE;

/// `GET /leaderboard/{campaign}/{board}?from=1&limit=50`: a page of a board, ranks from
/// `from` (1-based) down, with the board's size so a client can page in either direction.
/// The first route of its kind, kept as an alias of `GET /api/campaigns/{name}/boards/{board}`
/// (same cache, same answer) for the clients that use it.
async fn leaderboard(
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
    engine: web::Data<Arc<Engine>>,
    cache: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let (campaign, board) = path.into_inner();
    let room = RoomId::parse(&format!("{campaign}/{board}"))?;
    match engine.gateway.campaigns.get(&campaign) {
        None => return Err(ClientError::UnknownRoom("no such campaign")),
        Some(c) if !c.rules.has_board(&room.board) => {
            return Err(ClientError::UnknownRoom(
                "the campaign has no board for that region",
            ))
        }
        Some(_) => {}
    }
    let from = query.from.unwrap_or(1);
    let limit = query.limit.unwrap_or(50);
    if from == 0 || from > MAX_RANK || limit == 0 || limit > MAX_PAGE {
        return Err(ClientError::BadMessage(format!(
            "from is 1 to {MAX_RANK} and limit is 1 to {MAX_PAGE}"
        )));
    }
    crate::public::page(&engine, &cache, room, from - 1, limit).await
}

#[derive(Deserialize)]
struct DevTokenRequest {
    user: String,
}

/// `POST /dev/token {"user":"alice"}`: a short-lived player token, in dev mode only.
/// How long a request body may take to arrive: a client trickling bytes cannot hold a
/// connection and a handler for longer.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request body, at most [`MAX_BODY`] bytes arriving within [`BODY_TIMEOUT`].
pub async fn read_body(mut payload: web::Payload) -> Result<web::BytesMut, ClientError> {
    use futures_util::StreamExt;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ClientError::BadMessage(e.to_string()))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ClientError::PayloadTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or(Err(ClientError::RequestTimeout))
}

async fn dev_token(
    req: HttpRequest,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    if !engine.dev_mode {
        return Err(ClientError::NotFound);
    }
    let body = read_body(payload).await?;
    let ip = connection::client_ip(&req, engine.config.trust_proxy);
    if let Verdict::Refused { .. } = engine.dev_tokens.check(&ip) {
        telemetry::dev_token("rate_limited");
        return Err(ClientError::RateLimited);
    }
    let request: DevTokenRequest =
        serde_json::from_slice(&body).map_err(|e| ClientError::BadMessage(e.to_string()))?;
    let user = UserId::parse(&request.user)
        .map_err(|_| ClientError::BadMessage("user must be 1 to 64 printable characters".into()))?;
    // Only HS256 servers hold a key that can sign; with a public key there is nothing to mint.
    let token = engine
        .gateway
        .verifier
        .mint_dev_token(&user, now_ms() / 1000)
        .ok_or(ClientError::NotFound)?;
    telemetry::dev_token("ok");
    Ok(HttpResponse::Ok().json(crate::views::DevToken {
        token,
        user: user.to_string(),
        expires_in: engine.config.jwt.dev_token_ttl_secs,
    }))
}
