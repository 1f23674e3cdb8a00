//! Boards and idempotency marks in Redis.
//!
//! Keys (all under the configured prefix), in two kinds of hash slot:
//!
//! A campaign's slot, `{c:NAME}`:
//! - `{c:NAME}:b:BOARD`: sorted set, score = points (exact), member = 13-digit inverted time of
//!   the best + user id. Equal points order by member, so with ZREVRANGE the earlier time comes
//!   first, exactly, for any score up to 2^53: a float composite of score and time would cap
//!   scores near 2^21.
//! - `{c:NAME}:bh:BOARD`: hash, user -> their member in `b:` (for ranks and replacement).
//! - `{c:NAME}:bv:BOARD`: version, incremented whenever the board changes; rooms on every
//!   instance poll it each tick.
//! - `{c:NAME}:bars`: hash of what keeps a score off the campaign's boards: `b:USER` while the
//!   player is banned, `r:USER` = the time up to which their results were removed, `z:BOARD` =
//!   when the board was last reset. Every write to a board goes through `offer`, which obeys
//!   them, so a late write (a result's second step, the batcher's re-raise, a rebuild) cannot
//!   put back what an operator took off.
//! - `{c:NAME}:held:USER`: hash, board key -> "score member" of a banned player's best, put
//!   back on unban.
//!
//! A player's shard's slot, `{TAG}` (one of `REDIS_STREAM_SHARDS`, see `slots.rs`):
//! - `{TAG}:s:SESSION`: the decided outcome of a session (idempotency mark), with a TTL.
//! - `{TAG}:ban:USER`: present while the player is banned; deciding refuses their submits.
//! - `{TAG}:results`: the shard's results stream (`stream.rs`).
//!
//! On one node a decision is one Lua script ([`DECIDE`]): the mark, the boards and the stream
//! entry are written together or not at all, and only then is the client told. On a cluster the
//! two slots are on different masters, so a decision is two steps: [`MARK`] writes the mark and
//! the stream entry (the decision, durable from then on), then [`RAISE`] offers the score to
//! the boards. Raising is idempotent (best of), so a second step that failed is done again by
//! the submit's retry (which finds the mark and raises again) and by the PersistenceBatcher,
//! which re-raises every result it writes to PostgreSQL before acknowledging it.
//! docs/RELIABILITY.md gives the argument in full.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use deadpool_redis::redis;

use super::client::{campaign_tag, Lua, RedisStore};
use super::stream;
use crate::domain::board::{Entry, Standing};
use crate::domain::campaign::Refusal;
use crate::domain::decision::{Attempt, Outcome};
use crate::domain::ids::{BoardKey, BoardKind, CampaignId, LiveBoard, UserId};
use crate::store::error::StoreError;

/// Largest inverted-time prefix; 13 digits cover Unix ms until the year 2286.
const TIME_CEILING: u64 = 9_999_999_999_999;
const TIME_DIGITS: usize = 13;

/// Offers a score to one board with best-score semantics (only a higher score replaces the
/// best), unless the campaign's bars keep it off: the player is banned, the result was
/// removed (reached at or before the removal), or the board was reset after it was reached.
/// Shared by every script that writes boards, so they cannot drift apart.
const OFFER_FN: &str = r#"
local function offer(z, h, v, bars, user, score, member, ttl)
  local at = 9999999999999 - tonumber(string.sub(member, 1, 13))
  local bar = redis.call('HMGET', bars, 'b:' .. user, 'r:' .. user, 'z:' .. z)
  if bar[1] then return 0 end
  if bar[2] and at <= tonumber(bar[2]) then return 0 end
  if bar[3] and at < tonumber(bar[3]) then return 0 end
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

-- Offers to the boards keys[first..] (board, hash, version each) with one TTL per board from
-- ttls[ttl_first..]; answers the best and rank on the first board afterwards.
local function raise(keys, first, bars, user, score, member, ttls, ttl_first)
  local best, rank = false, false
  for i = 0, (#keys - first + 1) / 3 - 1 do
    local z, h, v = keys[first + i * 3], keys[first + 1 + i * 3], keys[first + 2 + i * 3]
    offer(z, h, v, bars, user, score, member, tonumber(ttls[ttl_first + i]))
    if i == 0 then
      local m = redis.call('HGET', h, user)
      if m then
        best = redis.call('ZSCORE', z, m)
        rank = redis.call('ZREVRANK', z, m) + 1
      end
    end
  end
  return best, rank
end
"#;

/// The decision's half in the player's shard: an earlier decision of the session answers
/// (status 0), a ban refuses (2), a stream at its bound holds back (3); else `record` writes
/// the mark and the stream entry (1). Each answer ends with the master's replica count when
/// the decision waits for replicas (see `RedisStore::replicate`). Scores go into the mark as
/// the strings they came as: cjson writes numbers with 14 significant digits, which would
/// round a score past 10^14.
const MARK_FN: &str = r#"
-- How many replicas this master has now, when the decision is to wait for them ('1').
local function replicas(wanted)
  if wanted ~= '1' then return 0 end
  return tonumber(string.match(redis.call('INFO', 'replication'), 'connected_slaves:(%d+)')) or 0
end

local function prior(mark, stream, ban, max_backlog, wanted)
  local existing = redis.call('GET', mark)
  if existing then return {0, existing, replicas(wanted)} end
  if redis.call('EXISTS', ban) == 1 then return {2, '', 0} end
  if redis.call('XLEN', stream) >= max_backlog then return {3, '', 0} end
  return false
end

local function record(mark, stream, ttl_ms, outcome, field, entry)
  redis.call('SET', mark, outcome, 'PX', ttl_ms)
  redis.call('XADD', stream, '*', field, entry)
end
"#;

/// One node. KEYS: mark, stream, ban, bars, then (board, hash, version) per board. ARGV: mark
/// TTL ms, user, score, member, refusal ('' when accepted), the stream entry's field and value
/// (laid out by `stream::pack`, the one place that knows it), the backlog bound, the decision's
/// time, whether to count replicas, then one TTL in seconds per board (0: none).
const DECIDE: &str = r#"
local seen = prior(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[8]), ARGV[10])
if seen then return seen end
local user, refused = ARGV[2], ARGV[5]
local best, rank = false, false
if refused == '' then
  best, rank = raise(KEYS, 5, KEYS[4], user, tonumber(ARGV[3]), ARGV[4], ARGV, 11)
end
local outcome = cjson.encode({u = user, s = ARGV[3], r = refused, b = best, k = rank, t = ARGV[9]})
record(KEYS[1], KEYS[2], ARGV[1], outcome, ARGV[6], ARGV[7])
return {1, outcome, replicas(ARGV[10])}
"#;

/// A cluster's first step. KEYS: mark, stream, ban. ARGV: mark TTL ms, user, score, refusal,
/// the stream entry's field and value, the backlog bound, the decision's time, whether to count
/// replicas.
const MARK: &str = r#"
local seen = prior(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[7]), ARGV[9])
if seen then return seen end
local outcome = cjson.encode({u = ARGV[2], s = ARGV[3], r = ARGV[4], t = ARGV[8]})
record(KEYS[1], KEYS[2], ARGV[1], outcome, ARGV[5], ARGV[6])
return {1, outcome, replicas(ARGV[9])}
"#;

/// A cluster's second step, and any raise of a decided result. KEYS: bars, then (board, hash,
/// version) per board. ARGV: user, score, member, then one TTL in seconds per board.
const RAISE: &str = r#"
local best, rank = raise(KEYS, 2, KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV, 4)
return {best, rank}
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

/// KEYS: bars, held, then (board, hash, version) per board of one campaign. ARGV: user. Bars
/// the player from the campaign's boards and moves their best on each into `held`.
const HIDE: &str = r#"
redis.call('HSET', KEYS[1], 'b:' .. ARGV[1], '1')
for i = 3, #KEYS, 3 do
  local taken = take(KEYS[i], KEYS[i + 1], KEYS[i + 2], ARGV[1])
  if taken then redis.call('HSET', KEYS[2], KEYS[i], taken) end
end
return 1
"#;

/// KEYS: bars, board, hash, version. ARGV: now ms. Answers every row (member, score, best
/// first) and empties the board in the same step, so the archive holds exactly what was
/// cleared; results reached before now never return to it.
const RESET: &str = r#"
local rows = redis.call('ZREVRANGE', KEYS[2], 0, -1, 'WITHSCORES')
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], 'z:' .. KEYS[2], ARGV[1])
return rows
"#;

/// KEYS: bars, then (board, hash, version) per board. ARGV: user, now ms. Drops their best
/// from each, for good: results reached up to now never return.
const REMOVE: &str = r#"
redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
local removed = 0
for i = 2, #KEYS, 3 do
  if take(KEYS[i], KEYS[i + 1], KEYS[i + 2], ARGV[1]) then removed = removed + 1 end
end
return removed
"#;

/// KEYS: bars, held, then (board, hash, version) per board. ARGV: user, then one TTL in
/// seconds per board. Lifts the bar and puts the held bests back.
const RESTORE: &str = r#"
local user = ARGV[1]
redis.call('HDEL', KEYS[1], 'b:' .. user)
for i = 3, #KEYS, 3 do
  local z = KEYS[i]
  local held = redis.call('HGET', KEYS[2], z)
  if held then
    local space = string.find(held, ' ', 1, true)
    local score, member = tonumber(string.sub(held, 1, space - 1)), string.sub(held, space + 1)
    offer(z, KEYS[i + 1], KEYS[i + 2], KEYS[1], user, score, member, tonumber(ARGV[2 + (i - 3) / 3]))
  end
end
redis.call('DEL', KEYS[2])
return 1
"#;

/// KEYS: bars, board, hash, version. ARGV: TTL seconds, then (user, score, member) per player.
const REBUILD: &str = r#"
local changed = 0
for i = 2, #ARGV, 3 do
  changed = changed + offer(KEYS[2], KEYS[3], KEYS[4], KEYS[1], ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[1]))
end
return changed
"#;

const STANDING: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return false end
return {redis.call('ZREVRANK', KEYS[1], m), redis.call('ZSCORE', KEYS[1], m)}
"#;

static DECIDE_SCRIPT: LazyLock<Lua> =
    LazyLock::new(|| Lua::new(format!("{OFFER_FN}{MARK_FN}{DECIDE}")));
static MARK_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{MARK_FN}{MARK}")));
static RAISE_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(format!("{OFFER_FN}{RAISE}")));
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
    /// When it was decided (absent in marks written before the cluster's two steps).
    #[serde(default, deserialize_with = "whole")]
    t: Option<u64>,
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

/// The outcome a mark holds, and when it was decided.
fn parse_outcome(json: &str) -> Result<(Outcome, Option<u64>), StoreError> {
    let stored =
        serde_json::from_str::<Stored>(json).map_err(|_| StoreError::Corrupt("session mark"))?;
    let at = stored.t;
    Ok((stored.into_outcome()?, at))
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

/// Boards grouped by campaign, for the scripts that must touch one campaign's slot at a time.
fn by_campaign(boards: &[LiveBoard]) -> BTreeMap<&CampaignId, Vec<&LiveBoard>> {
    let mut grouped: BTreeMap<&CampaignId, Vec<&LiveBoard>> = BTreeMap::new();
    for live in boards {
        grouped.entry(&live.0.campaign).or_default().push(live);
    }
    grouped
}

impl RedisStore {
    /// A key in `campaign`'s slot.
    fn campaign_key(&self, campaign: &CampaignId, parts: &[&str]) -> String {
        self.tagged_key(Some(&campaign_tag(campaign.as_str())), parts)
    }

    /// A key in the slot of `user`'s shard.
    fn shard_key(&self, user: &str, parts: &[&str]) -> String {
        self.tagged_key(Some(self.user_shard(user)), parts)
    }

    pub(super) fn board_keys(&self, board: &BoardKey) -> [String; 3] {
        let name = board.board.to_string();
        [
            self.campaign_key(&board.campaign, &["b", &name]),
            self.campaign_key(&board.campaign, &["bh", &name]),
            self.campaign_key(&board.campaign, &["bv", &name]),
        ]
    }

    fn bars_key(&self, campaign: &CampaignId) -> String {
        self.campaign_key(campaign, &["bars"])
    }

    /// Offers each player's best (user, score, reached at ms) to a board, as results would
    /// have: a board is only ever raised, never lowered, and never past the campaign's bars.
    /// Answers how many rows changed.
    pub async fn rebuild(
        &self,
        board: &BoardKey,
        ttl: Option<Duration>,
        bests: &[(String, u64, u64)],
    ) -> Result<u64, StoreError> {
        let [z, h, v] = self.board_keys(board);
        let bars = self.bars_key(&board.campaign);
        let mut changed = 0;
        for chunk in bests.chunks(500) {
            let mut call = REBUILD_SCRIPT.call(4);
            call.key(&bars)
                .key(&z)
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

    /// The session's decision, if it has one. A cluster's marks hold no standing (it is
    /// written in the second step, on the campaign's master): an accepted one is answered with
    /// the player's standing on the campaign's global board now.
    pub async fn outcome(
        &self,
        session: &str,
        user: &UserId,
        campaign: &CampaignId,
    ) -> Result<Option<Outcome>, StoreError> {
        let key = self.shard_key(user.as_str(), &["s", session]);
        let json: Option<String> = self
            .run("outcome", async |c| {
                redis::cmd("GET").arg(&key).query_async(c).await
            })
            .await?;
        let Some((mut outcome, at)) = json.as_deref().map(parse_outcome).transpose()? else {
            return Ok(None);
        };
        if self.is_cluster() && outcome.refused.is_none() && outcome.best.is_none() {
            let global = BoardKey::of(campaign, &BoardKind::Global, at.unwrap_or(0));
            if let Some(standing) = self.standing(&global, user).await? {
                outcome.best = Some(standing.score);
                outcome.rank = Some(standing.rank);
            }
        }
        Ok(Some(outcome))
    }

    /// Decides `attempt`, or answers the session's earlier decision: in one script on one node,
    /// in two steps on a cluster (see the module doc).
    pub async fn decide(&self, attempt: &Attempt<'_>) -> Result<Outcome, StoreError> {
        let user = attempt.user.as_str();
        let (mark, stream, ban) = (
            self.shard_key(user, &["s", attempt.session_id]),
            self.stream_key(self.user_shard(user)),
            self.shard_key(user, &["ban", user]),
        );
        let (field, entry) = stream::pack(&attempt.record());
        let ttl_ms = attempt.keep_until_ms.saturating_sub(attempt.now_ms).max(1);
        let refused = attempt.refused.map_or("", Refusal::code);
        let count_replicas = if self.waits_for_replicas() { "1" } else { "0" };
        let (status, json, replicas): (u8, String, u8) = if self.is_cluster() {
            let mut call = MARK_SCRIPT.call(3);
            call.key(&mark)
                .key(&stream)
                .key(&ban)
                .arg(ttl_ms)
                .arg(user)
                .arg(attempt.score)
                .arg(refused)
                .arg(field)
                .arg(entry)
                .arg(self.max_backlog())
                .arg(attempt.now_ms)
                .arg(count_replicas);
            self.run("decide", async |c| call.invoke(c).await).await?
        } else {
            let mut call = DECIDE_SCRIPT.call(4 + 3 * attempt.boards.len());
            call.on_one_node()
                .key(&mark)
                .key(&stream)
                .key(&ban)
                .key(self.bars_key(attempt.campaign));
            for (board, _) in attempt.boards {
                for key in self.board_keys(board) {
                    call.key(key);
                }
            }
            call.arg(ttl_ms)
                .arg(user)
                .arg(attempt.score)
                .arg(format!("{}{user}", member_prefix(attempt.now_ms)))
                .arg(refused)
                .arg(field)
                .arg(entry)
                .arg(self.max_backlog())
                .arg(attempt.now_ms)
                .arg(count_replicas);
            for (_, ttl) in attempt.boards {
                call.arg(ttl.map_or(0, |d| d.as_secs()));
            }
            self.run("decide", async |c| call.invoke(c).await).await?
        };
        match status {
            2 => return Err(StoreError::Banned),
            3 => {
                return Err(StoreError::Busy(
                    "results backlog at REDIS_STREAM_MAX_BACKLOG",
                ))
            }
            _ => self.replicate(&mark, ttl_ms, replicas).await?,
        }
        let (mut outcome, at) = parse_outcome(&json)?;
        if self.is_cluster() && outcome.refused.is_none() {
            // The second step, also for a retry: the first attempt's may have failed. Should it
            // fail now, the decision stands and the client's retry (or the batcher) raises.
            let at = at.unwrap_or(attempt.now_ms);
            let (best, rank) = self
                .raise(
                    attempt.campaign,
                    attempt.boards,
                    &outcome.user,
                    outcome.score,
                    at,
                )
                .await?;
            outcome.best = best;
            outcome.rank = rank;
        }
        Ok(outcome)
    }

    /// Offers a decided result (reached at `at_ms`) to `boards`, all of `campaign`; answers the
    /// best and rank on the first afterwards.
    pub async fn raise(
        &self,
        campaign: &CampaignId,
        boards: &[LiveBoard],
        user: &UserId,
        score: u64,
        at_ms: u64,
    ) -> Result<(Option<u64>, Option<u64>), StoreError> {
        let mut call = RAISE_SCRIPT.call(1 + 3 * boards.len());
        call.key(self.bars_key(campaign));
        for (board, _) in boards {
            for key in self.board_keys(board) {
                call.key(key);
            }
        }
        call.arg(user.as_str()).arg(score).arg(format!(
            "{}{}",
            member_prefix(at_ms),
            user.as_str()
        ));
        for (_, ttl) in boards {
            call.arg(ttl.map_or(0, |d| d.as_secs()));
        }
        let (best, rank): (Option<String>, Option<u64>) =
            self.run("raise", async |c| call.invoke(c).await).await?;
        Ok((best.and_then(|b| b.parse().ok()), rank))
    }

    /// See `Store::hide_player`: the player's shard refuses their submits first, then each
    /// campaign's bars keep their scores off its boards.
    pub async fn hide_player(&self, user: &UserId, boards: &[LiveBoard]) -> Result<(), StoreError> {
        let ban = self.shard_key(user.as_str(), &["ban", user.as_str()]);
        self.run("hide_player", async |c| {
            redis::cmd("SET")
                .arg(&ban)
                .arg("1")
                .query_async::<()>(c)
                .await
        })
        .await?;
        for (campaign, boards) in by_campaign(boards) {
            let mut call = HIDE_SCRIPT.call(2 + 3 * boards.len());
            call.key(self.bars_key(campaign))
                .key(self.campaign_key(campaign, &["held", user.as_str()]));
            for (board, _) in boards {
                for key in self.board_keys(board) {
                    call.key(key);
                }
            }
            call.arg(user.as_str());
            let _: i64 = self
                .run("hide_player", async |c| call.invoke(c).await)
                .await?;
        }
        Ok(())
    }

    /// Empties a board, answering the rows it held, best first; results reached before `now_ms`
    /// are never offered to it again.
    pub async fn reset(&self, board: &BoardKey, now_ms: u64) -> Result<Vec<Entry>, StoreError> {
        let [z, h, v] = self.board_keys(board);
        let mut call = RESET_SCRIPT.call(4);
        call.key(self.bars_key(&board.campaign))
            .key(&z)
            .key(&h)
            .key(&v)
            .arg(now_ms);
        let rows: Vec<(String, f64)> = self.run("reset", async |c| call.invoke(c).await).await?;
        entries(rows, 1)
    }

    /// Drops the player's best from each board of one campaign, and bars their results up to
    /// `now_ms` from them; answers from how many boards.
    pub async fn remove_scores(
        &self,
        user: &UserId,
        campaign: &CampaignId,
        boards: &[LiveBoard],
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut call = REMOVE_SCRIPT.call(1 + 3 * boards.len());
        call.key(self.bars_key(campaign));
        for (board, _) in boards {
            for key in self.board_keys(board) {
                call.key(key);
            }
        }
        call.arg(user.as_str()).arg(now_ms);
        self.run("remove_scores", async |c| call.invoke(c).await)
            .await
    }

    /// See `Store::restore_player`: each campaign's bar is lifted and the bests put back, then
    /// the shard decides the player's submits again.
    pub async fn restore_player(
        &self,
        user: &UserId,
        boards: &[LiveBoard],
    ) -> Result<(), StoreError> {
        for (campaign, boards) in by_campaign(boards) {
            let mut call = RESTORE_SCRIPT.call(2 + 3 * boards.len());
            call.key(self.bars_key(campaign))
                .key(self.campaign_key(campaign, &["held", user.as_str()]));
            for (board, _) in &boards {
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
        }
        let ban = self.shard_key(user.as_str(), &["ban", user.as_str()]);
        self.run("restore_player", async |c| {
            redis::cmd("DEL").arg(&ban).query_async::<()>(c).await
        })
        .await
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

/// KEYS: lock, rebuilt. ARGV: owner, lease ms. Answers {1, run} when the boards were rebuilt
/// under this Redis process already (`run_id`: a restart, or a failover to a replica, is
/// another process, whose boards may have lost writes), {2, run} when the caller holds the lock
/// now (it rebuilds), {0, run} when another instance holds it (wait).
const CLAIM_REBUILD: &str = r#"
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if redis.call('GET', KEYS[2]) == run then return {1, run} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, run} end
return {0, run}
"#;

/// KEYS: lock, rebuilt. ARGV: owner, lease ms, then '' to renew the lease, '-' to release it
/// (the rebuild failed), or the `run_id` it was claimed under to record it done and release.
/// Answers 1 while the caller held the lock.
const HOLD_REBUILD: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if ARGV[3] ~= '-' then redis.call('SET', KEYS[2], ARGV[3]) end
redis.call('DEL', KEYS[1])
return 1
"#;

static CLAIM_REBUILD_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(CLAIM_REBUILD));
static HOLD_REBUILD_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(HOLD_REBUILD));

/// Who rebuilds a campaign's boards after an outage (see [`RedisStore::claim_rebuild`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildClaim {
    /// The boards were rebuilt under the Redis process serving them now.
    Done,
    /// The caller holds the lock: it rebuilds, under this Redis process.
    Mine { run: String },
    /// Another instance rebuilds; ask again later.
    Wait,
}

/// What the holder of a rebuild lock does with it.
#[derive(Debug, Clone)]
pub enum RebuildHold {
    Renew,
    /// The rebuild failed: another instance may take it.
    Release,
    /// The rebuild claimed under this Redis process finished.
    Done {
        run: String,
    },
}

impl RedisStore {
    fn rebuild_keys(&self, campaign: &CampaignId) -> [String; 2] {
        [
            self.campaign_key(campaign, &["rebuild"]),
            self.campaign_key(campaign, &["rebuilt"]),
        ]
    }

    /// One instance at a time rebuilds a campaign's boards after Redis returns, and only once
    /// per Redis process: a lock with a lease, and the `run_id` the last rebuild ran under,
    /// both in the campaign's slot (on a cluster, on the master holding its boards).
    pub async fn claim_rebuild(
        &self,
        campaign: &CampaignId,
        owner: &str,
        lease: Duration,
    ) -> Result<RebuildClaim, StoreError> {
        let [lock, rebuilt] = self.rebuild_keys(campaign);
        let mut call = CLAIM_REBUILD_SCRIPT.call(2);
        call.key(&lock)
            .key(&rebuilt)
            .arg(owner)
            .arg(lease.as_millis() as u64);
        let (state, run): (u8, String) = self
            .run("claim_rebuild", async |c| call.invoke(c).await)
            .await?;
        Ok(match state {
            1 => RebuildClaim::Done,
            2 => RebuildClaim::Mine { run },
            _ => RebuildClaim::Wait,
        })
    }

    /// Renews the lease, releases the lock, or records the rebuild as done and releases it.
    /// Answers whether the caller still held it.
    pub async fn hold_rebuild(
        &self,
        campaign: &CampaignId,
        owner: &str,
        lease: Duration,
        hold: RebuildHold,
    ) -> Result<bool, StoreError> {
        let [lock, rebuilt] = self.rebuild_keys(campaign);
        let mut call = HOLD_REBUILD_SCRIPT.call(2);
        call.key(&lock)
            .key(&rebuilt)
            .arg(owner)
            .arg(lease.as_millis() as u64)
            .arg(match hold {
                RebuildHold::Renew => String::new(),
                RebuildHold::Release => "-".into(),
                RebuildHold::Done { run } => run,
            });
        let held: u8 = self
            .run("hold_rebuild", async |c| call.invoke(c).await)
            .await?;
        Ok(held == 1)
    }
}

/// KEYS: the campaign's `ended` marker, its global board. ARGV: the deadline its boards expire
/// at (ms), or '' when they are to be kept. Answers 1 when its keys are not as wanted: to
/// expire, but not given this deadline yet, or built again since (a rebuild after a Redis
/// restart); to keep, but given a deadline.
const BOARDS_UNSETTLED: &str = r#"
local mark = redis.call('GET', KEYS[1])
if ARGV[1] == '' then return mark and 1 or 0 end
if mark == ARGV[1] and redis.call('PTTL', KEYS[2]) ~= -1 then return 0 end
return 1
"#;

/// KEYS: the marker, then the keys that last. ARGV: the deadline (ms). Records the deadline
/// and gives it to each key (one already past deletes it). Answers 1 when it is new.
const EXPIRE_BOARDS: &str = r#"
local new = redis.call('GET', KEYS[1]) ~= ARGV[1]
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('PEXPIREAT', KEYS[i], ARGV[1]) end
return new and 1 or 0
"#;

/// KEYS: the keys that last. Takes their deadline off (those not expired yet).
const KEEP_BOARDS: &str = r#"
for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
return 0
"#;

static BOARDS_UNSETTLED_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(BOARDS_UNSETTLED));
static EXPIRE_BOARDS_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(EXPIRE_BOARDS));
static KEEP_BOARDS_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(KEEP_BOARDS));

/// An ended campaign's boards expire (`REDIS_CAMPAIGN_TTL_DAYS`), by a deadline recorded in
/// `{c:NAME}:ended` so the hourly check costs one call while nothing changes. What expires is
/// what grows with the players: the global and regional boards (`b`, `bh`, `bv`) and the
/// `rebuilt` mark; daily boards have their own TTL. The `bars` and `held:USER` keys stay (a
/// few bytes per banned player or reset): a reopened campaign's rebuild and its unbans obey
/// them as before.
impl RedisStore {
    fn ended_key(&self, campaign: &CampaignId) -> String {
        self.campaign_key(campaign, &["ended"])
    }

    fn lasting_keys(&self, campaign: &CampaignId, boards: &[BoardKey]) -> Vec<String> {
        let mut keys: Vec<String> = boards.iter().flat_map(|b| self.board_keys(b)).collect();
        keys.push(self.rebuild_keys(campaign)[1].clone());
        keys
    }

    /// Whether `campaign`'s boards must be given `deadline` (ms), or kept when `None`.
    pub async fn boards_unsettled(
        &self,
        campaign: &CampaignId,
        deadline: Option<u64>,
    ) -> Result<bool, StoreError> {
        let global = BoardKey::of(campaign, &BoardKind::Global, 0);
        let mut call = BOARDS_UNSETTLED_SCRIPT.call(2);
        call.key(self.ended_key(campaign))
            .key(&self.board_keys(&global)[0])
            .arg(deadline.map_or(String::new(), |d| d.to_string()));
        let unsettled: u8 = self
            .run("boards_unsettled", async |c| call.invoke(c).await)
            .await?;
        Ok(unsettled == 1)
    }

    /// Gives `boards` of an ended campaign their deadline (ms). Answers whether it is new.
    pub async fn expire_boards(
        &self,
        campaign: &CampaignId,
        boards: &[BoardKey],
        deadline: u64,
    ) -> Result<bool, StoreError> {
        let keys = self.lasting_keys(campaign, boards);
        let mut call = EXPIRE_BOARDS_SCRIPT.call(1 + keys.len());
        call.key(self.ended_key(campaign));
        for key in &keys {
            call.key(key);
        }
        call.arg(deadline);
        let new: u8 = self
            .run("expire_boards", async |c| call.invoke(c).await)
            .await?;
        Ok(new == 1)
    }

    /// Takes the deadline off a reopened campaign's `boards`. The marker stays until
    /// [`Self::forget_end`], after they were rebuilt (what expired meanwhile is gone).
    pub async fn keep_boards(
        &self,
        campaign: &CampaignId,
        boards: &[BoardKey],
    ) -> Result<(), StoreError> {
        let keys = self.lasting_keys(campaign, boards);
        let mut call = KEEP_BOARDS_SCRIPT.call(keys.len());
        for key in &keys {
            call.key(key);
        }
        let _: u8 = self
            .run("keep_boards", async |c| call.invoke(c).await)
            .await?;
        Ok(())
    }

    pub async fn forget_end(&self, campaign: &CampaignId) -> Result<(), StoreError> {
        let marker = self.ended_key(campaign);
        self.run("forget_end", async |c| {
            redis::cmd("DEL").arg(&marker).query_async::<()>(c).await
        })
        .await
    }
}
