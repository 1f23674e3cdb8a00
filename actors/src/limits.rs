//! A fixed-window rate limiter keyed by user or address, shared by the connections of one
//! instance (per-user message rate), the results pipeline (submits per minute) and the dev
//! token route (per IP). The memory engine keeps windows here; stale ones are swept by their
//! owner's cleanup tick.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a check says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Over the limit; `strikes` counts the refusals in this window so far (1 for the first).
    Refused {
        strikes: u32,
    },
}

pub struct WindowLimiter<K> {
    window: Duration,
    max: u32,
    /// Window start and count per key. A std mutex: held for a hash lookup, never across an
    /// await, so an async mutex would only add cost.
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq + Clone> WindowLimiter<K> {
    pub fn new(window: Duration, max: u32) -> Self {
        Self {
            window,
            max,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn check(&self, key: &K) -> Verdict {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let (start, count) = windows.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        if *count <= self.max {
            Verdict::Allowed
        } else {
            Verdict::Refused {
                strikes: *count - self.max,
            }
        }
    }

    /// Forgets windows that ended, so the map holds only recently active keys.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        windows.len()
    }
}

/// Per-user message windows. With the redis engine a player's sockets on every instance share
/// one window: each instance counts locally, in the same fixed windows as Redis, and every
/// sync (a quarter of the window, 50 to 250 ms) adds its counts to Redis in one pipeline and
/// learns the others'. A check therefore never waits on Redis, and a player can exceed the
/// limit across instances by at most what they send within one sync. If Redis is unreachable
/// each instance keeps limiting on its own counts.
pub struct MessageLimiter {
    local: WindowLimiter<crate::ids::UserId>,
    shared: Option<SharedWindows>,
}

struct SharedWindows {
    redis: crate::redis_store::RedisStore,
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
    mine: HashMap<crate::ids::UserId, u64>,
    /// Counted here since the last sync, not yet added in Redis.
    unsent: HashMap<crate::ids::UserId, u64>,
    /// The other instances' count per user, as of the last sync.
    elsewhere: HashMap<crate::ids::UserId, u64>,
}

impl MessageLimiter {
    pub fn new(window: Duration, max: u32, shared: Option<crate::redis_store::RedisStore>) -> Self {
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

    pub fn check(&self, user: &crate::ids::UserId) -> Verdict {
        let Some(shared) = &self.shared else {
            return self.local.check(user);
        };
        let index = crate::time::now_ms() / shared.window.as_millis().max(1) as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_resets_with_the_window() {
        let l = WindowLimiter::new(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert_eq!(l.check_at(&"a", t0), Verdict::Allowed);
        assert_eq!(l.check_at(&"a", t0), Verdict::Allowed);
        assert_eq!(l.check_at(&"a", t0), Verdict::Refused { strikes: 1 });
        assert_eq!(
            l.check_at(&"b", t0),
            Verdict::Allowed,
            "keys are independent"
        );
        assert_eq!(
            l.check_at(&"a", t0 + Duration::from_secs(1)),
            Verdict::Allowed
        );
    }
}
