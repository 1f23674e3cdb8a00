//! Boards and idempotency marks in Redis.
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
//! - `ban:{user}`: present while the player is banned; the decide script refuses their
//!   submits, so no score lands once their bests were taken off.
//! - `held:{user}`: hash, board key -> "score member" of a banned player's best, put back on
//!   unban.
//!
//! Deciding a session is one Lua script, so the mark, the boards and the results-stream entry
//! are written together or not at all; only then is the client told.

use std::sync::LazyLock;
use std::time::Duration;

use deadpool_redis::redis;

use super::client::{Lua, RedisStore};
use super::stream;
use crate::domain::board::{Entry, Standing};
use crate::domain::campaign::Refusal;
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, LiveBoard, UserId};
use crate::store::error::StoreError;

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

/// KEYS: mark, stream, ban, then (board, hash, version) per board. ARGV: mark TTL ms, user, score,
/// member prefix, refusal ('' when accepted), the stream entry's field and value (laid out by
/// `stream::pack`, the one place that knows it), then one TTL in seconds per board (0: none).
const DECIDE: &str = r#"
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {2, ''} end
local user, score, refused = ARGV[2], tonumber(ARGV[3]), ARGV[5]
local best, rank = false, false
if refused == '' then
  local boards = (#KEYS - 3) / 3
  for i = 0, boards - 1 do
    local z, h, v = KEYS[4 + i * 3], KEYS[5 + i * 3], KEYS[6 + i * 3]
    offer(z, h, v, user, score, ARGV[4] .. user, tonumber(ARGV[8 + i]))
    if i == 0 then
      local m = redis.call('HGET', h, user)
      best = redis.call('ZSCORE', z, m)
      rank = redis.call('ZREVRANK', z, m) + 1
    end
  end
end
-- Scores go into the mark as the strings they came as: cjson writes numbers with 14
-- significant digits, which would round a score past 10^14.
local outcome = cjson.encode({u = user, s = ARGV[3], r = refused, b = best, k = rank})
redis.call('SET', KEYS[1], outcome, 'PX', ARGV[1])
redis.call('XADD', KEYS[2], '*', ARGV[6], ARGV[7])
return {1, outcome}
"#;

/// Takes a player's best off one board; answers "score member", or false when they had none.
const TAKE_FN: &str = r#"
local function take(z, h, v, user)
  local m = redis.call('HGET', h, user)
  if not m then return false end
  local s = redis.call('ZSCORE', z, m)
  redis.call('ZREM', z, m)
  redis.call('HDEL', h, user)
  redis.call('INCR', v)
  if s then return s .. ' ' .. m end
  return false
end
"#;

/// KEYS: ban, held, then (board, hash, version) per board. ARGV: user. Bars the player and
/// moves their best on each board into `held`.
const HIDE: &str = r#"
redis.call('SET', KEYS[1], '1')
for i = 3, #KEYS, 3 do
  local taken = take(KEYS[i], KEYS[i + 1], KEYS[i + 2], ARGV[1])
  if taken then redis.call('HSET', KEYS[2], KEYS[i], taken) end
end
return 1
"#;

/// KEYS: board, hash, version. Answers every row (member, score, best first) and empties the
/// board in the same step, so the archive holds exactly what was cleared.
const RESET: &str = r#"
local rows = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('INCR', KEYS[3])
return rows
"#;

/// KEYS: (board, hash, version) per board. ARGV: user. Drops their best from each, for good.
const REMOVE: &str = r#"
local removed = 0
for i = 1, #KEYS, 3 do
  if take(KEYS[i], KEYS[i + 1], KEYS[i + 2], ARGV[1]) then removed = removed + 1 end
end
return removed
"#;

/// KEYS: ban, held, then (board, hash, version) per board. ARGV: user, then one TTL in
/// seconds per board. Puts the held bests back and lifts the bar.
const RESTORE: &str = r#"
local user = ARGV[1]
for i = 3, #KEYS, 3 do
  local z = KEYS[i]
  local held = redis.call('HGET', KEYS[2], z)
  if held then
    local space = string.find(held, ' ', 1, true)
    local score, member = tonumber(string.sub(held, 1, space - 1)), string.sub(held, space + 1)
    offer(z, KEYS[i + 1], KEYS[i + 2], user, score, member, tonumber(ARGV[2 + (i - 3) / 3]))
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"#;

/// KEYS: board, hash, version. ARGV: TTL seconds, then (user, score, member) per player.
const REBUILD: &str = r#"
local changed = 0
for i = 2, #ARGV, 3 do
  changed = changed + offer(KEYS[1], KEYS[2], KEYS[3], ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[1]))
end
return changed
"#;

const STANDING: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return false end
return {redis.call('ZREVRANK', KEYS[1], m), redis.call('ZSCORE', KEYS[1], m)}
"#;

static DECIDE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{OFFER_FN}{DECIDE}")));
static REBUILD_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{OFFER_FN}{REBUILD}")));
static STANDING_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(STANDING));
static RESET_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(RESET));
static HIDE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{TAKE_FN}{HIDE}")));
static REMOVE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{TAKE_FN}{REMOVE}")));
static RESTORE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{OFFER_FN}{RESTORE}")));

/// The member of a best reached at `at_ms`: the inverted time, then the user.
fn member_prefix(at_ms: u64) -> String {
    format!(
        "{:0width$}",
        TIME_CEILING - at_ms.min(TIME_CEILING),
        width = TIME_DIGITS
    )
}

/// The stored form of an [`Outcome`] (short keys: it is written for every session).
#[derive(serde::Deserialize)]
struct Stored {
    u: String,
    #[serde(deserialize_with = "whole")]
    s: Option<u64>,
    r: String,
    #[serde(default, deserialize_with = "whole")]
    b: Option<u64>,
    #[serde(default, deserialize_with = "whole")]
    k: Option<u64>,
}

/// A whole number the script wrote as a string (scores, exact) or a number (ranks; and
/// scores in marks written before scores were strings); Lua's cjson writes a missing value
/// as `false`.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

impl Stored {
    fn into_outcome(self) -> Result<Outcome, StoreError> {
        Ok(Outcome {
            user: UserId::stored(&self.u).ok_or(StoreError::Corrupt("user in a session mark"))?,
            score: self
                .s
                .ok_or(StoreError::Corrupt("score in a session mark"))?,
            refused: match self.r.as_str() {
                "" => None,
                code => Some(
                    Refusal::from_code(code)
                        .ok_or(StoreError::Corrupt("refusal in a session mark"))?,
                ),
            },
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

/// Board rows from ZREVRANGE ... WITHSCORES, ranked from `from_rank`.
fn entries(rows: Vec<(String, f64)>, from_rank: u64) -> Result<Vec<Entry>, StoreError> {
    rows.into_iter()
        .enumerate()
        .map(|(i, (member, score))| {
            let user = member
                .get(TIME_DIGITS..)
                .ok_or(StoreError::Corrupt("board member"))?;
            let user = UserId::stored(user).ok_or(StoreError::Corrupt("board member"))?;
            Ok(Entry {
                rank: from_rank + i as u64,
                user,
                score: score as u64,
            })
        })
        .collect()
}

impl RedisStore {
    pub(super) fn board_keys(&self, board: &BoardKey) -> [String; 3] {
        let name = board.board.to_string();
        let (c, b) = (board.campaign.as_str(), name.as_str());
        [
            self.key(&["b", c, b]),
            self.key(&["bh", c, b]),
            self.key(&["bv", c, b]),
        ]
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
            let mut call = REBUILD_SCRIPT.call(3);
            call.key(&z)
                .key(&h)
                .key(&v)
                .arg(ttl.map_or(0, |d| d.as_secs()));
            for (user, score, at) in chunk {
                call.arg(user)
                    .arg(score)
                    .arg(format!("{}{user}", member_prefix(*at)));
            }
            let n: u64 = self.run("rebuild", async |c| call.invoke(c).await).await?;
            changed += n;
        }
        Ok(changed)
    }

    pub async fn outcome(&self, session: &str) -> Result<Option<Outcome>, StoreError> {
        let key = self.key(&["s", session]);
        let json: Option<String> = self
            .run("outcome", async |c| {
                redis::cmd("GET").arg(&key).query_async(c).await
            })
            .await?;
        json.map(|j| parse_outcome(&j)).transpose()
    }

    pub async fn decide(&self, attempt: &Attempt<'_>) -> Result<Outcome, StoreError> {
        let mut invocation = DECIDE_SCRIPT.call(3 + 3 * attempt.boards.len());
        invocation
            .key(self.key(&["s", attempt.session_id]))
            .key(self.stream_key())
            .key(self.key(&["ban", attempt.user.as_str()]));
        let (field, entry) = stream::pack(&attempt.record());
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
            .arg(attempt.refused.map_or("", Refusal::code))
            .arg(field)
            .arg(entry);
        for (_, ttl) in attempt.boards {
            invocation.arg(ttl.map_or(0, |d| d.as_secs()));
        }
        let (status, json): (u8, String) = self
            .run("decide", async |c| invocation.invoke(c).await)
            .await?;
        if status == 2 {
            return Err(StoreError::Banned);
        }
        parse_outcome(&json)
    }

    /// See `Store::hide_player`.
    pub async fn hide_player(&self, user: &UserId, boards: &[LiveBoard]) -> Result<(), StoreError> {
        let mut call = HIDE_SCRIPT.call(2 + 3 * boards.len());
        call.key(self.key(&["ban", user.as_str()]))
            .key(self.key(&["held", user.as_str()]));
        for (board, _) in boards {
            for key in self.board_keys(board) {
                call.key(key);
            }
        }
        call.arg(user.as_str());
        let _: i64 = self
            .run("hide_player", async |c| call.invoke(c).await)
            .await?;
        Ok(())
    }

    /// Empties a board, answering the rows it held, best first.
    pub async fn reset(&self, board: &BoardKey) -> Result<Vec<Entry>, StoreError> {
        let [z, h, v] = self.board_keys(board);
        let mut call = RESET_SCRIPT.call(3);
        call.key(&z).key(&h).key(&v);
        let rows: Vec<(String, f64)> = self.run("reset", async |c| call.invoke(c).await).await?;
        entries(rows, 1)
    }

    /// Drops the player's best from each board; answers from how many.
    pub async fn remove_scores(
        &self,
        user: &UserId,
        boards: &[LiveBoard],
    ) -> Result<u64, StoreError> {
        let mut call = REMOVE_SCRIPT.call(3 * boards.len());
        for (board, _) in boards {
            for key in self.board_keys(board) {
                call.key(key);
            }
        }
        call.arg(user.as_str());
        self.run("remove_scores", async |c| call.invoke(c).await)
            .await
    }

    /// See `Store::restore_player`.
    pub async fn restore_player(
        &self,
        user: &UserId,
        boards: &[LiveBoard],
    ) -> Result<(), StoreError> {
        let mut call = RESTORE_SCRIPT.call(2 + 3 * boards.len());
        call.key(self.key(&["ban", user.as_str()]))
            .key(self.key(&["held", user.as_str()]));
        for (board, _) in boards {
            for key in self.board_keys(board) {
                call.key(key);
            }
        }
        call.arg(user.as_str());
        for (_, ttl) in boards {
            call.arg(ttl.map_or(0, |d| d.as_secs()));
        }
        let _: i64 = self
            .run("restore_player", async |c| call.invoke(c).await)
            .await?;
        Ok(())
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
            .run("page", async |c| {
                redis::cmd("ZREVRANGE")
                    .arg(&zset)
                    .arg(start)
                    .arg(stop)
                    .arg("WITHSCORES")
                    .query_async(c)
                    .await
            })
            .await?;
        entries(rows, from_rank)
    }

    pub async fn count(&self, board: &BoardKey) -> Result<u64, StoreError> {
        let [zset, _, _] = self.board_keys(board);
        self.run("count", async |c| {
            redis::cmd("ZCARD").arg(&zset).query_async(c).await
        })
        .await
    }

    pub async fn standing(
        &self,
        board: &BoardKey,
        user: &UserId,
    ) -> Result<Option<Standing>, StoreError> {
        let [zset, hash, _] = self.board_keys(board);
        let found: Option<(u64, f64)> = self
            .run("standing", async |c| {
                STANDING_SCRIPT
                    .call(2)
                    .key(&zset)
                    .key(&hash)
                    .arg(user.as_str())
                    .invoke(c)
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
            .run("version", async |c| {
                redis::cmd("GET").arg(&version).query_async(c).await
            })
            .await?;
        Ok(v.unwrap_or(0))
    }
}
