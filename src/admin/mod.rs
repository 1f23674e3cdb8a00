//! The admin API, `/admin/*`: what operators run a campaign with. Every route takes an
//! authenticated [`Admin`] (see [`auth`]), answers JSON, refuses a bad body with 400
//! `bad_message` naming the field, and records what it changed in the audit log before it
//! answers. Changes reach the other instances through the ClusterBus.

pub mod auth;
mod body;
pub mod campaigns;
mod players;
mod review;

use std::sync::Arc;

use actix_web::web;
use podium_actors::domain::clock::now_ms;
use podium_actors::domain::error::ClientError;
use podium_actors::engine::Engine;
use serde_json::Value;

pub use auth::{Admin, AdminAuth};

pub fn configure(cfg: &mut web::ServiceConfig) {
    use crate::routes::resource;
    cfg.service(
        resource("/admin/campaigns", "GET, POST")
            .route(web::get().to(campaigns::list))
            .route(web::post().to(campaigns::create)),
    )
    .service(
        resource("/admin/campaigns/{name}", "GET, PATCH")
            .route(web::get().to(campaigns::show))
            .route(web::patch().to(campaigns::update)),
    )
    .service(
        resource("/admin/campaigns/{name}/close", "POST").route(web::post().to(campaigns::close)),
    )
    .service(
        resource("/admin/campaigns/{name}/results.csv", "GET")
            .route(web::get().to(campaigns::results_csv)),
    )
    .service(
        resource("/admin/campaigns/{name}/rebuild", "POST")
            .route(web::post().to(campaigns::rebuild)),
    )
    .service(
        resource("/admin/campaigns/{name}/boards/{board}/reset", "POST")
            .route(web::post().to(campaigns::reset)),
    )
    .service(
        resource("/admin/campaigns/{name}/boards/scores/{user}", "DELETE")
            .route(web::delete().to(campaigns::remove_scores)),
    )
    .service(resource("/admin/users/{user}", "GET").route(web::get().to(players::show)))
    .service(
        resource("/admin/users/{user}/ban", "POST, DELETE")
            .route(web::post().to(players::ban))
            .route(web::delete().to(players::unban)),
    )
    .service(resource("/admin/users/{user}/kick", "POST").route(web::post().to(players::kick)))
    .service(resource("/admin/bans", "GET").route(web::get().to(players::bans)))
    .service(resource("/admin/announce", "POST").route(web::post().to(players::announce)))
    .service(resource("/admin/instances", "GET").route(web::get().to(players::instances)))
    .service(resource("/admin/audit", "GET").route(web::get().to(players::audit)))
    .service(resource("/admin/flagged", "GET").route(web::get().to(review::flagged)))
    .service(resource("/admin/sessions/{id}", "GET").route(web::get().to(review::session)))
    .service(
        resource("/admin/flagged/{session}/dismiss", "POST").route(web::post().to(review::dismiss)),
    );
}

/// Records an admin action in the audit log and the logs/metrics. The action is done by
/// then: an audit write that fails is logged loudly rather than undoing it.
async fn audited(
    engine: &Arc<Engine>,
    admin: &Admin,
    action: &'static str,
    target: &str,
    body: Value,
) {
    podium_actors::telemetry::admin_action(action, &admin.actor, target);
    let store = &engine.gateway.store;
    if let Err(err) = store
        .audit(&admin.actor, action, target, &body, now_ms())
        .await
    {
        tracing::error!(%err, action, target, actor = %admin.actor, "could not write the audit log");
    }
}

/// Rows a listing answers at most, and by default.
const MAX_LIMIT: usize = 500;
const DEFAULT_LIMIT: usize = 50;

/// A listing's `limit`: 1 to [`MAX_LIMIT`].
fn limit(raw: Option<usize>) -> Result<usize, ClientError> {
    match raw.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ClientError::BadMessage(format!(
            "limit: expected 1 to {MAX_LIMIT}"
        ))),
    }
}
