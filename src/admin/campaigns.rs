//! `/admin/campaigns`: list, read, create, change and close campaigns. The store is the
//! truth: a change is read from it, written back naming the version it read (409 `conflict`
//! when another operator changed it meanwhile), then announced on the ClusterBus so every
//! instance applies it. A game is judged by the limits in force when it started (they are
//! signed into its session), so a change never judges a game already under way.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use podium_actors::cluster_bus::{Event, Publish};
use podium_actors::domain::campaign::{Campaign, CampaignRules};
use podium_actors::domain::clock::now_ms;
use podium_actors::domain::counting::Counting;
use podium_actors::domain::error::ClientError;
use podium_actors::domain::ids::CampaignId;
use podium_actors::engine::Engine;
use serde_json::Value;

use super::body::Fields;
use super::{audited, Admin};
use crate::public::ReadCache;
use crate::views::{self, AdminCampaign, CampaignList};

const FIELDS: &[&str] = &[
    "name",
    "title",
    "starts_at",
    "ends_at",
    "rules",
    "regions",
    "daily_retention_days",
    "prizes",
];
const RULES: &[&str] = &[
    "min_duration_ms",
    "max_duration_ms",
    "max_score",
    "max_score_per_second",
    "max_games_per_hour",
    "scoring",
];
/// The rules that only a `counted` campaign has, beside [`RULES`] in `rules`.
const COUNTED: &[&str] = &[
    "events",
    "max_events_per_second",
    "min_event_interval_ms",
    "input_flush_ms",
    "clock_tolerance_ms",
    "input_max_delay_ms",
    "min_interval_cv",
    "human_max_rate",
];

/// `rules.scoring` and the counted rules beside it: `claimed` drops the counting, `counted`
/// starts from Tap Rush's (a tap a point) unless the campaign counts already.
fn apply_counting(r: &Fields<'_>, rules: &mut CampaignRules) -> Result<(), ClientError> {
    match r.text("scoring")?.as_deref() {
        None => {}
        Some("claimed") => rules.counting = None,
        Some("counted") => {
            rules.counting.get_or_insert_with(Counting::default);
        }
        Some(_) => {
            return Err(ClientError::BadMessage(
                "rules.scoring: expected \"claimed\" or \"counted\"".into(),
            ))
        }
    }
    let Some(c) = rules.counting.as_mut() else {
        return match COUNTED.iter().find(|f| r.raw(f).is_some()) {
            Some(f) => Err(ClientError::BadMessage(format!(
                "rules.{f}: only a campaign with rules.scoring \"counted\" has it"
            ))),
            None => Ok(()),
        };
    };
    if let Some(events) = r.raw("events") {
        c.events = serde_json::from_value(events.clone()).map_err(|_| {
            ClientError::BadMessage(
                "rules.events: expected {\"kind\": {\"points\": n, \"max_per_game\": n}, ...}"
                    .into(),
            )
        })?;
    }
    let per_second = r.whole("max_events_per_second")?;
    set(
        per_second.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        &mut c.max_events_per_second,
    );
    set(
        r.whole("min_event_interval_ms")?,
        &mut c.min_event_interval_ms,
    );
    set(r.whole("input_flush_ms")?, &mut c.input_flush_ms);
    set(
        r.whole_or_null("clock_tolerance_ms")?,
        &mut c.clock_tolerance_ms,
    );
    set(
        r.whole_or_null("input_max_delay_ms")?,
        &mut c.input_max_delay_ms,
    );
    set(r.number_or_null("min_interval_cv")?, &mut c.min_interval_cv);
    set(r.number_or_null("human_max_rate")?, &mut c.human_max_rate);
    Ok(())
}

/// A field the body gave replaces the setting; one it left out keeps it.
fn set<T>(given: Option<T>, field: &mut T) {
    if let Some(v) = given {
        *field = v;
    }
}

/// Applies the body's fields to `rules`, then checks the result as a whole.
fn apply(body: &Fields<'_>, rules: &mut CampaignRules) -> Result<(), ClientError> {
    if let Some(title) = body.text_or_null("title")? {
        rules.title = title;
    }
    if let Some(t) = body.time("starts_at")? {
        rules.starts_at_ms = t;
    }
    if let Some(t) = body.time("ends_at")? {
        rules.ends_at_ms = t;
    }
    if let Some(regions) = body.strings("regions")? {
        rules.regions = regions;
    }
    if let Some(prizes) = body.raw("prizes") {
        rules.prizes = serde_json::from_value(prizes.clone()).map_err(|_| {
            ClientError::BadMessage(
                "prizes: expected {\"global\": places, \"daily\": places, ...}".into(),
            )
        })?;
    }
    if let Some(days) = body.whole("daily_retention_days")? {
        rules.daily_retention_days = u32::try_from(days).unwrap_or(u32::MAX);
    }
    if let Some(r) = body.object("rules", "rules.")? {
        r.only(&[RULES, COUNTED].concat())?;
        set(r.whole("min_duration_ms")?, &mut rules.min_duration_ms);
        set(r.whole("max_duration_ms")?, &mut rules.max_duration_ms);
        set(r.whole("max_score")?, &mut rules.max_score);
        set(
            r.whole("max_score_per_second")?,
            &mut rules.max_score_per_second,
        );
        if let Some(n) = r.whole("max_games_per_hour")? {
            rules.max_games_per_hour = u32::try_from(n).unwrap_or(u32::MAX);
        }
        apply_counting(&r, rules)?;
    }
    match rules.problem() {
        None => Ok(()),
        Some((field, expected)) => {
            let in_rules = RULES.contains(&field) || COUNTED.contains(&field);
            let at = if in_rules { "rules." } else { "" };
            Err(ClientError::BadMessage(format!(
                "{at}{field}: expected {expected}"
            )))
        }
    }
}

/// The campaign as the store holds it now.
async fn held(engine: &Engine, name: &str) -> Result<Campaign, ClientError> {
    engine
        .gateway
        .store
        .campaign(name)
        .await?
        .ok_or(ClientError::UnknownCampaign)
}

/// Tells every instance, this one first, that the campaign changed.
async fn announce_change(engine: &Engine, c: &Campaign) {
    engine.gateway.campaigns.apply(c.clone());
    let _ = engine
        .bus
        .send(Publish(Event::Campaign {
            name: c.name.clone(),
        }))
        .await;
}

pub async fn list(_: Admin, engine: web::Data<Arc<Engine>>) -> Result<HttpResponse, ClientError> {
    let now = now_ms();
    let all = engine.gateway.store.campaigns().await?;
    let campaigns = all.iter().map(|c| AdminCampaign::of(c, now)).collect();
    Ok(HttpResponse::Ok().json(CampaignList { campaigns }))
}

pub async fn show(
    _: Admin,
    name: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let c = held(&engine, &name).await?;
    Ok(HttpResponse::Ok().json(AdminCampaign::of(&c, now_ms())))
}

/// `POST /admin/campaigns`: 201 with the campaign; 409 when the name is taken.
pub async fn create(
    admin: Admin,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let raw = Fields::read(payload, FIELDS, false).await?;
    let body = Fields::of(&raw)?;
    let name = body
        .text("name")?
        .ok_or_else(|| ClientError::BadMessage("name: required".into()))?;
    let name = CampaignId::parse(&name).ok_or_else(|| {
        ClientError::BadMessage("name: expected 1 to 64 letters, digits, - and _".into())
    })?;
    let mut rules = CampaignRules::default();
    apply(&body, &mut rules)?;
    let now = now_ms();
    let campaign = Campaign::configured(name, rules, now);
    let created = engine.gateway.store.create_campaign(&campaign).await?;
    if !created {
        return Err(ClientError::Conflict("a campaign of that name exists"));
    }
    announce_change(&engine, &campaign).await;
    let shown = AdminCampaign::of(&campaign, now);
    audited(
        &engine,
        &admin,
        "campaign_create",
        campaign.name.as_str(),
        raw,
    )
    .await;
    Ok(HttpResponse::Created().json(shown))
}

/// `PATCH /admin/campaigns/{name}`: any subset of the fields; 200 with the campaign.
pub async fn update(
    admin: Admin,
    name: web::Path<String>,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let raw = Fields::read(payload, &FIELDS[1..], false).await?;
    let body = Fields::of(&raw)?;
    let mut campaign = held(&engine, &name).await?;
    apply(&body, &mut campaign.rules)?;
    let changed = commit(&engine, &mut campaign).await?;
    audited(&engine, &admin, "campaign_update", &name, raw).await;
    Ok(HttpResponse::Ok().json(AdminCampaign::of(&changed, now_ms())))
}

/// Writes the next version of `c`, or says the campaign changed since it was read.
async fn commit(engine: &Engine, c: &mut Campaign) -> Result<Campaign, ClientError> {
    let read = c.version;
    c.version += 1;
    c.updated_at_ms = now_ms();
    let written = engine.gateway.store.update_campaign(c, read).await?;
    if !written {
        return Err(ClientError::Conflict(
            "the campaign changed since it was read; read it again",
        ));
    }
    announce_change(engine, c).await;
    Ok(c.clone())
}

/// `POST /admin/campaigns/{name}/rebuild`: raises every board of the campaign to what the
/// database holds (as `podium rebuild` does); answers how many rows changed.
pub async fn rebuild(
    admin: Admin,
    name: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
    reads: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let campaign = held(&engine, &name).await?;
    let changed = engine
        .gateway
        .store
        .rebuild_campaign(&campaign, now_ms())
        .await?;
    reads.forget();
    audited(&engine, &admin, "campaign_rebuild", &name, Value::Null).await;
    Ok(HttpResponse::Ok().json(views::Rebuilt {
        campaign: campaign.name.to_string(),
        rows_changed: changed,
    }))
}

/// `DELETE /admin/campaigns/{name}/boards/scores/{user}`: the player leaves every board of the
/// campaign; their results stay, marked removed. Rooms show it at their next tick.
pub async fn remove_scores(
    admin: Admin,
    path: web::Path<(String, String)>,
    engine: web::Data<Arc<Engine>>,
    reads: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let (name, user) = path.into_inner();
    let campaign = held(&engine, &name).await?;
    let user = crate::public::user_of(&user)?;
    let boards = engine
        .gateway
        .store
        .remove_scores(&user, &campaign, now_ms())
        .await?;
    if boards == 0 {
        return Err(ClientError::NotFound);
    }
    reads.forget();
    audited(
        &engine,
        &admin,
        "scores_remove",
        &format!("{name}/{user}"),
        Value::Null,
    )
    .await;
    Ok(HttpResponse::Ok().json(views::ScoresRemoved {
        campaign: name,
        user: user.to_string(),
        boards,
    }))
}

/// `POST /admin/campaigns/{name}/boards/{board}/reset {"archive"}`: the board starts empty;
/// what it held is kept as the archive `archive` (default: the time of the reset), readable at
/// `GET /api/campaigns/{name}/boards/{board}/archives`. Results stay in the database, and a
/// rebuild counts only those accepted after the reset. Every member of the room on every
/// instance gets a fresh snapshot. 409 when the board has an archive of that name.
pub async fn reset(
    admin: Admin,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    engine: web::Data<Arc<Engine>>,
    reads: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let (name, board) = path.into_inner();
    let raw = Fields::read(payload, &["archive"], true).await?;
    let body = Fields::of(&raw)?;
    let campaign = held(&engine, &name).await?;
    let room = crate::public::board_of(&campaign, &board)?;
    let now = now_ms();
    let archive = match body.text("archive")? {
        None => views::rfc3339(Some(now)).unwrap_or_default(),
        Some(a)
            if !a.trim().is_empty()
                && a.chars().count() <= 64
                && !a.chars().any(char::is_control) =>
        {
            a
        }
        Some(_) => {
            return Err(ClientError::BadMessage(
                "archive: expected 1 to 64 printable characters".into(),
            ))
        }
    };
    let key = podium_actors::domain::ids::BoardKey::for_room(&room, now);
    let kept = engine
        .gateway
        .store
        .reset_board(&key, &archive, now)
        .await?
        .ok_or(ClientError::Conflict(
            "the board has an archive of that name",
        ))?;
    let _ = engine
        .bus
        .send(Publish(Event::BoardReset {
            room: room.to_string(),
        }))
        .await;
    reads.forget();
    audited(&engine, &admin, "board_reset", &room.to_string(), raw).await;
    Ok(HttpResponse::Ok().json(views::BoardReset {
        room: room.to_string(),
        board: key.board.to_string(),
        archive: kept.name,
        archived_players: kept.rows.len(),
    }))
}

/// `GET /admin/campaigns/{name}/results.csv`: every accepted result of the campaign, oldest
/// first, streamed as it is read (never held whole); `removed` is `t` for results an operator
/// took off the boards. The memory engine exports the results it still keeps.
pub async fn results_csv(
    admin: Admin,
    name: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    use futures_util::StreamExt;
    let campaign = held(&engine, &name).await?;
    let rows = engine
        .gateway
        .store
        .results_csv(campaign.name.as_str())
        .await?;
    audited(&engine, &admin, "results_export", &name, Value::Null).await;
    let body = rows.map(|chunk| {
        chunk.map_err(|err| {
            tracing::warn!(%err, "results export cut short");
            actix_web::error::ErrorInternalServerError("export failed")
        })
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{}-results.csv\"", campaign.name),
        ))
        .streaming(body))
}

/// `POST /admin/campaigns/{name}/close`: no game starts from now on; games under way may be
/// submitted until their `max_duration_ms` runs out. Closing a closed campaign changes nothing.
pub async fn close(
    admin: Admin,
    name: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let mut campaign = held(&engine, &name).await?;
    if campaign.closed_at_ms.is_none() {
        campaign.closed_at_ms = Some(now_ms());
        campaign = commit(&engine, &mut campaign).await?;
        audited(&engine, &admin, "campaign_close", &name, Value::Null).await;
    }
    Ok(HttpResponse::Ok().json(AdminCampaign::of(&campaign, now_ms())))
}
