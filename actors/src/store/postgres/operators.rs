//! What operators keep in PostgreSQL: campaigns (the truth on the redis engine), bans and the
//! audit log.

use deadpool_postgres::Pool;

use super::pool::{self, pg_err, timed};
use crate::domain::board::Entry;
use crate::domain::campaign::Refusal;
use crate::domain::campaign::{Campaign, CampaignRules};
use crate::domain::decision::Record;
use crate::domain::ids::{CampaignId, UserId};
use crate::domain::operator::{Archive, AuditEntry, Ban, Dismissal, FlagQuery, FlagState, Flagged};
use crate::store::error::StoreError;

/// Unix ms of a `timestamptz` column, in SQL.
macro_rules! ms {
    ($col:literal) => {
        concat!("(extract(epoch FROM ", $col, ") * 1000)::int8")
    };
}

const CAMPAIGN_COLUMNS: &str = concat!(
    "id, title, min_duration_ms, max_duration_ms, max_score, max_score_per_second, max_games_per_hour, ",
    ms!("starts_at"), ", ", ms!("ends_at"), ", daily_retention_days, regions, ",
    ms!("closed_at"), ", version, ", ms!("updated_at"), ", counting::text, prizes::text"
);

fn campaign_of(row: &tokio_postgres::Row) -> Campaign {
    let ms = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v.max(0) as u64);
    let num = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    Campaign {
        name: CampaignId::new(row.get::<_, &str>(0)),
        rules: CampaignRules {
            title: row.get(1),
            min_duration_ms: num(2),
            max_duration_ms: num(3),
            max_score: num(4),
            max_score_per_second: num(5),
            max_games_per_hour: row.get::<_, i32>(6).max(0) as u32,
            starts_at_ms: ms(7),
            ends_at_ms: ms(8),
            daily_retention_days: row.get::<_, i32>(9).max(0) as u32,
            regions: row.get(10),
            // Written from `Counting` by this module; one that no longer reads is a
            // campaign podium cannot count, kept claimed rather than failing every read.
            counting: row
                .get::<_, Option<&str>>(14)
                .and_then(|json| serde_json::from_str(json).ok()),
            prizes: row
                .get::<_, Option<&str>>(15)
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
        },
        closed_at_ms: ms(11),
        version: num(12),
        updated_at_ms: ms(13).unwrap_or(0),
    }
}

pub async fn campaigns(pool: &Pool) -> Result<Vec<Campaign>, StoreError> {
    timed("campaigns", async {
        let client = pool::get(pool).await?;
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id");
        let rows = client.query(&sql, &[]).await.map_err(pg_err)?;
        Ok(rows.iter().map(campaign_of).collect())
    })
    .await
}

/// The campaign of that name, if there is one.
pub async fn campaign(pool: &Pool, name: &str) -> Result<Option<Campaign>, StoreError> {
    timed("campaign", async {
        let client = pool::get(pool).await?;
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
        let row = client.query_opt(&sql, &[&name]).await.map_err(pg_err)?;
        Ok(row.as_ref().map(campaign_of))
    })
    .await
}

/// Writes `c` as a new campaign, unless one of that name exists: answers whether it did.
pub async fn create_campaign(pool: &Pool, c: &Campaign) -> Result<bool, StoreError> {
    write_campaign(pool, c, None).await
}

/// Replaces the campaign whose version is `read_version` with `c`: answers false when it
/// changed since (or is gone), so the caller can say `conflict`.
pub async fn update_campaign(
    pool: &Pool,
    c: &Campaign,
    read_version: u64,
) -> Result<bool, StoreError> {
    write_campaign(pool, c, Some(read_version)).await
}

async fn write_campaign(
    pool: &Pool,
    c: &Campaign,
    read_version: Option<u64>,
) -> Result<bool, StoreError> {
    timed("write_campaign", async {
        let client = pool::get(pool).await?;
        let r = &c.rules;
        let i = |v: u64| v as i64;
        let sql = match read_version {
            None => "INSERT INTO campaigns (id, title, min_duration_ms, max_duration_ms, max_score, max_score_per_second,
                    max_games_per_hour, starts_at, ends_at, daily_retention_days, regions, closed_at, version, updated_at, counting, prizes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::int8 / 1000.0), to_timestamp($9::int8 / 1000.0), $10, $11,
                    to_timestamp($12::int8 / 1000.0), $13, to_timestamp($14::int8 / 1000.0), $15::text::jsonb, $16::text::jsonb)
                 ON CONFLICT (id) DO NOTHING",
            Some(_) => "UPDATE campaigns SET title = $2, min_duration_ms = $3, max_duration_ms = $4, max_score = $5,
                    max_score_per_second = $6, max_games_per_hour = $7, starts_at = to_timestamp($8::int8 / 1000.0),
                    ends_at = to_timestamp($9::int8 / 1000.0), daily_retention_days = $10, regions = $11,
                    closed_at = to_timestamp($12::int8 / 1000.0), version = $13, updated_at = to_timestamp($14::int8 / 1000.0),
                    counting = $15::text::jsonb, prizes = $16::text::jsonb
                 WHERE id = $1 AND version = $17",
        };
        let read = read_version.map_or(0, i);
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        let (min, max, score, rate) = (i(r.min_duration_ms), i(r.max_duration_ms), i(r.max_score), i(r.max_score_per_second));
        let games = r.max_games_per_hour as i32;
        let (starts, ends, closed) = (r.starts_at_ms.map(i), r.ends_at_ms.map(i), c.closed_at_ms.map(i));
        let retention = r.daily_retention_days as i32;
        let (version, updated) = (i(c.version), i(c.updated_at_ms));
        let name = c.name.as_str();
        let counting = r.counting.as_ref().map(|c| serde_json::to_string(c).expect("counting rules serialize"));
        let prizes = serde_json::to_string(&r.prizes).expect("prizes serialize");
        params.extend([
            &name as &(dyn tokio_postgres::types::ToSql + Sync),
            &r.title, &min, &max, &score, &rate, &games, &starts, &ends, &retention, &r.regions, &closed,
            &version, &updated, &counting, &prizes,
        ]);
        if read_version.is_some() {
            params.push(&read);
        }
        let n = client.execute(sql, &params).await.map_err(pg_err)?;
        Ok(n == 1)
    })
    .await
}

const BAN_COLUMNS: &str = concat!(
    "user_id, reason, ",
    ms!("expires_at"),
    ", created_by, ",
    ms!("created_at")
);

fn ban_of(row: &tokio_postgres::Row) -> Option<Ban> {
    Some(Ban {
        user: UserId::stored(row.get(0))?,
        reason: row.get(1),
        until_ms: row.get::<_, Option<i64>>(2).map(|v| v.max(0) as u64),
        by: row.get(3),
        at_ms: row.get::<_, Option<i64>>(4).unwrap_or(0).max(0) as u64,
    })
}

/// Sets or replaces the player's ban.
pub async fn put_ban(pool: &Pool, ban: &Ban) -> Result<(), StoreError> {
    timed("put_ban", async {
        let client = pool::get(pool).await?;
        client
            .execute(
                "INSERT INTO bans (user_id, reason, expires_at, created_by, created_at)
                 VALUES ($1, $2, to_timestamp($3::int8 / 1000.0), $4, to_timestamp($5::int8 / 1000.0))
                 ON CONFLICT (user_id) DO UPDATE SET reason = $2, expires_at = EXCLUDED.expires_at,
                    created_by = $4, created_at = EXCLUDED.created_at",
                &[&ban.user.as_str(), &ban.reason, &ban.until_ms.map(|v| v as i64), &ban.by, &(ban.at_ms as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    })
    .await
}

/// Lifts the player's ban: answers whether there was one.
pub async fn lift_ban(pool: &Pool, user: &UserId) -> Result<bool, StoreError> {
    timed("lift_ban", async {
        let client = pool::get(pool).await?;
        let n = client
            .execute("DELETE FROM bans WHERE user_id = $1", &[&user.as_str()])
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    })
    .await
}

/// Bans whose time ran out by `now_ms` (still recorded: their boards wait to be restored).
pub async fn lapsed_bans(pool: &Pool, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
    timed("lapsed_bans", async {
        let client = pool::get(pool).await?;
        let sql = format!(
            "SELECT {BAN_COLUMNS} FROM bans WHERE expires_at <= to_timestamp($1::int8 / 1000.0)"
        );
        let rows = client
            .query(&sql, &[&(now_ms as i64)])
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().filter_map(ban_of).collect())
    })
    .await
}

/// Bans in force at `now_ms`.
pub async fn bans(pool: &Pool, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
    timed("bans", async {
        let client = pool::get(pool).await?;
        let sql = format!(
            "SELECT {BAN_COLUMNS} FROM bans
             WHERE expires_at IS NULL OR expires_at > to_timestamp($1::int8 / 1000.0) ORDER BY created_at DESC"
        );
        let rows = client.query(&sql, &[&(now_ms as i64)]).await.map_err(pg_err)?;
        Ok(rows.iter().filter_map(ban_of).collect())
    })
    .await
}

/// Refused attempts the query asks for, newest first.
/// Dismisses the refused attempt of `session` (a second dismissal keeps the first); false
/// when the database holds no such refusal (yet: the batcher may still be writing it).
pub async fn dismiss_flag(
    pool: &Pool,
    session: &str,
    by: &str,
    at_ms: u64,
) -> Result<bool, StoreError> {
    timed("dismiss_flag", async {
        let client = pool::get(pool).await?;
        let n = client
            .execute(
                "UPDATE flagged SET dismissed_at = COALESCE(dismissed_at, to_timestamp($3::int8 / 1000.0)),
                        dismissed_by = COALESCE(dismissed_by, $2) WHERE session_id = $1",
                &[&session, &by, &(at_ms as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    })
    .await
}

pub async fn flagged(pool: &Pool, q: &FlagQuery) -> Result<Vec<Flagged>, StoreError> {
    timed("flagged", async {
        let client = pool::get(pool).await?;
        let state = match q.state {
            FlagState::Open => "AND dismissed_at IS NULL",
            FlagState::Dismissed => "AND dismissed_at IS NOT NULL",
            FlagState::All => "",
        };
        let sql = format!(
            "SELECT session_id, user_id, campaign_id, reason, score, {}, {}, rule_limit,
                    {}, dismissed_by FROM flagged
             WHERE ($1::text IS NULL OR campaign_id = $1) AND ($2::text IS NULL OR user_id = $2) {state}
               AND ($3::text IS NULL OR reason = $3)
               AND ($4::int8 IS NULL OR flagged_at >= to_timestamp($4::int8 / 1000.0))
               AND ($5::int8 IS NULL OR (flagged_at, session_id) < (to_timestamp($5::int8 / 1000.0), $6::text))
             ORDER BY flagged_at DESC, session_id DESC LIMIT $7",
            ms!("started_at"),
            ms!("flagged_at"),
            ms!("dismissed_at")
        );
        let (before_at, before_id) = match &q.before {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        let reason = q.reason.map(Refusal::code);
        let since = q.since_ms.map(|s| s as i64);
        let rows = client
            .query(
                &sql,
                &[&q.campaign, &q.user, &reason, &since, &before_at, &before_id, &(q.limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| Flagged {
                record: Record {
                    session_id: r.get(0),
                    user_id: r.get(1),
                    campaign_id: r.get(2),
                    reason: Refusal::from_code(r.get(3)),
                    score: r.get(4),
                    started_ms: r.get(5),
                    at_ms: r.get(6),
                    region: None,
                    limit: r.get(7),
                    counted: None,
                },
                dismissed: r
                    .get::<_, Option<i64>>(8)
                    .zip(r.get::<_, Option<String>>(9))
                    .map(|(at, by)| Dismissal {
                        by,
                        at_ms: at.max(0) as u64,
                    }),
            })
            .collect())
    })
    .await
}

/// Whether an archive of that name exists for the board.
pub async fn archive_exists(
    pool: &Pool,
    campaign: &str,
    board: &str,
    name: &str,
) -> Result<bool, StoreError> {
    timed("archive_exists", async {
        let client = pool::get(pool).await?;
        let row = client
            .query_opt(
                "SELECT 1 FROM board_archives WHERE campaign_id = $1 AND board = $2 AND name = $3",
                &[&campaign, &board, &name],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.is_some())
    })
    .await
}

/// Keeps the archive and records the reset, in one transaction.
pub async fn archive(pool: &Pool, a: &Archive) -> Result<(), StoreError> {
    timed("archive", async {
        let mut client = pool::get(pool).await?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let rows = serde_json::to_string(&a.rows).map_err(|e| StoreError::Command(e.to_string()))?;
        let at = a.at_ms as i64;
        tx.execute(
            "INSERT INTO board_archives (campaign_id, board, name, archived_at, rows)
             VALUES ($1, $2, $3, to_timestamp($4::int8 / 1000.0), $5::text::jsonb)",
            &[&a.campaign, &a.board, &a.name, &at, &rows],
        )
        .await
        .map_err(pg_err)?;
        tx.execute(
            "INSERT INTO board_resets (campaign_id, board, reset_at) VALUES ($1, $2, to_timestamp($3::int8 / 1000.0))
             ON CONFLICT (campaign_id, board) DO UPDATE SET reset_at = EXCLUDED.reset_at",
            &[&a.campaign, &a.board, &at],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    })
    .await
}

/// The board's archives, newest first.
pub async fn archives(
    pool: &Pool,
    campaign: &str,
    board: &str,
) -> Result<Vec<Archive>, StoreError> {
    timed("archives", async {
        let client = pool::get(pool).await?;
        let sql = format!(
            "SELECT name, {}, rows::text FROM board_archives WHERE campaign_id = $1 AND board = $2 ORDER BY archived_at DESC",
            ms!("archived_at")
        );
        let rows = client.query(&sql, &[&campaign, &board]).await.map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| Archive {
                campaign: campaign.to_owned(),
                board: board.to_owned(),
                name: r.get(0),
                at_ms: r.get::<_, i64>(1).max(0) as u64,
                rows: serde_json::from_str::<Vec<Entry>>(r.get(2)).unwrap_or_default(),
            })
            .collect())
    })
    .await
}

/// When each board of the campaign was last reset (stored board name -> Unix ms).
pub async fn resets(
    pool: &Pool,
    campaign: &str,
) -> Result<std::collections::HashMap<String, u64>, StoreError> {
    timed("resets", async {
        let client = pool::get(pool).await?;
        let sql = format!(
            "SELECT board, {} FROM board_resets WHERE campaign_id = $1",
            ms!("reset_at")
        );
        let rows = client.query(&sql, &[&campaign]).await.map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    })
    .await
}

/// Appends an admin action to the audit log.
pub async fn audit(
    pool: &Pool,
    actor: &str,
    action: &str,
    target: &str,
    body: &serde_json::Value,
) -> Result<(), StoreError> {
    timed("audit", async {
        let client = pool::get(pool).await?;
        let body = body.to_string();
        client
            .execute(
                "INSERT INTO audit (actor, action, target, body) VALUES ($1, $2, $3, $4::text::jsonb)",
                &[&actor, &action, &target, &body],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    })
    .await
}

/// Up to `limit` audit entries older than `before` (an entry id), newest first.
pub async fn audit_page(
    pool: &Pool,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    timed("audit_page", async {
        let client = pool::get(pool).await?;
        let sql = format!(
            "SELECT id, {}, actor, action, target, body::text FROM audit
             WHERE ($1::int8 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            ms!("at")
        );
        let rows = client
            .query(&sql, &[&before.map(|b| b as i64), &(limit as i64)])
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get::<_, i64>(0) as u64,
                at_ms: r.get::<_, i64>(1).max(0) as u64,
                actor: r.get(2),
                action: r.get(3),
                target: r.get(4),
                body: r
                    .get::<_, Option<String>>(5)
                    .and_then(|b| serde_json::from_str(&b).ok())
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect())
    })
    .await
}
