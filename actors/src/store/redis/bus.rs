//! The cluster bus's Redis half: the Pub/Sub channels that carry operator events between
//! instances (`bus`, which every instance needs: campaign changes, bans, kicks, announcements
//! to all; `bus:c:{campaign}`, for instances with a room of the campaign: its board resets and
//! announcements), and the instance heartbeats behind `GET /admin/instances`
//! (`inst:{id}`: the instance's description, with a TTL; `insts`: a sorted set of ids by last
//! heartbeat, so a listing reads only live ones).

use std::time::Duration;

use deadpool_redis::redis;

use super::client::RedisStore;
use crate::store::error::StoreError;

impl RedisStore {
    /// The channel every instance subscribes to.
    pub fn bus_channel(&self) -> String {
        self.key(&["bus"])
    }

    /// The channel of the instances holding a room of `campaign`.
    pub fn campaign_channel(&self, campaign: &str) -> String {
        self.key(&["bus", "c", campaign])
    }

    /// A fresh Pub/Sub connection (not from the pool: it is held for good by the subscriber).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, StoreError> {
        let client = redis::Client::open(self.url()).map_err(StoreError::from)?;
        let connect = client.get_async_pubsub();
        tokio::time::timeout(self.command_timeout(), connect)
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(StoreError::from)
    }

    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.run("publish", async |c| {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(c)
                .await
        })
        .await?;
        Ok(())
    }

    /// Records this instance as alive for `ttl`, with its description.
    pub async fn heartbeat(
        &self,
        id: &str,
        description: &str,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, set) = (self.key(&["inst", id]), self.key(&["insts"]));
        let ttl_ms = ttl.as_millis() as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(description)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        pipe.cmd("ZADD").arg(&set).arg(now_ms).arg(id).ignore();
        // Instances silent past the TTL leave the set.
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&set)
            .arg("-inf")
            .arg(now_ms.saturating_sub(ttl_ms))
            .ignore();
        self.run("heartbeat", async |c| pipe.query_async::<()>(c).await)
            .await
    }

    /// The descriptions of the instances that heartbeat within `ttl`.
    pub async fn instances(&self, now_ms: u64, ttl: Duration) -> Result<Vec<String>, StoreError> {
        let set = self.key(&["insts"]);
        let since = now_ms.saturating_sub(ttl.as_millis() as u64);
        let ids: Vec<String> = self
            .run("instances", async |c| {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&set)
                    .arg(since)
                    .arg("+inf")
                    .query_async(c)
                    .await
            })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(&["inst", id])).collect();
        let found: Vec<Option<String>> = self
            .run("instances", async |c| {
                redis::cmd("MGET").arg(&keys).query_async(c).await
            })
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}
