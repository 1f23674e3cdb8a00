//! The cluster bus's Redis half: the Pub/Sub channels that carry operator events between
//! instances (`{bus}:bus`, which every instance needs: campaign changes, bans, kicks,
//! announcements to all; `{c:NAME}:bus`, for instances with a room of the campaign: its board
//! resets and announcements), and the instance heartbeats behind `GET /admin/instances`
//! (`{bus}:inst:ID`: the instance's description, with a TTL; `{bus}:insts`: a sorted set of ids
//! by last heartbeat, so a listing reads only live ones). On a cluster the channels are sharded
//! (`SSUBSCRIBE`/`SPUBLISH`): a campaign's events go through the master of its slot only,
//! instead of every master.

use std::time::Duration;

use deadpool_redis::redis;
use futures_util::{Stream, StreamExt};

use super::client::{campaign_tag, Conn, RedisStore};
use crate::store::error::StoreError;

/// The subscriber's half that changes what it listens to. Cheap to clone.
#[derive(Clone)]
pub enum BusSink {
    Node(redis::aio::PubSubSink),
    /// Sharded subscriptions, which the cluster connection renews by itself after a failover.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl BusSink {
    pub async fn subscribe(&mut self, channel: &str) -> Result<(), StoreError> {
        match self {
            BusSink::Node(sink) => sink.subscribe(channel).await?,
            BusSink::Cluster(conn) => conn.ssubscribe(channel).await?,
        }
        Ok(())
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> Result<(), StoreError> {
        match self {
            BusSink::Node(sink) => sink.unsubscribe(channel).await?,
            BusSink::Cluster(conn) => conn.sunsubscribe(channel).await?,
        }
        Ok(())
    }
}

/// The payloads of the messages on the channels a [`BusSink`] listens to; ends when the
/// subscription is lost.
pub type BusMessages = std::pin::Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>;

impl RedisStore {
    /// The channel every instance subscribes to.
    pub fn bus_channel(&self) -> String {
        self.tagged_key(Some("bus"), &["bus"])
    }

    /// The channel of the instances holding a room of `campaign` (on a cluster, on the master
    /// of the campaign's slot).
    pub fn campaign_channel(&self, campaign: &str) -> String {
        self.tagged_key(Some(&campaign_tag(campaign)), &["bus"])
    }

    /// A fresh subscriber connection (not from the pool: it is held for good by the
    /// subscriber), and the messages it will receive.
    pub async fn subscriber(&self) -> Result<(BusSink, BusMessages), StoreError> {
        let connect = async {
            match self.cluster_seeds() {
                None => {
                    let (sink, messages) = self.node_pubsub().await?.split();
                    let messages: BusMessages =
                        Box::pin(messages.map(|m| m.get_payload_bytes().to_vec()));
                    Ok((BusSink::Node(sink), messages))
                }
                // Sharded PUB/SUB (`SSUBSCRIBE`): each channel lives on the master of its
                // slot, so the bus's traffic is spread like the keys are.
                Some(nodes) => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let client = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
                        .use_protocol(redis::ProtocolVersion::RESP3)
                        .push_sender(tx)
                        .build()?;
                    let conn = client.get_async_connection().await?;
                    let messages: BusMessages =
                        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                            loop {
                                let push = rx.recv().await?;
                                if push.kind != redis::PushKind::SMessage {
                                    continue;
                                }
                                if let Some(redis::Value::BulkString(payload)) = push.data.get(1) {
                                    return Some((payload.clone(), rx));
                                }
                            }
                        }));
                    Ok((BusSink::Cluster(conn), messages))
                }
            }
        };
        tokio::time::timeout(self.command_timeout(), connect)
            .await
            .map_err(|_| StoreError::Timeout)?
    }

    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        let command = if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        self.run("publish", async |c: &mut Conn| {
            redis::cmd(command)
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(c)
                .await
        })
        .await?;
        Ok(())
    }

    /// How many subscribers `channel` has (on a cluster, sharded subscribers on its master).
    pub async fn listeners(&self, channel: &str) -> Result<i64, StoreError> {
        let numsub = if self.is_cluster() {
            "SHARDNUMSUB"
        } else {
            "NUMSUB"
        };
        let counts: Vec<(String, i64)> = self
            .run("listeners", async |c| {
                redis::cmd("PUBSUB")
                    .arg(numsub)
                    .arg(channel)
                    .query_async(c)
                    .await
            })
            .await?;
        Ok(counts.first().map_or(0, |(_, n)| *n))
    }

    /// Records this instance as alive for `ttl`, with its description.
    pub async fn heartbeat(
        &self,
        id: &str,
        description: &str,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, set) = (
            self.tagged_key(Some("bus"), &["inst", id]),
            self.tagged_key(Some("bus"), &["insts"]),
        );
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
        let set = self.tagged_key(Some("bus"), &["insts"]);
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
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.tagged_key(Some("bus"), &["inst", id]))
            .collect();
        let found: Vec<Option<String>> = self
            .run("instances", async |c| {
                redis::cmd("MGET").arg(&keys).query_async(c).await
            })
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}
