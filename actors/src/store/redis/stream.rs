//! The results streams (`{TAG}:results`, one per shard, `REDIS_STREAM_SHARDS`): every decided
//! attempt, appended by the decide script in its player's shard and drained into PostgreSQL by
//! the PersistenceBatchers through each stream's consumer group. Shards spread one campaign's
//! ingest over a cluster's masters; on one node there is one.
//!
//! An entry is one field, [`FIELD`], holding the record's parts tab-separated in the order
//! [`pack`] writes and [`unpack`] reads: session, user, campaign, score, started ms, decided ms,
//! the refusal ('' when accepted), the region ('' when none) and the broken rule's limit ('' when
//! none; absent in entries written before it was kept). This file is the only place
//! that knows that order; the Lua script stores the value it is handed. One field instead of
//! eight keeps the batcher's parsing cheap; no part can hold a tab (user ids refuse control
//! characters, the rest are codes, names and numbers).

use std::time::Duration;

use deadpool_redis::redis;

use super::client::RedisStore;
use crate::domain::campaign::Refusal;
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
    (FIELD, value)
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
