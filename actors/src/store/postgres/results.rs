//! Results in PostgreSQL: the batched writes of the results stream, the direct decision used
//! while Redis is unreachable, the reads that rebuild boards, a counted game's evidence (`inputs`,
//! `result_flags`), and the daily partitions of each table.

use deadpool_postgres::Pool;

use super::pool::{self, pg_err, timed};
use crate::domain::campaign::Refusal;
use crate::domain::counting::{Counted, Drop, Flag, FlagKind};
use crate::domain::decision::{Attempt, Outcome, Record};
use crate::domain::ids::{utc_date, UserId};
use crate::store::error::StoreError;

/// The tables partitioned by the UTC day a game started: each has a `TABLE_default` partition
/// and daily `TABLE_YYYYMMDD` partitions.
const BY_DAY: [&str; 4] = ["results", "flagged", "inputs", "result_flags"];

/// Creates the daily partitions of each table in [`BY_DAY`] from yesterday to `ahead` days
/// after today. Bounds are written in UTC so a partition's name is its UTC day whatever the
/// server's `TimeZone`.
pub async fn ensure_partitions(pool: &Pool, now_ms: u64, ahead: u32) -> Result<(), StoreError> {
    timed("ensure_partitions", async {
        let client = pool::get(pool).await?;
        for day in -1..=i64::from(ahead) {
            let start = utc_date((now_ms as i64 + day * 86_400_000).max(0) as u64);
            let end = utc_date((now_ms as i64 + (day + 1) * 86_400_000).max(0) as u64);
            for table in BY_DAY {
                let name = format!("{table}_{}", start.replace('-', ""));
                let sql = format!("CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES FROM ('{start} 00:00+00') TO ('{end} 00:00+00')");
                if let Err(err) = client.batch_execute(&sql).await {
                    // Rows for that day already sit in the default partition; they stay there
                    // and remain correct, only unpartitioned.
                    tracing::warn!(partition = name, %err, "could not create a daily partition");
                }
            }
        }
        Ok(())
    })
    .await
}

/// Detaches the daily partitions of each table in [`BY_DAY`] that ended `retention_days` or
/// more before `now_ms` and hold no row of a campaign that has not ended (closed, or past its
/// `ends_at`; a campaign without an end keeps its partitions), then drops them, or keeps them
/// as `archived_TABLE_YYYYMMDD` when `archive`. Answers the partitions aged out.
pub async fn age_out(
    pool: &Pool,
    now_ms: u64,
    retention_days: u32,
    archive: bool,
) -> Result<Vec<String>, StoreError> {
    if retention_days == 0 {
        return Ok(Vec::new());
    }
    timed("age_out", async {
        let client = pool::get(pool).await?;
        let cutoff = utc_date(now_ms.saturating_sub(u64::from(retention_days) * 86_400_000))
            .replace('-', "");
        let mut aged = Vec::new();
        for table in BY_DAY {
            let partitions = client
                .query(
                    "SELECT c.relname::text FROM pg_inherits i
                     JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                     WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace
                       AND c.relname ~ ('^' || $1 || '_[0-9]{8}$') ORDER BY 1",
                    &[&table],
                )
                .await
                .map_err(pg_err)?;
            for row in partitions {
                let name: String = row.get(0);
                // The partition of day D holds D until the next midnight: it is old enough
                // once D + 1 is at or before the cutoff day.
                if name[table.len() + 1..] >= *cutoff.as_str() {
                    continue;
                }
                let live = client
                    .query_opt(
                        &format!(
                            "SELECT 1 FROM {name} r WHERE NOT EXISTS (SELECT 1 FROM campaigns c
                               WHERE c.id = r.campaign_id AND (c.closed_at <= now() OR c.ends_at <= now()))
                             LIMIT 1"
                        ),
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                if live.is_some() {
                    continue;
                }
                let keep = if archive {
                    format!("ALTER TABLE {name} RENAME TO archived_{name}")
                } else {
                    format!("DROP TABLE {name}")
                };
                client
                    .batch_execute(&format!(
                        "BEGIN; ALTER TABLE {table} DETACH PARTITION {name}; {keep}; COMMIT"
                    ))
                    .await
                    .map_err(pg_err)?;
                tracing::info!(partition = name, archive, "aged out a daily partition");
                aged.push(name);
            }
        }
        Ok(aged)
    })
    .await
}

/// Writes a batch in one transaction: accepted results into `results`, refusals into
/// `flagged`. Replays of rows already written are skipped, so a batch may be retried whole.
/// Answers how many rows were new.
pub async fn write_batch(pool: &Pool, rows: &[Record]) -> Result<u64, StoreError> {
    timed("write_batch", write_batch_untimed(pool, rows)).await
}

/// One column of a batch, for an `UNNEST($n::type[])` parameter.
fn column<T>(rows: &[&Record], field: fn(&Record) -> T) -> Vec<T> {
    rows.iter().map(|r| field(r)).collect()
}

async fn write_batch_untimed(pool: &Pool, rows: &[Record]) -> Result<u64, StoreError> {
    let mut client = pool::get(pool).await?;
    let tx = client.transaction().await.map_err(pg_err)?;
    let (results, flagged): (Vec<&Record>, Vec<&Record>) =
        rows.iter().partition(|r| r.reason.is_none());
    let mut written = 0;
    if !results.is_empty() {
        let (col, num) = (
            |f: fn(&Record) -> String| column(&results, f),
            |f: fn(&Record) -> i64| column(&results, f),
        );
        written += tx
            .execute(
                "INSERT INTO results (session_id, started_at, user_id, campaign_id, score, accepted_at, region, claimed_score)
                 SELECT s, to_timestamp(st / 1000.0), u, c, sc, to_timestamp(at / 1000.0), NULLIF(r, ''), NULLIF(cl, -1)
                 FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::text[], $8::int8[]) AS t(s, st, u, c, sc, at, r, cl)
                 ON CONFLICT DO NOTHING",
                &[&col(|r| r.session_id.clone()), &num(|r| r.started_ms), &col(|r| r.user_id.clone()), &col(|r| r.campaign_id.clone()), &num(|r| r.score), &num(|r| r.at_ms), &col(|r| r.region.clone().unwrap_or_default()), &num(claimed)],
            )
            .await
            .map_err(pg_err)?;
    }
    if !flagged.is_empty() {
        let (col, num) = (
            |f: fn(&Record) -> String| column(&flagged, f),
            |f: fn(&Record) -> i64| column(&flagged, f),
        );
        written += tx
            .execute(
                "INSERT INTO flagged (session_id, user_id, campaign_id, reason, score, started_at, flagged_at, rule_limit, claimed_score)
                 SELECT s, u, c, r, sc, to_timestamp(st / 1000.0), to_timestamp(at / 1000.0), NULLIF(l, -1), NULLIF(cl, -1)
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[]) AS t(s, u, c, r, sc, st, at, l, cl)
                 ON CONFLICT DO NOTHING",
                &[&col(|r| r.session_id.clone()), &col(|r| r.user_id.clone()), &col(|r| r.campaign_id.clone()), &col(|r| r.reason.map_or("", Refusal::code).to_owned()), &num(|r| r.score), &num(|r| r.started_ms), &num(|r| r.at_ms), &num(|r| r.limit.unwrap_or(-1)), &num(claimed)],
            )
            .await
            .map_err(pg_err)?;
    }
    let all: Vec<&Record> = rows.iter().collect();
    write_evidence(&tx, &all).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(written)
}

/// A record's claim, -1 (NULL) when its game was not counted.
fn claimed(r: &Record) -> i64 {
    r.counted
        .as_ref()
        .map_or(-1, |c| c.claimed.min(i64::MAX as u64) as i64)
}

/// A counted game's drops as JSON, `{"late": 3, ...}`.
fn dropped_json(c: &Counted) -> String {
    let map: serde_json::Map<String, serde_json::Value> = c
        .dropped
        .iter()
        .map(|(d, n)| (d.code().to_owned(), (*n).into()))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The input logs of the counted games among `rows`, and the plausibility flags of the
/// accepted ones, in the caller's transaction. Replays are skipped like the rows'.
async fn write_evidence(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[&Record],
) -> Result<(), StoreError> {
    let counted: Vec<(&Record, &Counted)> = rows
        .iter()
        .filter_map(|r| r.counted.as_ref().map(|c| (*r, c)))
        .collect();
    if counted.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Record, &Counted) -> String| -> Vec<String> {
        counted.iter().map(|(r, c)| f(r, c)).collect()
    };
    let logs: Vec<&[u8]> = counted.iter().map(|(_, c)| c.log.as_slice()).collect();
    let started: Vec<i64> = counted.iter().map(|(r, _)| r.started_ms).collect();
    tx.execute(
        "INSERT INTO inputs (session_id, started_at, user_id, campaign_id, log, dropped)
         SELECT s, to_timestamp(st / 1000.0), u, c, l, d::jsonb
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::bytea[], $6::text[]) AS t(s, st, u, c, l, d)
         ON CONFLICT DO NOTHING",
        &[
            &text(|r, _| r.session_id.clone()),
            &started,
            &text(|r, _| r.user_id.clone()),
            &text(|r, _| r.campaign_id.clone()),
            &logs,
            &text(|_, c| dropped_json(c)),
        ],
    )
    .await
    .map_err(pg_err)?;
    let flags: Vec<(&Record, &Flag)> = counted
        .iter()
        .filter(|(r, _)| r.reason.is_none())
        .flat_map(|(r, c)| c.flags.iter().map(move |f| (*r, f)))
        .collect();
    if flags.is_empty() {
        return Ok(());
    }
    let pick = |f: fn(&Record, &Flag) -> String| -> Vec<String> {
        flags.iter().map(|(r, fl)| f(r, fl)).collect()
    };
    let whole = |f: fn(&Record) -> i64| -> Vec<i64> { flags.iter().map(|(r, _)| f(r)).collect() };
    let real = |f: fn(&Flag) -> f64| -> Vec<f64> { flags.iter().map(|(_, fl)| f(fl)).collect() };
    let events: Vec<i32> = flags
        .iter()
        .map(|(_, f)| f.events.min(i32::MAX as u32) as i32)
        .collect();
    tx.execute(
        "INSERT INTO result_flags (session_id, started_at, kind, user_id, campaign_id, score, value, limit_value, events, flagged_at)
         SELECT s, to_timestamp(st / 1000.0), k, u, c, sc, v, l, e, to_timestamp(at / 1000.0)
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::float8[], $8::float8[], $9::int4[], $10::int8[])
              AS t(s, st, k, u, c, sc, v, l, e, at)
         ON CONFLICT DO NOTHING",
        &[
            &pick(|r, _| r.session_id.clone()),
            &whole(|r| r.started_ms),
            &pick(|_, f| f.kind.code().to_owned()),
            &pick(|r, _| r.user_id.clone()),
            &pick(|r, _| r.campaign_id.clone()),
            &whole(|r| r.score),
            &real(|f| f.value),
            &real(|f| f.limit),
            &events,
            &whole(|r| r.at_ms),
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The decision PostgreSQL holds for a session, from either table.
const PRIOR: &str = "SELECT score, NULL::text AS reason FROM results
        WHERE session_id = $1 AND started_at = to_timestamp($2::int8 / 1000.0)
    UNION ALL SELECT score, reason FROM flagged
        WHERE session_id = $1 AND started_at = to_timestamp($2::int8 / 1000.0)
    LIMIT 1";

fn outcome_of(user: &UserId, row: &tokio_postgres::Row) -> Result<Outcome, StoreError> {
    let score: i64 = row.get(0);
    let refused = match row.get::<_, Option<String>>(1) {
        None => None,
        Some(code) => {
            Some(Refusal::from_code(&code).ok_or(StoreError::Corrupt("refusal in `flagged`"))?)
        }
    };
    Ok(Outcome {
        user: user.clone(),
        score: score as u64,
        refused,
        best: None,
        rank: None,
    })
}

/// The decision of a session decided in PostgreSQL, if it has one.
pub async fn decided(
    pool: &Pool,
    session_id: &str,
    started_ms: u64,
    user: &UserId,
) -> Result<Option<Outcome>, StoreError> {
    timed("decided", async {
        let client = pool::get(pool).await?;
        let row = client
            .query_opt(PRIOR, &[&session_id, &(started_ms as i64)])
            .await
            .map_err(pg_err)?;
        row.map(|r| outcome_of(user, &r)).transpose()
    })
    .await
}

/// Decides a session straight in PostgreSQL (a session whose game started while Redis was
/// unreachable): the client is answered after the commit. Under a transaction-scoped advisory
/// lock on the session, so engines racing on one session (one accepting it, another refusing
/// it into the other table) decide it once; a session already decided keeps its first
/// outcome. Best and rank are left to the boards (`None` here).
pub async fn decide_directly(pool: &Pool, a: &Attempt<'_>) -> Result<Outcome, StoreError> {
    timed("decide_directly", decide_directly_untimed(pool, a)).await
}

async fn decide_directly_untimed(pool: &Pool, a: &Attempt<'_>) -> Result<Outcome, StoreError> {
    let mut client = pool::get(pool).await?;
    let tx = client.transaction().await.map_err(pg_err)?;
    let (started, at) = (a.started_ms as i64, a.now_ms as i64);
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&a.session_id],
    )
    .await
    .map_err(pg_err)?;
    if let Some(row) = tx
        .query_opt(PRIOR, &[&a.session_id, &started])
        .await
        .map_err(pg_err)?
    {
        return outcome_of(a.user, &row);
    }
    let banned = tx
        .query_opt(
            "SELECT 1 FROM bans WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > now())",
            &[&a.user.as_str()],
        )
        .await
        .map_err(pg_err)?;
    if banned.is_some() {
        return Err(StoreError::Banned);
    }
    let (user, campaign, score) = (a.user.as_str(), a.campaign.as_str(), a.score as i64);
    // $7 is the refusal for `flagged`, the region for `results`.
    let seventh: Option<&str> = match a.refused {
        Some(reason) => Some(reason.code()),
        None => a.region.map(|r| r.as_str()),
    };
    let sql = match a.refused {
        None => "INSERT INTO results (session_id, started_at, user_id, campaign_id, score, accepted_at, region, claimed_score)
             VALUES ($1, to_timestamp($2::int8 / 1000.0), $3, $4, $5, to_timestamp($6::int8 / 1000.0), $7, $8)",
        Some(_) => "INSERT INTO flagged (session_id, user_id, campaign_id, reason, score, started_at, flagged_at, claimed_score, rule_limit)
             VALUES ($1, $3, $4, $7, $5, to_timestamp($2::int8 / 1000.0), to_timestamp($6::int8 / 1000.0), $8, $9)",
    };
    let limit = a.limit.map(|l| l.min(i64::MAX as u64) as i64);
    let record = a.record();
    let claim = (claimed(&record) >= 0).then(|| claimed(&record));
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
        &a.session_id,
        &started,
        &user,
        &campaign,
        &score,
        &at,
        &seventh,
        &claim,
    ];
    if a.refused.is_some() {
        params.push(&limit);
    }
    tx.execute(sql, &params).await.map_err(pg_err)?;
    write_evidence(&tx, &[&record]).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(Outcome {
        user: a.user.clone(),
        score: a.score,
        refused: a.refused,
        best: None,
        rank: None,
    })
}

/// Each player's best in one campaign, with when they first reached it, from `since_ms` on:
/// what a board holds, recomputed from PostgreSQL.
pub async fn bests(
    pool: &Pool,
    campaign: &str,
    since_ms: Option<u64>,
    region: Option<&str>,
) -> Result<Vec<(String, u64, u64)>, StoreError> {
    let mut all = Vec::new();
    loop {
        let after = all
            .last()
            .map(|(user, _, _): &(String, u64, u64)| user.clone());
        let page = bests_page(pool, campaign, since_ms, region, after.as_deref(), 10_000).await?;
        let done = page.len() < 10_000;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Up to `limit` players' bests (see [`bests`]), in user order from after `after`: one range
/// of the `results_campaign_user_best` index, so a rebuild reads a campaign a page at a time.
pub async fn bests_page(
    pool: &Pool,
    campaign: &str,
    since_ms: Option<u64>,
    region: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<(String, u64, u64)>, StoreError> {
    timed("rebuild_bests", async {
        let client = pool::get(pool).await?;
        let since = since_ms.map_or(0, |ms| ms as i64);
        let rows = client
            .query(
                "SELECT DISTINCT ON (user_id) user_id, score, (extract(epoch FROM accepted_at) * 1000)::int8
                 FROM results
                 WHERE campaign_id = $1 AND user_id > $4 AND accepted_at >= to_timestamp($2::int8 / 1000.0)
                   AND ($3::text IS NULL OR region = $3)
                   AND NOT EXISTS (SELECT 1 FROM score_removals x WHERE x.campaign_id = results.campaign_id
                       AND x.user_id = results.user_id AND results.accepted_at <= x.removed_at)
                   AND user_id NOT IN (SELECT user_id FROM bans WHERE expires_at IS NULL OR expires_at > now())
                 ORDER BY user_id, score DESC, accepted_at ASC
                 LIMIT $5",
                &[&campaign, &since, &region, &after.unwrap_or(""), &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1) as u64,
                    r.get::<_, i64>(2) as u64,
                )
            })
            .collect())
    })
    .await
}

/// Marks a player's results in a campaign up to `now_ms` removed: kept, but counted on no
/// board again (including results still in the stream's backlog).
pub async fn mark_removed(
    pool: &Pool,
    campaign: &str,
    user: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    timed("mark_removed", async {
        let client = pool::get(pool).await?;
        client
            .execute(
                "INSERT INTO score_removals (campaign_id, user_id, removed_at) VALUES ($1, $2, to_timestamp($3::int8 / 1000.0))
                 ON CONFLICT (campaign_id, user_id) DO UPDATE SET removed_at = EXCLUDED.removed_at",
                &[&campaign, &user, &(now_ms as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(())
    })
    .await
}

/// The decided attempt of `session` and, for a counted game, its evidence.
pub async fn session(pool: &Pool, session: &str) -> Result<Option<Record>, StoreError> {
    timed("session", async {
        let client = pool::get(pool).await?;
        let Some(r) = client
            .query_opt(
                "SELECT session_id, user_id, campaign_id, score, (extract(epoch FROM started_at) * 1000)::int8,
                        (extract(epoch FROM accepted_at) * 1000)::int8, NULL::text, region, NULL::int8, claimed_score
                 FROM results WHERE session_id = $1
                 UNION ALL
                 SELECT session_id, user_id, campaign_id, score, (extract(epoch FROM started_at) * 1000)::int8,
                        (extract(epoch FROM flagged_at) * 1000)::int8, reason, NULL::text, rule_limit, claimed_score
                 FROM flagged WHERE session_id = $1
                 LIMIT 1",
                &[&session],
            )
            .await
            .map_err(pg_err)?
        else {
            return Ok(None);
        };
        let mut record = Record {
            session_id: r.get(0),
            user_id: r.get(1),
            campaign_id: r.get(2),
            score: r.get(3),
            started_ms: r.get(4),
            at_ms: r.get(5),
            reason: r.get::<_, Option<&str>>(6).and_then(Refusal::from_code),
            region: r.get(7),
            limit: r.get(8),
            counted: None,
        };
        let Some(claimed) = r.get::<_, Option<i64>>(9) else {
            return Ok(Some(record));
        };
        let input = client
            .query_opt(
                "SELECT log, dropped::text FROM inputs WHERE session_id = $1",
                &[&session],
            )
            .await
            .map_err(pg_err)?;
        let flags = client
            .query(
                "SELECT kind, value, limit_value, events FROM result_flags WHERE session_id = $1",
                &[&session],
            )
            .await
            .map_err(pg_err)?;
        let (log, dropped) = match &input {
            Some(row) => (row.get::<_, Vec<u8>>(0), row.get::<_, String>(1)),
            None => (Vec::new(), "{}".to_owned()),
        };
        let dropped: std::collections::BTreeMap<String, u32> =
            serde_json::from_str(&dropped).unwrap_or_default();
        let mut flags: Vec<Flag> = flags
            .iter()
            .filter_map(|f| {
                Some(Flag {
                    kind: FlagKind::from_code(f.get(0))?,
                    value: f.get(1),
                    limit: f.get(2),
                    events: f.get::<_, i32>(3).max(0) as u32,
                })
            })
            .collect();
        // In the order the counting raises them, as the memory engine keeps them.
        flags.sort_by_key(|f| FlagKind::ALL.iter().position(|k| *k == f.kind));
        record.counted = Some(Counted {
            score: record.score.max(0) as u64,
            claimed: claimed.max(0) as u64,
            dropped: dropped
                .iter()
                .filter_map(|(code, n)| Some((Drop::from_code(code)?, *n)))
                .collect(),
            flags,
            log,
        });
        Ok(Some(record))
    })
    .await
}

/// A player's latest accepted results, newest first.
pub async fn recent(pool: &Pool, user: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
    timed("recent_results", async {
        let client = pool::get(pool).await?;
        let rows = client
            .query(
                "SELECT session_id, user_id, campaign_id, score, (extract(epoch FROM started_at) * 1000)::int8,
                        (extract(epoch FROM accepted_at) * 1000)::int8, region
                 FROM results WHERE user_id = $1 ORDER BY accepted_at DESC LIMIT $2",
                &[&user, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows
            .iter()
            .map(|r| Record {
                session_id: r.get(0),
                user_id: r.get(1),
                campaign_id: r.get(2),
                score: r.get(3),
                started_ms: r.get(4),
                at_ms: r.get(5),
                reason: None,
                region: r.get(6),
                limit: None,
                counted: None,
            })
            .collect())
    })
    .await
}

/// The header of a results export, and the columns each row has.
pub const CSV_HEADER: &str = "session_id,user_id,region,score,started_at,accepted_at,removed\n";

/// Every accepted result of the campaign as CSV (with [`CSV_HEADER`]), streamed by PostgreSQL's
/// `COPY ... TO STDOUT`: the export is never held whole. The pooled connection travels with
/// the stream and returns to the pool when it ends.
pub async fn results_csv(
    pool: &Pool,
    campaign: &str,
) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes, StoreError>> + use<>, StoreError>
{
    use futures_util::StreamExt;
    // COPY takes no parameters: the name is quoted as a literal (campaign names are letters,
    // digits, - and _ anyway).
    let literal = format!("'{}'", campaign.replace('\'', "''"));
    let sql = format!(
        "COPY (SELECT r.session_id, r.user_id, r.region, r.score,
                      to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                      to_char(r.accepted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                      x.removed_at IS NOT NULL AND r.accepted_at <= x.removed_at
               FROM results r LEFT JOIN score_removals x ON x.campaign_id = r.campaign_id AND x.user_id = r.user_id
               WHERE r.campaign_id = {literal} ORDER BY r.accepted_at)
         TO STDOUT WITH (FORMAT csv)"
    );
    // Timed to the first row's readiness: the stream after it runs at the client's pace.
    let (client, copy) = timed("results_csv", async {
        let client = pool::get(pool).await?;
        let copy = client.copy_out(sql.as_str()).await.map_err(pg_err)?;
        Ok((client, copy))
    })
    .await?;
    let state = (client, Box::pin(copy));
    Ok(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let (client, mut copy) = state?;
            match copy.next().await {
                Some(Ok(chunk)) => Some((Ok(chunk), Some((client, copy)))),
                Some(Err(e)) => Some((Err(pg_err(e)), None)),
                None => None,
            }
        },
    ))
}

/// The regions a campaign's results came from (one board each).
pub async fn regions(pool: &Pool, campaign: &str) -> Result<Vec<String>, StoreError> {
    timed("regions", async {
        let client = pool::get(pool).await?;
        let rows = client
            .query(
                "SELECT DISTINCT region FROM results WHERE campaign_id = $1 AND region IS NOT NULL",
                &[&campaign],
            )
            .await
            .map_err(pg_err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    })
    .await
}
