//! Per-user message windows in Redis (`rl:{user}:{window}`: a counter per fixed window), which
//! the instances add their local counts to, and the counts of [`WindowCounts`](crate::store::counters::WindowCounts)
//! (`{name}:{key}:{window}`).

use std::time::Duration;

use deadpool_redis::redis;

use super::client::RedisStore;
use crate::store::error::StoreError;

impl RedisStore {
    /// Adds each user's new message count to their window `index`, all at once; answers
    /// each window's total across instances, in order.
    pub async fn add_message_counts(
        &self,
        counts: &[(String, u64)],
        index: u64,
        window: Duration,
    ) -> Result<Vec<u64>, StoreError> {
        let window_ms = window.as_millis().max(1) as u64;
        let index = index.to_string();
        let pipes: Vec<redis::Pipeline> = counts
            .iter()
            .map(|(user, n)| {
                let key = self.key(&["rl", user, &index]);
                let mut pipe = redis::pipe();
                pipe.cmd("INCRBY").arg(&key).arg(*n);
                pipe.cmd("PEXPIRE")
                    .arg(&key)
                    .arg(window_ms * 2)
                    .arg("NX")
                    .ignore();
                pipe
            })
            .collect();
        let totals: Vec<(u64,)> = self.run_each("add_message_counts", &pipes).await?;
        Ok(totals.into_iter().map(|(t,)| t).collect())
    }
}

impl RedisStore {
    /// Counts one more event for `key` in window `index` of what `name` counts (`name:key:index`,
    /// kept for `ttl_ms`); answers the window's count across instances.
    pub async fn count_in_window(
        &self,
        name: &str,
        key: &str,
        index: u64,
        ttl_ms: u64,
    ) -> Result<u64, StoreError> {
        let key = self.key(&[name, key, &index.to_string()]);
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(&key);
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).arg("NX").ignore();
        let (count,): (u64,) = self
            .run("count_in_window", async |c| pipe.query_async(c).await)
            .await?;
        Ok(count)
    }
}
