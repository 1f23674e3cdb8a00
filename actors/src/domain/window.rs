//! A fixed-window rate limiter keyed by user or address: the per-user message rate of one
//! instance (shared across instances by `store::counters`), submits per minute in the results
//! pipeline, and dev tokens per address. Stale windows are swept by their owner's cleanup tick.

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

    /// Whether `key` is over the limit in its current window, without counting a use: for
    /// limits that count failures only.
    pub fn is_over(&self, key: &K) -> bool {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.get(key).is_some_and(|(start, count)| {
            now.duration_since(*start) < self.window && *count >= self.max
        })
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Forgets windows that ended, so the map holds only recently active keys.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        windows.len()
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
