//! `GET /admin/flagged`: refused attempts for review, newest first, each with its numbers
//! beside the rule it broke, filtered by review state, campaign, player, reason and time,
//! paged by cursor; `POST /admin/flagged/{session}/dismiss` takes one out of the queue.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use podium_actors::domain::campaign::Refusal;
use podium_actors::domain::clock::now_ms;
use podium_actors::domain::error::ClientError;
use podium_actors::domain::operator::{FlagQuery, FlagState, Flagged};
use podium_actors::engine::Engine;
use serde::Deserialize;

use super::{audited, limit, Admin};
use crate::views::{Flag, FlaggedPage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `open` (the default: not dismissed), `dismissed` or `all`.
    state: Option<String>,
    campaign: Option<String>,
    user: Option<String>,
    reason: Option<String>,
    /// RFC 3339.
    since: Option<String>,
    limit: Option<usize>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
}

/// A cursor is the last row's refusal time and session: `<ms>.<session>`.
fn cursor_of(f: &Flagged) -> String {
    format!("{}.{}", f.record.at_ms, f.record.session_id)
}

fn parse_cursor(raw: &str) -> Result<(i64, String), ClientError> {
    raw.split_once('.')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
        .ok_or_else(|| {
            ClientError::BadMessage("cursor: expected a next_cursor this route gave".into())
        })
}

pub async fn flagged(
    _: Admin,
    query: web::Query<Filter>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let q = query.into_inner();
    let reason = match q.reason.as_deref() {
        None => None,
        Some(code) => Some(Refusal::from_code(code).ok_or_else(|| {
            let known: Vec<&str> = Refusal::ALL.iter().map(|r| r.code()).collect();
            ClientError::BadMessage(format!("reason: expected one of {}", known.join(", ")))
        })?),
    };
    let since_ms = match q.since.as_deref() {
        None => None,
        Some(raw) => {
            let t =
                time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| {
                        ClientError::BadMessage("since: expected an RFC 3339 time".into())
                    })?;
            Some(u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        }
    };
    let state = match q.state.as_deref() {
        None | Some("open") => FlagState::Open,
        Some("dismissed") => FlagState::Dismissed,
        Some("all") => FlagState::All,
        Some(_) => {
            return Err(ClientError::BadMessage(
                "state: expected open, dismissed or all".into(),
            ))
        }
    };
    let query = FlagQuery {
        state,
        campaign: q.campaign,
        user: q.user,
        reason,
        since_ms,
        before: q.cursor.as_deref().map(parse_cursor).transpose()?,
        limit: limit(q.limit)?,
    };
    let rows = engine.gateway.store.flagged(&query).await?;
    let next = (rows.len() == query.limit)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    Ok(HttpResponse::Ok().json(FlaggedPage {
        flagged: rows.iter().map(Flag::of).collect(),
        next_cursor: next,
    }))
}

/// `GET /admin/sessions/{id}`: the session as evidence (404 when no decided session has that
/// id, or the memory engine no longer keeps it).
pub async fn session(
    _: Admin,
    id: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let id = id.into_inner();
    if id.is_empty() || id.len() > 128 {
        return Err(ClientError::NotFound);
    }
    let record = engine
        .gateway
        .store
        .session(&id)
        .await?
        .ok_or(ClientError::NotFound)?;
    Ok(HttpResponse::Ok().json(crate::views::SessionEvidence::of(&record)))
}

/// `POST /admin/flagged/{session}/dismiss`: the refused attempt was reviewed and needs
/// nothing; it leaves the queue (`state=open`) and stays on the player's page, marked. 404
/// when no refused attempt has that session.
pub async fn dismiss(
    admin: Admin,
    session: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let session = session.into_inner();
    if session.is_empty() || session.len() > 128 {
        return Err(ClientError::NotFound);
    }
    let at = now_ms();
    let store = &engine.gateway.store;
    if !store.dismiss_flag(&session, &admin.actor, at).await? {
        return Err(ClientError::NotFound);
    }
    audited(
        &engine,
        &admin,
        "flag_dismiss",
        &session,
        serde_json::Value::Null,
    )
    .await;
    Ok(HttpResponse::Ok().json(crate::views::Dismissed {
        session,
        dismissed: true,
    }))
}
