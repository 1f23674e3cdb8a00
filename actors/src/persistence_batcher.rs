//! PersistenceBatcher: the write-behind path from the results stream to PostgreSQL.
//!
//! Owns: the batch being built and the consumer name this engine reads the stream's consumer
//! group with. It reads entries (accepted results and refused attempts), writes them to
//! PostgreSQL in one transaction per batch, and acknowledges (and deletes) them in Redis only
//! after the commit, so an entry is in PostgreSQL or still in the stream, never neither. On a
//! Redis Cluster it raises each accepted result's boards again before acknowledging it (see
//! `raise_again`). It reads every shard's stream. A
//! batch is written when it holds `PERSIST_BATCH_SIZE` rows or its oldest row is
//! `PERSIST_FLUSH_INTERVAL` old. A failed write keeps the batch and retries with backoff (a
//! PostgreSQL outage builds a backlog, which drains when it returns). On start, and after
//! taking over a dead engine's entries (XAUTOCLAIM), it first re-reads its own pending ones.
//! Hourly it creates the coming days' partitions, ages old ones out (`PG_RETENTION_DAYS`) and
//! lets ended campaigns' boards expire in Redis (`REDIS_CAMPAIGN_TTL_DAYS`).
//! Receives [`Drain`] at shutdown: it stops reading, writes what it holds and answers. Sends
//! nothing to other actors; publishes its state in the store's `PersistStatus` for `/health`. Started by
//! the Engine with the `redis` engine only; if it stops, nothing is lost: entries wait in the
//! stream for the next batcher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::PersistConfig;
use crate::domain::clock::now_ms;
use crate::domain::decision::Record;
use crate::domain::ids::{Region, UserId};
use crate::store::durable::Durable;
use crate::store::live::CampaignBook;
use crate::store::postgres::{pool, results};
use crate::store::redis::StreamEntry;
use crate::store::StoreError;
use crate::telemetry;

/// The consumer group every engine's batcher reads the results stream in.
pub const GROUP: &str = "persist";
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest one blocking read of the stream waits for new entries.
const MAX_BLOCK: Duration = Duration::from_millis(250);

struct Shared {
    /// Redis (the stream), PostgreSQL (the tables) and the status `/health` reads.
    store: Durable,
    /// For the boards a result counts on, which on a cluster the batcher raises again.
    campaigns: Arc<CampaignBook>,
    config: PersistConfig,
    consumer: String,
}

pub struct PersistenceBatcher {
    shared: Arc<Shared>,
    /// Tells the loop to stop reading and write what it holds.
    stop: tokio::sync::watch::Sender<bool>,
    /// Fires when the loop has ended.
    done: Arc<tokio::sync::Notify>,
    finished: Arc<AtomicBool>,
}

impl PersistenceBatcher {
    pub fn new(
        store: Durable,
        campaigns: Arc<CampaignBook>,
        config: PersistConfig,
        consumer: String,
    ) -> Self {
        let (stop, _) = tokio::sync::watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                store,
                campaigns,
                config,
                consumer,
            }),
            stop,
            done: Arc::new(tokio::sync::Notify::new()),
            finished: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Which service a flush failed on, so `/health` names the right one.
enum FlushError {
    /// The write to PostgreSQL failed: nothing of the batch is acknowledged.
    Postgres(StoreError),
    /// Written, but Redis did not take the acknowledgement: the entries are read again and
    /// rewritten, which the primary keys make harmless.
    Redis(StoreError),
}

async fn flush(shared: &Shared, batch: &[StreamEntry]) -> Result<(), FlushError> {
    let started = Instant::now();
    let rows: Vec<Record> = batch.iter().filter_map(|e| e.row.clone()).collect();
    for bad in batch.iter().filter(|e| e.row.is_none()) {
        tracing::error!(
            id = bad.id,
            "malformed results stream entry; acknowledged without writing"
        );
    }
    results::write_batch(&shared.store.pg, &rows)
        .await
        .map_err(FlushError::Postgres)?;
    if shared.store.redis.is_cluster() {
        raise_again(shared, &rows)
            .await
            .map_err(FlushError::Redis)?;
    }
    shared
        .store
        .redis
        .ack(GROUP, batch)
        .await
        .map_err(FlushError::Redis)?;
    telemetry::batch_flushed(rows.len(), started.elapsed());
    Ok(())
}

/// Offers each accepted result of a written batch to its boards again. On a cluster a result's
/// boards are raised in a second step after its decision, which can fail (their master is
/// failing over) after the decision was made; raising is idempotent and obeys the campaign's
/// bars, so doing it again for every result is harmless, and doing it before the entries are
/// acknowledged means no decided result can miss its boards for good.
async fn raise_again(shared: &Shared, rows: &[Record]) -> Result<(), StoreError> {
    let raises = rows.iter().filter(|r| r.reason.is_none()).filter_map(|r| {
        let campaign = shared.campaigns.get(&r.campaign_id)?;
        let user = UserId::stored(&r.user_id)?;
        let at = r.at_ms as u64;
        let region = r.region.as_deref().and_then(Region::parse);
        let boards = campaign
            .rules
            .result_boards(&campaign.name, at, region.as_ref());
        Some(async move {
            shared
                .store
                .redis
                .raise(&campaign.name, &boards, &user, r.score as u64, at)
                .await
        })
    });
    for raised in futures_util::future::join_all(raises).await {
        raised?;
    }
    Ok(())
}

/// The batcher's loop; see the module doc.
async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let interval = Duration::from_millis(shared.config.flush_interval_ms);
    let claim_every = Duration::from_millis((shared.config.claim_idle_ms / 2).max(100));
    let mut batch: Vec<StreamEntry> = Vec::new();
    let mut oldest: Option<Instant> = None;
    let mut recovering = true;
    let mut backoff = Duration::from_millis(100);
    let mut last_claim = Instant::now();
    loop {
        let stopping = *stop.borrow_and_update();
        let due = !batch.is_empty()
            && (stopping
                || recovering
                || batch.len() >= shared.config.batch_size
                || oldest.is_some_and(|t| t.elapsed() >= interval));
        if due {
            match flush(&shared, &batch).await {
                Ok(()) => {
                    batch.clear();
                    oldest = None;
                    backoff = Duration::from_millis(100);
                    let up = pool::ping(&shared.store.pg).await.is_ok();
                    shared.store.postgres_seen(up);
                }
                Err(failed) => {
                    match &failed {
                        FlushError::Postgres(err) => {
                            telemetry::batch_failed(batch.len(), err);
                            shared.store.postgres_seen(false);
                        }
                        FlushError::Redis(err) => telemetry::batch_unacknowledged(batch.len(), err),
                    }
                    if stopping {
                        // Unwritten entries stay pending in the stream for the next batcher.
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            continue;
        }
        if stopping {
            break;
        }
        if !recovering && last_claim.elapsed() >= claim_every {
            last_claim = Instant::now();
            let idle = Duration::from_millis(shared.config.claim_idle_ms);
            match shared
                .store
                .redis
                .autoclaim(GROUP, &shared.consumer, idle, shared.config.batch_size)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(
                        entries = n,
                        "took over results left pending by another engine"
                    );
                    recovering = batch.is_empty();
                }
                Err(err) => tracing::warn!(%err, "could not claim idle results"),
            }
        }
        let want = shared.config.batch_size - batch.len();
        // Never blocked longer than MAX_BLOCK, so a drain is heard within that however long
        // the flush interval.
        let wait = oldest
            .map_or(interval, |t| interval.saturating_sub(t.elapsed()))
            .clamp(Duration::from_millis(1), MAX_BLOCK);
        match shared
            .store
            .redis
            .read_group(GROUP, &shared.consumer, want, recovering, wait)
            .await
        {
            Ok(entries) => {
                if recovering && entries.is_empty() {
                    recovering = false;
                }
                if oldest.is_none() && !entries.is_empty() {
                    oldest = Some(Instant::now());
                }
                batch.extend(entries);
            }
            Err(err) => {
                tracing::warn!(%err, "could not read the results stream");
                // Redis may have handed entries over before the reply was lost (they are then
                // pending on this consumer): read this consumer's pending ones first.
                recovering = true;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl Actor for PersistenceBatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        telemetry::batcher_started();
        let (shared, stop, done, finished) = (
            self.shared.clone(),
            self.stop.subscribe(),
            self.done.clone(),
            self.finished.clone(),
        );
        actix_rt::spawn(async move {
            if let Err(err) = shared.store.redis.ensure_group(GROUP).await {
                tracing::warn!(%err, "could not create the results consumer group; the loop retries reads");
            }
            run(shared, stop).await;
            finished.store(true, Ordering::Relaxed);
            done.notify_waiters();
        });
        // The backlog gauge, the pools, PostgreSQL and its replica; and the partitions of the
        // coming days.
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            let shared = act.shared.clone();
            actix_rt::spawn(async move {
                if let Ok((len, age)) = shared.store.redis.backlog(now_ms()).await {
                    shared.store.status.backlog.store(len, Ordering::Relaxed);
                    shared.store.status.oldest_ms.store(age, Ordering::Relaxed);
                    telemetry::persist_backlog(len, age);
                }
                telemetry::pool_usage("redis", shared.store.redis.pool_usage());
                telemetry::pool_usage("postgres", pool::pool_usage(&shared.store.pg));
                // An outage shows on /health and its gauge even when no batch is being
                // written (the gauge was once set only after a batch: the alert never fired).
                shared
                    .store
                    .postgres_seen(pool::ping(&shared.store.pg).await.is_ok());
                shared.store.probe_replica().await;
            });
        });
        ctx.run_interval(Duration::from_secs(3600), |act, _| {
            let shared = act.shared.clone();
            actix_rt::spawn(async move {
                let _ = results::ensure_partitions(
                    &shared.store.pg,
                    now_ms(),
                    shared.config.partitions_ahead_days,
                )
                .await;
                shared.store.age_out().await;
                shared
                    .store
                    .expire_ended(&shared.campaigns.all(), now_ms())
                    .await;
            });
        });
    }
}

/// Shutdown: stop reading, write what is held, answer when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for PersistenceBatcher {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Self::Context) -> Self::Result {
        let _ = self.stop.send(true);
        let (done, finished) = (self.done.clone(), self.finished.clone());
        Box::pin(async move {
            let notified = done.notified();
            if !finished.load(Ordering::Relaxed) {
                notified.await;
            }
        })
    }
}
