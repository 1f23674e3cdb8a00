//! `GET /admin/flagged`: refused attempts for review, newest first, each with its numbers
//! beside the rule it broke, filtered by campaign, player, reason and time, paged by cursor.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use podium_actors::domain::campaign::Refusal;
use podium_actors::domain::decision::Record;
use podium_actors::domain::error::ClientError;
use podium_actors::domain::operator::FlagQuery;
use podium_actors::engine::Engine;
use serde::Deserialize;

use super::{limit, Admin};
use crate::views::{Flag, FlaggedPage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
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
fn cursor_of(r: &Record) -> String {
    format!("{}.{}", r.at_ms, r.session_id)
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
    let query = FlagQuery {
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
