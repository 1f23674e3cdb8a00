//! Per-user socket places in Redis (`uc:{user}`: a sorted set of `instance:conn` members
//! scored by lease expiry), so the per-user cap holds across instances and the places of a
//! crashed instance lapse on their own.

use std::sync::LazyLock;
use std::time::Duration;

use deadpool_redis::redis;

use super::client::{Lua, RedisStore};
use crate::store::error::StoreError;

/// KEYS: the user's sockets. ARGV: now ms, expiry ms, member, cap, key TTL ms. Answers 1 when
/// the socket got a place, 0 when the user is at the cap.
const CLAIM_SOCKET: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"#;

static CLAIM_SOCKET_SCRIPT: LazyLock<Lua> = LazyLock::new(|| Lua::new(CLAIM_SOCKET));

impl RedisStore {
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
            .run("claim_socket", async |c| {
                CLAIM_SOCKET_SCRIPT
                    .call(1)
                    .key(&key)
                    .arg(now_ms)
                    .arg(now_ms + lease_ms)
                    .arg(member)
                    .arg(cap)
                    .arg(lease_ms)
                    .invoke(c)
                    .await
            })
            .await?;
        Ok(got == 1)
    }

    /// Renews the leases of this instance's places, (user, member) pairs, all at once.
    pub async fn renew_sockets(
        &self,
        held: &[(&str, String)],
        lease: Duration,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if held.is_empty() {
            return Ok(());
        }
        let lease_ms = lease.as_millis() as u64;
        let pipes: Vec<redis::Pipeline> = held
            .iter()
            .map(|(user, member)| {
                let key = self.key(&["uc", user]);
                let mut pipe = redis::pipe();
                pipe.cmd("ZADD")
                    .arg(&key)
                    .arg("XX")
                    .arg(now_ms + lease_ms)
                    .arg(member)
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(lease_ms).ignore();
                pipe
            })
            .collect();
        self.run_each::<()>("renew_sockets", &pipes).await?;
        Ok(())
    }

    /// The members of `user`'s set whose lease has not lapsed.
    pub async fn socket_members(&self, user: &str, now_ms: u64) -> Result<Vec<String>, StoreError> {
        let key = self.key(&["uc", user]);
        self.run("socket_members", async |c| {
            redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(now_ms)
                .arg("+inf")
                .query_async(c)
                .await
        })
        .await
    }

    pub async fn release_socket(&self, user: &str, member: &str) -> Result<(), StoreError> {
        let key = self.key(&["uc", user]);
        self.run("release_socket", async |c| {
            redis::cmd("ZREM")
                .arg(&key)
                .arg(member)
                .query_async(c)
                .await
        })
        .await
    }
}
