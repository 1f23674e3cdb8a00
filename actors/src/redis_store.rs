//! The production engine's Redis half: boards, idempotency marks and the results stream.
//!
//! Keys (all under the configured prefix):
//! - `b:{campaign}:{board}`: sorted set, score = points (exact), member = 13-digit inverted
//!   time of the best + user id. Equal points order by member, so with ZREVRANGE the earlier
//!   time comes first, exactly, for any score up to 2^53: a float composite of score and time
//!   would cap scores near 2^21.
//! - `bh:{campaign}:{board}`: hash, user -> their member in `b:` (for ranks and replacement).
//! - `bv:{campaign}:{board}`: version, incremented whenever the board changes; rooms on every
//!   instance poll it each tick.
//! - `s:{session}`: the decided outcome of a session (idempotency mark), with a TTL.
//! - `results`: the stream of accepted results and refused attempts that the
//!   PersistenceBatcher writes to PostgreSQL (one tab-separated field per entry).
//!
//! Deciding a session is one Lua script, so the mark, the boards and the stream entry are
//! written together or not at all; only then is the client told.

use std::time::Duration;

use deadpool_redis::redis::{self, Script};
use deadpool_redis::{Config as PoolConfig, Pool, Runtime, Timeouts};

use crate::board::Entry;
use crate::config::RedisConfig;
use crate::ids::{BoardKey, UserId};
use crate::protocol::Standing;
use crate::store::{Attempt, Outcome, StoreError};

/// Largest inverted-time prefix; 13 digits cover Unix ms until the year 2286.
const TIME_CEILING: u64 = 9_999_999_999_999;
const TIME_DIGITS: usize = 13;

/// Offers a score to one board with best-score semantics (only a higher score replaces the
/// best); shared by every script that writes boards, so they cannot drift apart.
const OFFER_FN: &str = r#"
local function offer(z, h, v, user, score, member, ttl)
  local old = redis.call('HGET', h, user)
  local old_score = old and tonumber(redis.call('ZSCORE', z, old))
  if old_score and score <= old_score then return 0 end
  if old then redis.call('ZREM', z, old) end
  redis.call('ZADD', z, score, member)
  redis.call('HSET', h, user, member)
  redis.call('INCR', v)
  if ttl > 0 then
    redis.call('EXPIRE', z, ttl)
    redis.call('EXPIRE', h, ttl)
    redis.call('EXPIRE', v, ttl)
  end
  return 1
end
"#;

/// KEYS: mark, stream, then (board, hash, version) per board. ARGV: mark TTL ms, user, score,
/// member prefix, refusal ('' when accepted), session, campaign, started ms, now ms, region
/// ('' when none), then one TTL in seconds per board (0: none).
const DECIDE: &str = r#"
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local user, score, refused = ARGV[2], tonumber(ARGV[3]), ARGV[5]
local best, rank = false, false
if refused == '' then
  local boards = (#KEYS - 2) / 3
  for i = 0, boards - 1 do
    local z, h, v = KEYS[3 + i * 3], KEYS[4 + i * 3], KEYS[5 + i * 3]
    offer(z, h, v, user, score, ARGV[4] .. user, tonumber(ARGV[11 + i]))
    if i == 0 then
      local m = redis.call('HGET', h, user)
      best = tonumber(redis.call('ZSCORE', z, m))
      rank = redis.call('ZREVRANK', z, m) + 1
    end
  end
end
local outcome = cjson.encode({u = user, s = score, r = refused, b = best, k = rank})
redis.call('SET', KEYS[1], outcome, 'PX', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'r',
  table.concat({ARGV[6], user, ARGV[7], ARGV[3], ARGV[8], ARGV[9], refused, ARGV[10]}, '\t'))
return {1, outcome}
"#;

/// KEYS: board, hash, version. ARGV: TTL seconds, then (user, score, member) per player.
const REBUILD: &str = r#"
local changed = 0
for i = 2, #ARGV, 3 do
  changed = changed + offer(KEYS[1], KEYS[2], KEYS[3], ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[1]))
end
return changed
"#;

/// KEYS: the user's sockets. ARGV: now ms, expiry ms, member, cap, key TTL ms. Answers 1 when
/// the socket got a place, 0 when the user is at the cap.
const CLAIM_SOCKET: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"#;

const STANDING: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return false end
return {redis.call('ZREVRANK', KEYS[1], m), redis.call('ZSCORE', KEYS[1], m)}
"#;

/// One pool per thread that uses Redis. A connection's I/O task runs on the thread that
/// opened it, so a single shared pool would put every command of every connection actor
/// through whichever thread opened the connections first. Split this way, each HTTP worker
/// talks to Redis from its own thread, and the pools together never exceed
/// `REDIS_POOL_SIZE`.
struct ThreadPools {
    config: PoolConfig,
    per_thread: usize,
    pools: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, Pool>>,
}

impl ThreadPools {
    fn get(&self) -> Result<Pool, StoreError> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&std::thread::current().id()) {
            return Ok(pool.clone());
        }
        let mut config = self.config.clone();
        if let Some(pool) = config.pool.as_mut() {
            pool.max_size = self.per_thread;
        }
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        pools.insert(std::thread::current().id(), pool.clone());
        Ok(pool)
    }
}

/// Cheap to clone: the pools and scripts are shared.
#[derive(Clone)]
pub struct RedisStore {
    pools: std::sync::Arc<ThreadPools>,
    prefix: String,
    timeout: Duration,
    decide: std::sync::Arc<Script>,
    rebuild: std::sync::Arc<Script>,
    standing: std::sync::Arc<Script>,
    claim_socket: std::sync::Arc<Script>,
}

/// The member of a best reached at `at_ms`: the inverted time, then the user.
fn member_prefix(at_ms: u64) -> String {
    format!(
        "{:0width$}",
        TIME_CEILING - at_ms.min(TIME_CEILING),
        width = TIME_DIGITS
    )
}

/// The stored form of an [`Outcome`] (short keys: it is written for every session).
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    u: String,
    s: u64,
    r: String,
    #[serde(default, deserialize_with = "false_as_none")]
    b: Option<u64>,
    #[serde(default, deserialize_with = "false_as_none")]
    k: Option<u64>,
}

/// Lua's cjson writes a missing number as `false`.
fn false_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        _ => None,
    })
}

impl Stored {
    fn into_outcome(self) -> Result<Outcome, StoreError> {
        Ok(Outcome {
            user: UserId::parse(&self.u)
                .map_err(|_| StoreError::Corrupt("user in a session mark"))?,
            score: self.s,
            refused: (!self.r.is_empty()).then_some(self.r),
            best: self.b,
            rank: self.k,
        })
    }
}

fn parse_outcome(json: &str) -> Result<Outcome, StoreError> {
    serde_json::from_str::<Stored>(json)
        .map_err(|_| StoreError::Corrupt("session mark"))?
        .into_outcome()
}

impl RedisStore {
    /// `threads` is the number of HTTP workers.
    pub fn new(config: &RedisConfig, threads: usize) -> Result<Self, StoreError> {
        let url = config
            .url
            .clone()
            .ok_or(StoreError::Unavailable("REDIS_URL is not set".into()))?;
        let mut pool_config = PoolConfig::from_url(url);
        let mut pool = deadpool_redis::PoolConfig::new(config.pool_size);
        let wait = Duration::from_millis(config.pool_wait_timeout_ms);
        pool.timeouts = Timeouts {
            wait: Some(wait),
            create: Some(wait),
            recycle: Some(wait),
        };
        pool_config.pool = Some(pool);
        // Threads that use Redis: the HTTP workers and the thread running the engine's actors.
        let threads = threads.max(1) + 1;
        let per_thread = (config.pool_size / threads).max(2);
        let pools = ThreadPools {
            config: pool_config,
            per_thread,
            pools: Default::default(),
        };
        Ok(Self {
            pools: std::sync::Arc::new(pools),
            prefix: config.prefix.clone(),
            timeout: Duration::from_millis(config.command_timeout_ms),
            decide: std::sync::Arc::new(Script::new(&format!("{OFFER_FN}{DECIDE}"))),
            rebuild: std::sync::Arc::new(Script::new(&format!("{OFFER_FN}{REBUILD}"))),
            standing: std::sync::Arc::new(Script::new(STANDING)),
            claim_socket: std::sync::Arc::new(Script::new(CLAIM_SOCKET)),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }

    fn board_keys(&self, board: &BoardKey) -> [String; 3] {
        let (c, b) = (board.campaign.as_str(), board.board.as_str());
        [
            self.key(&["b", c, b]),
            self.key(&["bh", c, b]),
            self.key(&["bv", c, b]),
        ]
    }

    pub fn stream_key(&self) -> String {
        self.key(&["results"])
    }

    /// Runs one Redis interaction with a pooled connection, bounded by the command timeout.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: AsyncFnOnce(&mut deadpool_redis::Connection) -> redis::RedisResult<T>,
    {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            let pool = self.pools.get()?;
            let mut conn = pool
                .get()
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&mut conn).await.map_err(StoreError::from)
        })
        .await
        .unwrap_or(Err(StoreError::Timeout));
        crate::telemetry::redis_call(started.elapsed(), result.is_ok());
        result
    }

    /// Offers each player's best (user, score, reached at ms) to a board, as results would
    /// have: a board is only ever raised, never lowered. Answers how many rows changed.
    pub async fn rebuild(
        &self,
        board: &BoardKey,
        ttl: Option<Duration>,
        bests: &[(String, u64, u64)],
    ) -> Result<u64, StoreError> {
        let [z, h, v] = self.board_keys(board);
        let mut changed = 0;
        for chunk in bests.chunks(500) {
            let mut call = self.rebuild.prepare_invoke();
            call.key(&z)
                .key(&h)
                .key(&v)
                .arg(ttl.map_or(0, |d| d.as_secs()));
            for (user, score, at) in chunk {
                call.arg(user)
                    .arg(score)
                    .arg(format!("{}{user}", member_prefix(*at)));
            }
            let n: u64 = self.run(async |c| call.invoke_async(c).await).await?;
            changed += n;
        }
        Ok(changed)
    }

    /// Claims one of `user`'s `cap` socket places across every instance, for `lease` (renewed
    /// by [`Self::renew_sockets`] each heartbeat, so a crashed instance's places lapse).
    pub async fn claim_socket(
        &self,
        user: &str,
        member: &str,
        cap: usize,
        lease: Duration,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let key = self.key(&["uc", user]);
        let lease_ms = lease.as_millis() as u64;
        let got: u8 = self
            .run(async |c| {
                self.claim_socket
                    .key(&key)
                    .arg(now_ms)
                    .arg(now_ms + lease_ms)
                    .arg(member)
                    .arg(cap)
                    .arg(lease_ms)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(got == 1)
    }

    /// Renews the leases of this instance's places, (user, member) pairs, in one pipeline.
    pub async fn renew_sockets(
        &self,
        held: &[(String, String)],
        lease: Duration,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let lease_ms = lease.as_millis() as u64;
        let mut pipe = redis::pipe();
        for (user, member) in held {
            let key = self.key(&["uc", user]);
            pipe.cmd("ZADD")
                .arg(&key)
                .arg("XX")
                .arg(now_ms + lease_ms)
                .arg(member)
                .ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(lease_ms).ignore();
        }
        self.run(async |c| pipe.query_async(c).await).await
    }

    pub async fn release_socket(&self, user: &str, member: &str) -> Result<(), StoreError> {
        let key = self.key(&["uc", user]);
        self.run(async |c| {
            redis::cmd("ZREM")
                .arg(&key)
                .arg(member)
                .query_async(c)
                .await
        })
        .await
    }

    /// Adds each user's new message count to their window `index` in one pipeline; answers
    /// each window's total across instances, in order.
    pub async fn add_message_counts(
        &self,
        counts: &[(String, u64)],
        index: u64,
        window: Duration,
    ) -> Result<Vec<u64>, StoreError> {
        let window_ms = window.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        for (user, n) in counts {
            let key = self.key(&["rl", user, &index.to_string()]);
            pipe.cmd("INCRBY").arg(&key).arg(*n);
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(window_ms * 2)
                .arg("NX")
                .ignore();
        }
        self.run(async |c| pipe.query_async(c).await).await
    }

    /// The pool's connections, idle ones, and its cap.
    pub fn pool_usage(&self) -> (usize, usize, usize) {
        let pools = self.pools.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .values()
            .map(|p| p.status())
            .fold((0, 0, 0), |(a, b, c), s| {
                (a + s.size, b + s.available, c + s.max_size)
            })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(async |c| redis::cmd("PING").query_async(c).await)
            .await
    }

    pub async fn outcome(&self, session: &str) -> Result<Option<Outcome>, StoreError> {
        let key = self.key(&["s", session]);
        let json: Option<String> = self
            .run(async |c| redis::cmd("GET").arg(&key).query_async(c).await)
            .await?;
        json.map(|j| parse_outcome(&j)).transpose()
    }

    pub async fn decide(&self, attempt: &Attempt<'_>) -> Result<Outcome, StoreError> {
        let mut invocation = self.decide.prepare_invoke();
        invocation
            .key(self.key(&["s", attempt.session_id]))
            .key(self.stream_key());
        for (board, _) in attempt.boards {
            for key in self.board_keys(board) {
                invocation.key(key);
            }
        }
        let stamp = member_prefix(attempt.now_ms);
        invocation
            .arg(attempt.keep_until_ms.saturating_sub(attempt.now_ms).max(1))
            .arg(attempt.user.as_str())
            .arg(attempt.score)
            .arg(stamp)
            .arg(attempt.refused.unwrap_or(""))
            .arg(attempt.session_id)
            .arg(attempt.campaign.as_str())
            .arg(attempt.started_ms)
            .arg(attempt.now_ms)
            .arg(attempt.region.map_or("", |r| r.as_str()));
        for (_, ttl) in attempt.boards {
            invocation.arg(ttl.map_or(0, |d| d.as_secs()));
        }
        let (_fresh, json): (u8, String) =
            self.run(async |c| invocation.invoke_async(c).await).await?;
        parse_outcome(&json)
    }

    pub async fn top(&self, board: &BoardKey, n: usize) -> Result<Vec<Entry>, StoreError> {
        self.page(board, 1, n).await
    }

    pub async fn page(
        &self,
        board: &BoardKey,
        from_rank: u64,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        if count == 0 || from_rank == 0 {
            return Ok(Vec::new());
        }
        let [zset, _, _] = self.board_keys(board);
        let (start, stop) = (from_rank - 1, from_rank - 1 + count as u64 - 1);
        let rows: Vec<(String, f64)> = self
            .run(async |c| {
                redis::cmd("ZREVRANGE")
                    .arg(&zset)
                    .arg(start)
                    .arg(stop)
                    .arg("WITHSCORES")
                    .query_async(c)
                    .await
            })
            .await?;
        rows.into_iter()
            .enumerate()
            .map(|(i, (member, score))| {
                let user = member
                    .get(TIME_DIGITS..)
                    .ok_or(StoreError::Corrupt("board member"))?;
                let user = UserId::parse(user).map_err(|_| StoreError::Corrupt("board member"))?;
                Ok(Entry {
                    rank: from_rank + i as u64,
                    user,
                    score: score as u64,
                })
            })
            .collect()
    }

    pub async fn count(&self, board: &BoardKey) -> Result<u64, StoreError> {
        let [zset, _, _] = self.board_keys(board);
        self.run(async |c| redis::cmd("ZCARD").arg(&zset).query_async(c).await)
            .await
    }

    pub async fn standing(
        &self,
        board: &BoardKey,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError> {
        let [zset, hash, _] = self.board_keys(board);
        let found: Option<(u64, f64)> = self
            .run(async |c| {
                self.standing
                    .key(&zset)
                    .key(&hash)
                    .arg(user.as_str())
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(found.map(|(rank, score)| Standing {
            rank: rank + 1,
            score: score as u64,
        }))
    }

    pub async fn version(&self, board: &BoardKey) -> Result<u64, StoreError> {
        let [_, _, version] = self.board_keys(board);
        let v: Option<u64> = self
            .run(async |c| redis::cmd("GET").arg(&version).query_async(c).await)
            .await?;
        Ok(v.unwrap_or(0))
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Command(e.to_string())
        }
    }
}

/// One entry of the results stream.
pub struct StreamEntry {
    pub id: String,
    /// `None` when the entry is malformed (logged and acknowledged, so it cannot block the
    /// stream forever).
    pub row: Option<crate::pg::Row>,
}

fn parse_entries(reply: redis::streams::StreamReadReply) -> Vec<StreamEntry> {
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|e| StreamEntry {
            row: row_of(&e),
            id: e.id,
        })
        .collect()
}

/// An entry is one field `r`: session, user, campaign, score, started ms, decided ms, the
/// refusal ('' when accepted) and the region ('' when none), tab-separated. One field instead of seven keeps the batcher's
/// parsing cheap; no part can hold a tab (user ids refuse control characters, the rest are
/// codes, names and numbers).
fn row_of(e: &redis::streams::StreamId) -> Option<crate::pg::Row> {
    let packed: String = e.get("r")?;
    let mut parts = packed.split('\t');
    let mut next = || parts.next();
    let (session, user, campaign) = (next()?, next()?, next()?);
    let (score, started, at) = (
        next()?.parse().ok()?,
        next()?.parse().ok()?,
        next()?.parse().ok()?,
    );
    let (reason, region) = (next()?, next()?);
    Some(crate::pg::Row {
        session_id: session.to_owned(),
        user_id: user.to_owned(),
        campaign_id: campaign.to_owned(),
        score,
        started_ms: started,
        at_ms: at,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        region: (!region.is_empty()).then(|| region.to_owned()),
    })
}

/// The consumer-group side of the results stream, used by the PersistenceBatcher.
impl RedisStore {
    /// Creates the group at the stream's start (entries written before the first batcher ran
    /// are not skipped); an existing group is left as it is.
    pub async fn ensure_group(&self, group: &str) -> Result<(), StoreError> {
        let key = self.stream_key();
        let created: Result<(), StoreError> = self
            .run(async |c| {
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
            Err(StoreError::Command(msg)) if msg.contains("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Entries for `consumer`: its own unacknowledged ones (`pending`), or new ones, waiting up
    /// to `block` for the first.
    pub async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        pending: bool,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let key = self.stream_key();
        let reply: Option<redis::streams::StreamReadReply> = self
            .run(async |c| {
                let mut cmd = redis::cmd("XREADGROUP");
                cmd.arg("GROUP")
                    .arg(group)
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(count);
                if !pending {
                    cmd.arg("BLOCK").arg(block.as_millis() as u64);
                }
                cmd.arg("STREAMS")
                    .arg(&key)
                    .arg(if pending { "0" } else { ">" });
                cmd.query_async(c).await
            })
            .await?;
        Ok(reply.map(parse_entries).unwrap_or_default())
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
        let key = self.stream_key();
        let reply: redis::streams::StreamAutoClaimReply = self
            .run(async |c| {
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
        Ok(reply.claimed.len())
    }

    /// Acknowledges written entries and deletes them, so the stream holds exactly what is not
    /// yet in PostgreSQL.
    pub async fn ack(&self, group: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.stream_key();
        self.run(async |c| {
            redis::pipe()
                .cmd("XACK")
                .arg(&key)
                .arg(group)
                .arg(ids)
                .ignore()
                .cmd("XDEL")
                .arg(&key)
                .arg(ids)
                .ignore()
                .query_async(c)
                .await
        })
        .await
    }

    /// Entries not yet written to PostgreSQL, and the age of the oldest in ms.
    pub async fn backlog(&self, now_ms: u64) -> Result<(u64, u64), StoreError> {
        let key = self.stream_key();
        let (len, first): (u64, redis::streams::StreamRangeReply) = self
            .run(async |c| {
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
        let oldest = first
            .ids
            .first()
            .and_then(|e| e.id.split('-').next()?.parse::<u64>().ok())
            .map_or(0, |ms| now_ms.saturating_sub(ms));
        Ok((len, oldest))
    }
}
