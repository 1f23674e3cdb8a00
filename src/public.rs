//! The public read API, `/api/campaigns/...`: a campaign as players may see it, pages of its
//! boards, the rows around a player, and a board's archives. Board reads are served from a
//! cache of at most one second per instance ([`ReadCache`]), so however many pages read a
//! board, this instance reads it from the store about once a second (readers that find it
//! stale together share one read); answers say
//! `Cache-Control: public, max-age=1`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use podium_actors::domain::board::Entry;
use podium_actors::domain::campaign::Campaign;
use podium_actors::domain::clock::now_ms;
use podium_actors::domain::error::ClientError;
use podium_actors::domain::ids::{BoardKey, RoomId, UserId};
use podium_actors::engine::Engine;
use podium_actors::telemetry;
use serde::Deserialize;

use crate::views::{self, ArchiveView, PublicCampaign};

/// How long a board read is served from the cache.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Rows of a board the cache holds: pages within them cost no store read.
const CACHED_ROWS: usize = 1_000;
/// Boards the cache holds at most; past it, boards not read within a second are dropped.
const CACHED_BOARDS: usize = 10_000;
/// Rows one page may hold.
const MAX_PAGE: usize = 1_000;
/// Ranks shown above and below a player.
const AROUND: u64 = 5;

/// A board's size and first rows, as read at one moment.
type Read = Arc<(u64, Vec<Entry>)>;

/// One board's last read. Its async lock is held across the store read, so the readers that
/// find it stale together wait for one read instead of each making their own.
type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Read)>>>;

/// The first rows of each board read recently, and the board's size, by board.
#[derive(Default)]
pub struct ReadCache {
    /// A std mutex: held to find or add a board's slot, never across a store read.
    boards: Mutex<HashMap<BoardKey, Slot>>,
}

impl ReadCache {
    /// Drops every board read, so the next read of each goes to the store: an operator's change
    /// to the boards shows at once on this instance (on the others within the second).
    pub fn forget(&self) {
        self.boards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The board's size and first rows, from the cache when fresh, else from the store.
    async fn board(&self, engine: &Engine, key: &BoardKey) -> Result<Read, ClientError> {
        let slot = {
            let mut boards = self.boards.lock().unwrap_or_else(|p| p.into_inner());
            if boards.len() >= CACHED_BOARDS && !boards.contains_key(key) {
                // Slots in use or read within a second stay; the rest go.
                boards.retain(|_, slot| {
                    Arc::strong_count(slot) > 1
                        || slot.try_lock().is_ok_and(|held| {
                            held.as_ref()
                                .is_some_and(|(at, _)| at.elapsed() < FRESH_FOR)
                        })
                });
            }
            boards.entry(key.clone()).or_default().clone()
        };
        let mut held = slot.lock().await;
        if let Some((at, read)) = held.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return Ok(read.clone());
            }
        }
        let store = &engine.gateway.store;
        let total = store.count(key).await?;
        let rows = store.page(key, 1, CACHED_ROWS).await?;
        let read = Arc::new((total, rows));
        *held = Some((Instant::now(), read.clone()));
        telemetry::board_read_from_store(key.campaign.as_str());
        Ok(read)
    }
}

fn cached(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=1"))
        .json(body)
}

fn campaign(engine: &Engine, name: &str) -> Result<Arc<Campaign>, ClientError> {
    engine
        .gateway
        .campaigns
        .get(name)
        .ok_or(ClientError::UnknownCampaign)
}

/// The player a path names: a name no token could carry is a player podium cannot know (404).
pub fn user_of(raw: &str) -> Result<UserId, ClientError> {
    UserId::parse(raw).map_err(|_| ClientError::NotFound)
}

/// The campaign's board `board` (`global`, `daily`, `region:eu`) as a room names it.
pub fn board_of(c: &Campaign, board: &str) -> Result<RoomId, ClientError> {
    let room = RoomId::parse(&format!("{}/{board}", c.name))?;
    if !c.rules.has_board(&room.board) {
        return Err(ClientError::UnknownRoom("the campaign has no such board"));
    }
    Ok(room)
}

/// `GET /api/campaigns/{name}`: title, window, boards, regions and the rules a game may show.
pub async fn show(
    name: web::Path<String>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let c = campaign(&engine, &name)?;
    Ok(cached(PublicCampaign::of(&c, now_ms())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    limit: Option<usize>,
    offset: Option<u64>,
}

/// `GET /api/campaigns/{name}/boards/{board}?limit=50&offset=0`: `limit` rows from the
/// `offset`-th (0 is the top), with the board's size.
pub async fn board(
    path: web::Path<(String, String)>,
    query: web::Query<Page>,
    engine: web::Data<Arc<Engine>>,
    cache: web::Data<ReadCache>,
) -> Result<HttpResponse, ClientError> {
    let (name, board) = path.into_inner();
    let room = board_of(&*campaign(&engine, &name)?, &board)?;
    let limit = query.limit.unwrap_or(50);
    let offset = query.offset.unwrap_or(0);
    if limit == 0 || limit > MAX_PAGE || offset >= podium_actors::domain::protocol::MAX_SCORE {
        return Err(ClientError::BadMessage(format!(
            "limit is 1 to {MAX_PAGE} and offset 0 or more"
        )));
    }
    page(&engine, &cache, room, offset, limit).await
}

/// `limit` rows of `room`'s board from the `offset`-th, from the cache when they are in it.
pub async fn page(
    engine: &Engine,
    cache: &ReadCache,
    room: RoomId,
    offset: u64,
    limit: usize,
) -> Result<HttpResponse, ClientError> {
    let key = BoardKey::for_room(&room, now_ms());
    let held = cache.board(engine, &key).await?;
    let (total, top) = (&held.0, &held.1);
    let end = offset.saturating_add(limit as u64);
    let rows: Vec<Entry> = if end <= CACHED_ROWS as u64 {
        top.iter()
            .skip(offset as usize)
            .take(limit)
            .cloned()
            .collect()
    } else {
        engine.gateway.store.page(&key, offset + 1, limit).await?
    };
    Ok(cached(views::BoardPage {
        room: room.to_string(),
        total: *total,
        offset,
        limit,
        rows,
    }))
}

/// `GET /api/campaigns/{name}/boards/{board}/around/{user}`: the rows from five ranks above
/// the player to five below; 404 when they have no score there.
pub async fn around(
    path: web::Path<(String, String, String)>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let (name, board, user) = path.into_inner();
    let room = board_of(&*campaign(&engine, &name)?, &board)?;
    let user = user_of(&user)?;
    let key = BoardKey::for_room(&room, now_ms());
    let rows = engine.gateway.store.around(&key, &user, AROUND).await?;
    if rows.is_empty() {
        return Err(ClientError::NotFound);
    }
    Ok(cached(views::Around {
        room: room.to_string(),
        user: user.to_string(),
        rows,
    }))
}

/// Rows of each archive the listing shows.
const ARCHIVE_ROWS: usize = 100;

/// `GET /api/campaigns/{name}/boards/{board}/archives`: the board's archives (one per reset),
/// newest first, each with its top rows and how many players it held.
pub async fn archives(
    path: web::Path<(String, String)>,
    engine: web::Data<Arc<Engine>>,
) -> Result<HttpResponse, ClientError> {
    let (name, board) = path.into_inner();
    let room = board_of(&*campaign(&engine, &name)?, &board)?;
    let key = BoardKey::for_room(&room, now_ms());
    let all = engine.gateway.store.archives(&key).await?;
    Ok(cached(views::Archives {
        room: room.to_string(),
        archives: all
            .iter()
            .map(|a| ArchiveView::of(a, ARCHIVE_ROWS))
            .collect(),
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    use crate::routes::resource;
    cfg.service(resource("/api/campaigns/{name}", "GET").route(web::get().to(show)))
        .service(
            resource("/api/campaigns/{name}/boards/{board}", "GET").route(web::get().to(board)),
        )
        .service(
            resource("/api/campaigns/{name}/boards/{board}/around/{user}", "GET")
                .route(web::get().to(around)),
        )
        .service(
            resource("/api/campaigns/{name}/boards/{board}/archives", "GET")
                .route(web::get().to(archives)),
        );
}
