//! `/admin/users`, `/admin/bans`, `/admin/announce`, `/admin/instances`, `/admin/audit`: what
//! operators do to players and see of the cluster. A ban is written to the store first, then
//! carried by the ClusterBus, which closes the player's sockets on every instance (4403) and
//! has each instance re-read the bans; `auth`, `start_game` and submits of a banned player are
//! refused with `banned` from then on.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use podium_actors::cluster_bus::{Event, Instances, Publish};
use podium_actors::connection_registry::Sockets;
use podium_actors::domain::clock::now_ms;
use podium_actors::domain::error::ClientError;
use podium_actors::domain::ids::{BoardKey, BoardKind, CampaignId, UserId};
use podium_actors::domain::operator::Ban;
use podium_actors::domain::protocol::{encode, ServerMsg};
use podium_actors::engine::Engine;
use podium_actors::store::counters::SocketPlace;
use serde::Deserialize;
use serde_json::Value;

use super::body::Fields;
use super::{audited, limit, Admin};
use crate::public::user_of;
use crate::public::ReadCache;
use crate::views::{self, BanView, Flag, ResultView, SocketView};

/// Latest results and flags a player's page shows.
const USER_PAGE_ROWS: usize = 20;

/// Longest ban reason and announcement.
const MAX_REASON: usize = 200;
const MAX_ANNOUNCE: usize = 500;

/// Text of 1 to `max` characters, or the field's error.
fn bounded(field: &str, text: Option<String>, max: usize) -> Result<String, ClientError> {
    match text {
        Some(t) if !t.trim().is_empty() && t.chars().count() <= max => Ok(t),
        _ => Err(ClientError::BadMessage(format!(
            "{field}: expected 1 to {max} characters"
        ))),
    }
}

/// `POST /admin/users/{user}/ban {"reason","until"}`: `until` RFC 3339, or null (the default)
/// for good. Banning a banned player replaces the ban.
pub async fn ban(
    admin: Admin,
    user: web::Path<String>,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
    reads: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let user = user_of(&user)?;
    let raw = Fields::read(payload, &["reason", "until"], false).await?;
    let body = Fields::of(&raw)?;
    let reason = bounded("reason", body.text("reason")?, MAX_REASON)?;
    let now = now_ms();
    let until_ms = body.time("until")?.flatten();
    if until_ms.is_some_and(|u| u <= now) {
        return Err(ClientError::BadMessage(
            "until: expected a time in the future, or null".into(),
        ));
    }
    let ban = Ban {
        user: user.clone(),
        reason,
        until_ms,
        by: admin.actor.clone(),
        at_ms: now,
    };
    let gateway = &engine.gateway;
    gateway
        .store
        .ban(&ban, &gateway.campaigns.boards(now))
        .await?;
    gateway.bans.put(ban.clone());
    let _ = engine
        .bus
        .send(Publish(Event::Ban { user: user.clone() }))
        .await;
    reads.forget();
    audited(&engine, &admin, "ban", user.as_str(), raw).await;
    Ok(HttpResponse::Ok().json(BanView::of(&ban)))
}

/// `DELETE /admin/users/{user}/ban`: 404 when the player is not banned.
pub async fn unban(
    admin: Admin,
    user: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
    reads: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let user = user_of(&user)?;
    let gateway = &engine.gateway;
    let boards = gateway.campaigns.boards(now_ms());
    if !gateway.store.unban(&user, &boards).await? {
        return Err(ClientError::NotFound);
    }
    gateway.bans.lift(&user);
    let _ = engine
        .bus
        .send(Publish(Event::Unban { user: user.clone() }))
        .await;
    reads.forget();
    audited(&engine, &admin, "unban", user.as_str(), Value::Null).await;
    Ok(HttpResponse::Ok().json(views::Unbanned {
        user: user.to_string(),
        banned: false,
    }))
}

/// `GET /admin/bans`: the bans in force, newest first.
pub async fn bans(_: Admin, engine: web::Data<Arc<Engine>>) -> Result<HttpResponse, ClientError> {
    let all = engine.gateway.store.bans(now_ms()).await?;
    Ok(HttpResponse::Ok().json(views::BanList {
        bans: all.iter().map(BanView::of).collect(),
    }))
}

/// `POST /admin/users/{user}/kick {"reason"}`: closes the player's sockets on every instance
/// with 4000 `kicked`; they may reconnect.
pub async fn kick(
    admin: Admin,
    user: web::Path<String>,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let user = user_of(&user)?;
    let raw = Fields::read(payload, &["reason"], false).await?;
    let body = Fields::of(&raw)?;
    let reason = bounded("reason", body.text("reason")?, MAX_REASON)?;
    let published = engine
        .bus
        .send(Publish(Event::Kick { user: user.clone() }))
        .await
        .unwrap_or(false);
    audited(&engine, &admin, "kick", user.as_str(), raw).await;
    Ok(HttpResponse::Ok().json(views::Kicked {
        user: user.to_string(),
        reason,
        every_instance: published,
    }))
}

/// `user`'s sockets on every instance: this one's from its registry (whole even while Redis is
/// away), the others' from their places in the shared per-user set. Unreadable places leave
/// only this instance's.
async fn sockets_everywhere(engine: &Engine, user: &UserId) -> Vec<SocketPlace> {
    let gateway = &engine.gateway;
    let mut all = gateway
        .connections
        .send(Sockets { user: user.clone() })
        .await
        .unwrap_or_default();
    match gateway.store.counters().sockets(user.as_str()).await {
        Ok(shared) => all.extend(shared.into_iter().filter(|s| s.instance != engine.instance)),
        Err(err) => tracing::warn!(%err, "could not read other instances' sockets"),
    }
    all.sort_by(|a, b| (&a.instance, a.since_ms).cmp(&(&b.instance, b.since_ms)));
    all
}

/// `GET /admin/users/{user}`: the player's sockets on every instance, best and rank on each
/// campaign's global board, and their ban. 404 when podium knows nothing of them.
pub async fn show(
    _: Admin,
    user: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let user = user_of(&user)?;
    let gateway = &engine.gateway;
    let now = now_ms();
    let sockets = sockets_everywhere(&engine, &user).await;
    let mut boards = Vec::new();
    for campaign in gateway.campaigns.all() {
        for kind in [BoardKind::Global, BoardKind::Daily] {
            let key = BoardKey::of(&campaign.name, &kind, now);
            if let Some(s) = gateway.store.standing(&key, &user).await? {
                boards.push(views::Standing {
                    campaign: campaign.name.to_string(),
                    board: key.board.to_string(),
                    best: s.score,
                    rank: s.rank,
                });
            }
        }
    }
    let ban = gateway.store.bans(now).await?;
    let ban = ban.iter().find(|b| b.user == user);
    let results = gateway.store.recent_results(&user, USER_PAGE_ROWS).await?;
    let flags = gateway
        .store
        .flagged(&podium_actors::domain::operator::FlagQuery {
            user: Some(user.to_string()),
            limit: USER_PAGE_ROWS,
            ..Default::default()
        })
        .await?;
    if sockets.is_empty()
        && boards.is_empty()
        && ban.is_none()
        && results.is_empty()
        && flags.is_empty()
    {
        return Err(ClientError::NotFound);
    }
    Ok(HttpResponse::Ok().json(views::UserPage {
        user: user.to_string(),
        sockets: sockets.iter().map(SocketView::of).collect(),
        boards,
        ban: ban.map(BanView::of),
        results: results.iter().map(ResultView::of).collect(),
        flags: flags.iter().map(Flag::of).collect(),
    }))
}

/// `POST /admin/announce {"text","campaign"}`: an `announce` frame to every connected player,
/// or to those in the campaign's rooms, on every instance.
pub async fn announce(
    admin: Admin,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let raw = Fields::read(payload, &["text", "campaign"], false).await?;
    let body = Fields::of(&raw)?;
    let text = bounded("text", body.text("text")?, MAX_ANNOUNCE)?;
    let campaign = match body.text("campaign")? {
        None => None,
        Some(name) => Some(
            engine
                .gateway
                .campaigns
                .get(&name)
                .map(|c| c.name.clone())
                .ok_or(ClientError::UnknownCampaign)?,
        ),
    };
    let frame = encode(
        &ServerMsg::Announce {
            text: &text,
            server_time: now_ms(),
        },
        None,
    );
    let target = campaign.as_ref().map_or("*", CampaignId::as_str).to_owned();
    let published = engine
        .bus
        .send(Publish(Event::Announce {
            frame: frame.to_string(),
            campaign,
        }))
        .await
        .unwrap_or(false);
    audited(&engine, &admin, "announce", &target, raw).await;
    Ok(HttpResponse::Ok().json(views::Announced {
        sent: true,
        every_instance: published,
    }))
}

/// `GET /admin/instances`: every instance that heartbeat within the last few seconds.
pub async fn instances(
    _: Admin,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let all = engine.bus.send(Instances).await.unwrap_or_default();
    Ok(HttpResponse::Ok().json(views::InstanceList {
        instances: all.iter().map(views::InstanceView::of).collect(),
    }))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<usize>,
    cursor: Option<u64>,
}

/// `GET /admin/audit?limit=&cursor=`: admin actions, newest first; `next_cursor` pages on.
pub async fn audit(
    _: Admin,
    query: web::Query<Page>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let n = limit(query.limit)?;
    // Entry ids are PostgreSQL bigints: a cursor past them was never given out.
    if query.cursor.is_some_and(|c| c > i64::MAX as u64) {
        return Err(ClientError::BadMessage(
            "cursor: expected a next_cursor this route gave".into(),
        ));
    }
    let rows = engine.gateway.store.audit_page(query.cursor, n).await?;
    let next = (rows.len() == n)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    Ok(HttpResponse::Ok().json(views::AuditPage {
        entries: rows.iter().map(views::AuditView::of).collect(),
        next_cursor: next,
    }))
}
