//! The results streams (`{TAG}:results`, one per shard, `REDIS_STREAM_SHARDS`): every decided
//! attempt, appended by the decide script in its player's shard and drained into PostgreSQL by
//! the PersistenceBatchers through each stream's consumer group. Shards spread one campaign's
//! ingest over a cluster's masters; on one node there is one.
//!
//! An entry is one field, [`FIELD`], holding the record's parts tab-separated in the order
//! [`pack`] writes and [`unpack`] reads: session, user, campaign, score, started ms, decided ms,
//! the refusal ('' when accepted), the region ('' when none) and the broken rule's limit ('' when
//! none; absent in entries written before it was kept), then for a counted game four more: the
//! claim, the drops (`code=n,...`), the flags (`code:value:limit:events;...`) and the input
//! log (base64url). This file is the only place
//! that knows that order; the Lua script stores the value it is handed. One field instead of
//! eight keeps the batcher's parsing cheap; no part can hold a tab (user ids refuse control
//! characters, the rest are codes, names and numbers).

use std::time::Duration;

use deadpool_redis::redis;

use super::client::RedisStore;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::domain::campaign::Refusal;
use crate::domain::counting::{Counted, Drop, Flag, FlagKind};
use crate::domain::decision::Record;
use crate::store::error::StoreError;

/// The one field of an entry.
pub const FIELD: &str = "r";

/// An entry's field and value for `record`.
pub fn pack(record: &Record) -> (&'static str, String) {
    let value = [
        record.session_id.as_str(),
        record.user_id.as_str(),
        record.campaign_id.as_str(),
        &record.score.to_string(),
        &record.started_ms.to_string(),
        &record.at_ms.to_string(),
        record.reason.map_or("", Refusal::code),
        record.region.as_deref().unwrap_or(""),
        &record.limit.map(|l| l.to_string()).unwrap_or_default(),
    ]
    .join("\t");
    let value = match &record.counted {
        None => value,
        Some(c) => format!("{value}\t{}", pack_counted(c)),
    };
    (FIELD, value)
}

fn pack_counted(c: &Counted) -> String {
    let dropped: Vec<String> = c
        .dropped
        .iter()
        .map(|(d, n)| format!("{}={n}", d.code()))
        .collect();
    let flags: Vec<String> = c
        .flags
        .iter()
        .map(|f| format!("{}:{}:{}:{}", f.kind.code(), f.value, f.limit, f.events))
        .collect();
    format!(
        "{}\t{}\t{}\t{}",
        c.claimed,
        dropped.join(","),
        flags.join(";"),
        B64.encode(&c.log)
    )
}

/// The four counted parts, after the first nine; `score` is the record's.
fn unpack_counted<'a>(
    score: u64,
    mut next: impl FnMut() -> Option<&'a str>,
) -> Option<Option<Counted>> {
    let Some(claimed) = next() else {
        return Some(None);
    };
    let (dropped, flags, log) = (next()?, next()?, next()?);
    let dropped = dropped
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| {
            let (code, n) = d.split_once('=')?;
            Some((Drop::from_code(code)?, n.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    let flags = flags
        .split(';')
        .filter(|f| !f.is_empty())
        .map(|f| {
            let mut p = f.split(':');
            Some(Flag {
                kind: FlagKind::from_code(p.next()?)?,
                value: p.next()?.parse().ok()?,
                limit: p.next()?.parse().ok()?,
                events: p.next()?.parse().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Some(Counted {
        score,
        claimed: claimed.parse().ok()?,
        dropped,
        flags,
        log: B64.decode(log).ok()?,
    }))
}

/// The record an entry's value holds; `None` when it is malformed.
pub fn unpack(packed: &str) -> Option<Record> {
    let mut parts = packed.split('\t');
    let mut next = || parts.next();
    let (session, user, campaign) = (next()?, next()?, next()?);
    let (score, started, at) = (
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
    );
    let (reason, region) = (next()?, next()?);
    let limit = match next() {
        None | Some("") => None,
        Some(l) => Some(l.parse().ok()?),
    };
    let counted = unpack_counted(u64::try_from(score).ok()?, &mut next)?;
    Some(Record {
        session_id: session.to_owned(),
        user_id: user.to_owned(),
        campaign_id: campaign.to_owned(),
        score,
        started_ms: started,
        at_ms: at,
        reason: match reason {
            "" => None,
            code => Some(Refusal::from_code(code)?),
        },
        region: (!region.is_empty()).then(|| region.to_owned()),
        limit,
        counted,
    })
}

/// One entry of a results stream.
pub struct StreamEntry {
    pub id: String,
    /// Which shard's stream it is in.
    pub shard: usize,
    /// `None` when the entry is malformed (logged and acknowledged, so it cannot block the
    /// stream forever).
    pub row: Option<Record>,
}

fn parse_entries(shard: usize, reply: redis::streams::StreamReadReply) -> Vec<StreamEntry> {
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| StreamEntry {
            row: e.get::<String>(FIELD).as_deref().and_then(unpack),
            id: e.id,
            shard,
        })
        .collect()
}

/// Longest pause between two rounds of non-blocking reads that found nothing.
const POLL_PAUSE: Duration = Duration::from_millis(50);

impl RedisStore {
    /// The stream of the shard tagged `tag`.
    pub(super) fn stream_key(&self, tag: &str) -> String {
        self.tagged_key(Some(tag), &["results"])
    }

    fn stream_keys(&self) -> impl Iterator<Item = (usize, String)> + '_ {
        self.shard_tags()
            .iter()
            .enumerate()
            .map(|(i, tag)| (i, self.stream_key(tag)))
    }

    /// Creates each shard's group at the stream's start (entries written before the first
    /// batcher ran are not skipped); an existing group is left as it is.
    pub async fn ensure_group(&self, group: &str) -> Result<(), StoreError> {
        for (_, key) in self.stream_keys() {
            let created: Result<(), StoreError> = self
                .run("ensure_group", async |c| {
                    redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&key)
                        .arg(group)
                        .arg("0")
                        .arg("MKSTREAM")
                        .query_async(c)
                        .await
                })
                .await;
            match created {
                Err(StoreError::Command(msg)) if msg.contains("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Entries for `consumer`: its own unacknowledged ones (`pending`), or new ones, waiting up
    /// to `block` for the first. With one stream on one node the wait is a blocking read;
    /// otherwise the shards are read in turn, from a random one so none is always last, and a
    /// round that finds nothing pauses before answering.
    pub async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        pending: bool,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let keys: Vec<(usize, String)> = self.stream_keys().collect();
        let blocking = self.blocking_reads() && !pending;
        let start = rand::random::<usize>() % keys.len();
        let mut found = Vec::new();
        for (shard, key) in keys.iter().cycle().skip(start).take(keys.len()) {
            let want = count.saturating_sub(found.len());
            if want == 0 {
                break;
            }
            let read = async |c: &mut super::client::Conn| {
                let mut cmd = redis::cmd("XREADGROUP");
                cmd.arg("GROUP")
                    .arg(group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(want);
                if blocking {
                    cmd.arg("BLOCK").arg(block.as_millis() as u64);
                }
                cmd.arg("STREAMS")
                    .arg(key)
                    .arg(if pending { "0" } else { ">" });
                cmd.query_async::<Option<redis::streams::StreamReadReply>>(c)
                    .await
            };
            let reply = if blocking {
                self.run_alone("read_group", read).await?
            } else {
                self.run("read_group", read).await?
            };
            found.extend(reply.map(|r| parse_entries(*shard, r)).unwrap_or_default());
        }
        if found.is_empty() && !pending && !blocking {
            tokio::time::sleep(block.min(POLL_PAUSE)).await;
        }
        Ok(found)
    }

    /// Takes over entries another consumer left pending for `min_idle` (it died); they then
    /// appear among this consumer's pending entries. Answers how many were taken.
    pub async fn autoclaim(
        &self,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<usize, StoreError> {
        let mut taken = 0;
        for (_, key) in self.stream_keys() {
            let reply: redis::streams::StreamAutoClaimReply = self
                .run("autoclaim", async |c| {
                    redis::cmd("XAUTOCLAIM")
                        .arg(&key)
                        .arg(group)
                        .arg(consumer)
                        .arg(min_idle.as_millis() as u64)
                        .arg("0-0")
                        .arg("COUNT")
                        .arg(count)
                        .query_async(c)
                        .await
                })
                .await?;
            taken += reply.claimed.len();
        }
        Ok(taken)
    }

    /// Acknowledges written entries and deletes them, so the streams hold exactly what is not
    /// yet in PostgreSQL.
    pub async fn ack(&self, group: &str, entries: &[StreamEntry]) -> Result<(), StoreError> {
        let mut by_shard: Vec<Vec<&str>> = vec![Vec::new(); self.shard_tags().len()];
        for e in entries {
            by_shard[e.shard].push(&e.id);
        }
        for ((_, key), ids) in self.stream_keys().zip(by_shard) {
            if ids.is_empty() {
                continue;
            }
            self.run("ack", async |c| {
                redis::pipe()
                    .cmd("XACK")
                    .arg(&key)
                    .arg(group)
                    .arg(&ids)
                    .ignore()
                    .cmd("XDEL")
                    .arg(&key)
                    .arg(&ids)
                    .ignore()
                    .query_async::<()>(c)
                    .await
            })
            .await?;
        }
        Ok(())
    }

    /// Entries not yet written to PostgreSQL, and the age of the oldest in ms.
    pub async fn backlog(&self, now_ms: u64) -> Result<(u64, u64), StoreError> {
        let (mut total, mut oldest) = (0, 0);
        for (_, key) in self.stream_keys() {
            let (len, first): (u64, redis::streams::StreamRangeReply) = self
                .run("backlog", async |c| {
                    redis::pipe()
                        .cmd("XLEN")
                        .arg(&key)
                        .cmd("XRANGE")
                        .arg(&key)
                        .arg("-")
                        .arg("+")
                        .arg("COUNT")
                        .arg(1)
                        .query_async(c)
                        .await
                })
                .await?;
            total += len;
            let age = first
                .ids
                .first()
                .and_then(|e| e.id.split('-').next()?.parse::<u64>().ok())
                .map_or(0, |ms| now_ms.saturating_sub(ms));
            oldest = oldest.max(age);
        }
        Ok((total, oldest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_an_entry_with_and_without_a_count() {
        let mut record = Record {
            session_id: "s1".into(),
            user_id: "amy".into(),
            campaign_id: "tap-rush".into(),
            score: 42,
            started_ms: 1_000,
            at_ms: 21_000,
            reason: None,
            region: Some("eu".into()),
            limit: None,
            counted: None,
        };
        assert_eq!(unpack(&pack(&record).1), Some(record.clone()));
        record.counted = Some(Counted {
            score: 42,
            claimed: 50,
            dropped: vec![(Drop::Late, 3), (Drop::TooClose, 1)],
            flags: vec![Flag {
                kind: FlagKind::ScoreMismatch,
                value: 50.0,
                limit: 42.0,
                events: 42,
            }],
            log: vec![1, 0, 255, 7],
        });
        assert_eq!(unpack(&pack(&record).1), Some(record.clone()));
        let packed = pack(&record).1;
        let cut = &packed[..packed.rfind('\t').unwrap()];
        assert_eq!(
            unpack(cut),
            None,
            "a counted entry missing its log is malformed"
        );
    }
}
