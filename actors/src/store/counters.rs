//! Counters shared by every instance of a deployment: per-user socket places, per-user
//! message windows and games started per hour. With the redis engine they live in Redis; with the memory engine there is
//! one instance and the counts it keeps itself are the whole truth. The Store hands out
//! [`Counters`]; the ConnectionRegistry and the Connections use them without knowing which.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::error::StoreError;
use super::redis::RedisStore;
use crate::domain::clock::now_ms;
use crate::domain::ids::UserId;
use crate::domain::window::{Verdict, WindowLimiter};

/// One authenticated socket as every instance sees it. Its member in the per-user set of
/// Redis carries all of it, so an operator's view of a player lists the sockets of every
/// instance without asking them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SocketPlace {
    pub instance: String,
    pub conn: u64,
    pub ip: IpAddr,
    /// When the socket connected (Unix ms).
    pub since_ms: u64,
}

impl SocketPlace {
    /// `instance:conn:since:ip`; the address last, since an IPv6 one holds colons.
    fn member(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.instance, self.conn, self.since_ms, self.ip
        )
    }

    fn parse(member: &str) -> Option<Self> {
        let mut parts = member.splitn(4, ':');
        Some(Self {
            instance: parts.next()?.to_owned(),
            conn: parts.next()?.parse().ok()?,
            since_ms: parts.next()?.parse().ok()?,
            ip: parts.next()?.parse().ok()?,
        })
    }
}

/// Where shared counts live.
#[derive(Clone)]
pub enum Counters {
    /// This instance alone: its own counts are the cap.
    Local,
    Redis(RedisStore),
}

impl Counters {
    /// Whether other instances share these counts, so this one's socket places must be renewed
    /// and released where they see them.
    pub fn is_shared(&self) -> bool {
        matches!(self, Counters::Redis(_))
    }

    /// Claims one of `user`'s `cap` socket places across every instance, for `lease` (renewed
    /// by [`Self::renew_sockets`] each heartbeat, so a crashed instance's places lapse). The
    /// caller has already checked its own count against the cap.
    pub async fn claim_socket(
        &self,
        user: &str,
        place: &SocketPlace,
        cap: usize,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        match self {
            Counters::Local => Ok(true),
            Counters::Redis(r) => {
                r.claim_socket(user, &place.member(), cap, lease, now_ms())
                    .await
            }
        }
    }

    /// Renews the leases of this instance's places, (user, place) pairs.
    pub async fn renew_sockets(
        &self,
        held: &[(String, SocketPlace)],
        lease: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Counters::Local => Ok(()),
            Counters::Redis(r) => {
                let held: Vec<(&str, String)> =
                    held.iter().map(|(u, p)| (u.as_str(), p.member())).collect();
                r.renew_sockets(&held, lease, now_ms()).await
            }
        }
    }

    pub async fn release_socket(&self, user: &str, place: &SocketPlace) -> Result<(), StoreError> {
        match self {
            Counters::Local => Ok(()),
            Counters::Redis(r) => r.release_socket(user, &place.member()).await,
        }
    }

    /// `user`'s sockets on every instance whose lease holds; nothing when counts are local
    /// (this instance's own registry is then the whole truth).
    pub async fn sockets(&self, user: &str) -> Result<Vec<SocketPlace>, StoreError> {
        match self {
            Counters::Local => Ok(Vec::new()),
            Counters::Redis(r) => Ok(r
                .socket_members(user, now_ms())
                .await?
                .iter()
                .filter_map(|m| SocketPlace::parse(m))
                .collect()),
        }
    }
}

/// Per-user message windows. With the redis engine a player's sockets on every instance share
/// one window: each instance counts locally, in the same fixed windows as Redis, and every
/// sync (a quarter of the window, 50 to 250 ms) adds its counts to Redis in one pipeline and
/// learns the others'. A check therefore never waits on Redis, and a player can exceed the
/// limit across instances by at most what they send within one sync. If Redis is unreachable
/// each instance keeps limiting on its own counts.
pub struct MessageLimiter {
    local: WindowLimiter<UserId>,
    shared: Option<SharedWindows>,
}

struct SharedWindows {
    redis: RedisStore,
    window: Duration,
    max: u32,
    /// A std mutex: held for map updates only, never across the sync's await.
    state: Mutex<SyncState>,
}

#[derive(Default)]
struct SyncState {
    /// The fixed window these counts belong to (now / window).
    window_index: u64,
    /// This instance's count per user in the window.
    mine: HashMap<UserId, u64>,
    /// Counted here since the last sync, not yet added in Redis.
    unsent: HashMap<UserId, u64>,
    /// The other instances' count per user, as of the last sync.
    elsewhere: HashMap<UserId, u64>,
}

impl MessageLimiter {
    pub fn new(window: Duration, max: u32, counters: &Counters) -> Self {
        let shared = match counters {
            Counters::Local => None,
            Counters::Redis(redis) => Some(redis.clone()),
        };
        let shared = shared.map(|redis| SharedWindows {
            redis,
            window,
            max,
            state: Mutex::default(),
        });
        Self {
            local: WindowLimiter::new(window, max),
            shared,
        }
    }

    pub fn check(&self, user: &UserId) -> Verdict {
        let Some(shared) = &self.shared else {
            return self.local.check(user);
        };
        let index = now_ms() / shared.window.as_millis().max(1) as u64;
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.window_index != index {
            *state = SyncState {
                window_index: index,
                ..SyncState::default()
            };
        }
        let mine = state.mine.entry(user.clone()).or_default();
        *mine += 1;
        let mine = *mine;
        *state.unsent.entry(user.clone()).or_default() += 1;
        let total = mine + state.elsewhere.get(user).copied().unwrap_or(0);
        if total <= u64::from(shared.max) {
            Verdict::Allowed
        } else {
            Verdict::Refused {
                strikes: (total - u64::from(shared.max)) as u32,
            }
        }
    }

    /// How often [`Self::sync`] should run, when the windows are shared.
    pub fn sync_interval(&self) -> Option<Duration> {
        let shared = self.shared.as_ref()?;
        Some((shared.window / 4).clamp(Duration::from_millis(50), Duration::from_millis(250)))
    }

    /// Adds this instance's new counts in Redis and learns the other instances' counts.
    pub async fn sync(&self) {
        let Some(shared) = &self.shared else { return };
        // Every user active here this window, with what they sent since the last sync (0 for
        // some): a quiet socket still learns what the player's other sockets sent.
        let (index, unsent) = {
            let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut unsent = std::mem::take(&mut state.unsent);
            for user in state.mine.keys() {
                unsent.entry(user.clone()).or_default();
            }
            (state.window_index, unsent)
        };
        if unsent.is_empty() {
            return;
        }
        let counts: Vec<(String, u64)> = unsent.iter().map(|(u, n)| (u.to_string(), *n)).collect();
        match shared
            .redis
            .add_message_counts(&counts, index, shared.window)
            .await
        {
            Ok(totals) => {
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.window_index != index {
                    return;
                }
                for ((user, _), total) in unsent.iter().zip(totals) {
                    let mine = state.mine.get(user).copied().unwrap_or(0);
                    // Ours counted since the sync began are not in `total` yet.
                    let pending = state.unsent.get(user).copied().unwrap_or(0);
                    state
                        .elsewhere
                        .insert(user.clone(), total.saturating_sub(mine - pending));
                }
            }
            Err(err) => {
                tracing::debug!(%err, "message windows not synced; limiting on this instance's counts");
                let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.window_index == index {
                    for (user, n) in unsent.into_iter().filter(|(_, n)| *n > 0) {
                        *state.unsent.entry(user).or_default() += n;
                    }
                }
            }
        }
    }

    pub fn sweep(&self) {
        self.local.sweep();
    }
}

/// Events counted per key in fixed windows: games a player started per campaign per UTC hour
/// (`max_games_per_hour`), a player's cheat refusals (`GAME_AUTO_BAN_FLAGS`). With the redis
/// engine the count is shared by every instance; if Redis is unreachable each instance counts
/// on its own until it returns (a player may then reach the limit once per instance), rather
/// than refusing everything.
pub struct WindowCounts {
    /// What is counted, in Redis key names (`gh`, `cf`).
    name: &'static str,
    window_ms: u64,
    redis: Option<RedisStore>,
    /// key -> (window index, count). A std mutex: held for one map update.
    local: Mutex<HashMap<String, (u64, u64)>>,
}

/// Keys kept in the local map before windows that ended are dropped from it.
const WINDOW_COUNTS_KEPT: usize = 100_000;

impl WindowCounts {
    pub fn new(name: &'static str, window: std::time::Duration, counters: &Counters) -> Self {
        Self {
            name,
            window_ms: (window.as_millis() as u64).max(1),
            redis: match counters {
                Counters::Local => None,
                Counters::Redis(r) => Some(r.clone()),
            },
            local: Mutex::default(),
        }
    }

    /// Counts one event for `key` at `now_ms`; answers the window's count, this one included.
    pub async fn count(&self, key: &str, now_ms: u64) -> u64 {
        let index = now_ms / self.window_ms;
        let local = {
            let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= WINDOW_COUNTS_KEPT {
                map.retain(|_, (i, _)| *i == index);
            }
            let entry = map.entry(key.to_owned()).or_insert((index, 0));
            if entry.0 != index {
                *entry = (index, 0);
            }
            entry.1 += 1;
            entry.1
        };
        let Some(redis) = &self.redis else {
            return local;
        };
        match redis
            .count_in_window(self.name, key, index, self.window_ms * 2)
            .await
        {
            Ok(shared) => shared,
            Err(err) => {
                tracing::debug!(%err, counted = self.name, "counted on this instance alone");
                local
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_place_reads_back_from_its_member() {
        for ip in ["127.0.0.1", "::1", "2001:db8::7:1"] {
            let place = SocketPlace {
                instance: "0a1b2c3d4e5f".into(),
                conn: 42,
                ip: ip.parse().unwrap(),
                since_ms: 1_700_000_000_123,
            };
            assert_eq!(SocketPlace::parse(&place.member()), Some(place));
        }
        assert_eq!(SocketPlace::parse("old-style:7"), None);
    }
}
