//! Every HTTP answer counted, timed and logged by its route's pattern, so `/admin/players/{id}`
//! is one series however many players are looked up; a path no route matches is `unmatched`.
//! Outermost of the middlewares, so refusals made before routing (over the cap, a foreign
//! origin) are counted like any answer.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;
use podium_actors::telemetry;

pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    // Computed from the app's routes, not from the routing of this request: it is known even
    // for a request refused before it reached its route.
    let route = req.match_pattern();
    let client = req.peer_addr().map(|a| a.ip());
    let res = next.call(req).await;
    let status = match &res {
        Ok(res) => res.status().as_u16(),
        Err(err) => err.as_response_error().status_code().as_u16(),
    };
    telemetry::http_request(&telemetry::HttpRequest {
        method: method.as_str(),
        route: route.as_deref(),
        path: &path,
        status,
        took: started.elapsed(),
        client,
    });
    res
}
