//! The durable local queue: jobs are rows in the SQLite file, claimed with a visibility timeout.
//!
//! A receive claims rows by pushing their `visible_at` into the future; ack deletes them. A
//! consumer that dies leaves its rows to reappear when the timeout passes, with `attempt`
//! counting each claim, so a job that keeps killing its consumer is parked after
//! `max_attempts` instead of looping forever.
//!
//! `attempt` also names the holder: ack, retry and dead-letter act only while the job's
//! `attempt` is still the one the consumer received. A consumer whose visibility timeout ran
//! out, and whose job another consumer has claimed since, can no longer delete or reschedule
//! the new holder's job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::Notify;

use super::SqliteDb;
use crate::domain::time::Timestamp;
use crate::ports::{Consumer, Delivery, DeliveryId, Outgoing, Queue, QueueError};

/// How often an idle consumer looks for jobs whose delay ran out or that another process
/// published (in-process publishes wake it at once).
const POLL: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct LocalQueue {
    db: SqliteDb,
    visibility: Duration,
    max_attempts: u32,
    wakers: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

fn unavailable(e: sqlx::Error) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl LocalQueue {
    pub fn new(db: SqliteDb, visibility: Duration, max_attempts: u32) -> LocalQueue {
        LocalQueue {
            db,
            visibility,
            max_attempts,
            wakers: Arc::default(),
        }
    }

    /// Moves a job to the dead-letter table, in one transaction, if `attempt` still holds it.
    async fn park(&self, id: DeliveryId, attempt: u32, reason: &str) -> Result<(), QueueError> {
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        let moved = sqlx::query(
            "INSERT INTO queue_dead (queue, priority, payload, attempt, reason, failed_at) \
             SELECT j.queue, j.priority, p.payload, j.attempt, ?, ? \
             FROM queue_jobs j JOIN queue_payloads p ON p.id = j.id \
             WHERE j.id = ? AND j.attempt = ?",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(id.0 as i64)
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        if moved > 0 {
            delete_jobs(&mut tx, &[(id, attempt)]).await?;
        }
        tx.commit().await.map_err(unavailable)
    }

    /// Makes every claimed job visible again. Called at start-up: the embedded queue belongs
    /// to one process, so claims found then are a crashed predecessor's, and waiting out their
    /// visibility timeout would only delay recovery. (If another live process shares the file,
    /// its jobs may be handled twice, which the idempotent processor tolerates.)
    pub async fn release_claims(&self) -> Result<u64, QueueError> {
        let r = sqlx::query("UPDATE queue_jobs SET visible_at = ?, claimed = 0 WHERE claimed = 1")
            .bind(now_ms())
            .execute(&self.db.write)
            .await
            .map_err(unavailable)?;
        Ok(r.rows_affected())
    }

    fn waker(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.wakers.lock().expect("waker map lock");
        map.entry(queue.to_owned()).or_default().clone()
    }
}

#[async_trait]
impl Queue for LocalQueue {
    fn backend(&self) -> &'static str {
        "local"
    }

    async fn publish(&self, queue: &str, messages: &[Outgoing]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        for m in messages {
            insert_job(
                &mut tx,
                queue,
                i64::from(m.priority),
                &m.payload,
                now + millis(m.delay),
                now,
            )
            .await?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.waker(queue).notify_waiters();
        Ok(())
    }

    async fn consumer(&self, queue: &str, _prefetch: u16) -> Result<Box<dyn Consumer>, QueueError> {
        Ok(Box::new(LocalConsumer {
            queue: self.clone(),
            name: queue.to_owned(),
            waker: self.waker(queue),
            held: HashMap::new(),
        }))
    }

    async fn depth(&self, queue: &str) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_jobs WHERE queue = ?")
            .bind(queue)
            .fetch_one(&self.db.read)
            .await
            .map_err(unavailable)?;
        Ok(n as u64)
    }

    /// Exact: the earliest `visible_at` already passed (a lease that ran out is ready again).
    async fn oldest_ready(&self, queue: &str) -> Result<Option<Duration>, QueueError> {
        let now = now_ms();
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(visible_at) FROM queue_jobs WHERE queue = ? AND visible_at <= ?",
        )
        .bind(queue)
        .bind(now)
        .fetch_one(&self.db.read)
        .await
        .map_err(unavailable)?;
        let waited = oldest.map_or(0, |t| u64::try_from(now - t).unwrap_or(0));
        Ok(Some(Duration::from_millis(waited)))
    }

    async fn dead_count(&self, queue: &str) -> Result<u64, QueueError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_dead WHERE queue = ?")
            .bind(queue)
            .fetch_one(&self.db.read)
            .await
            .map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn redrive(&self, queue: &str, limit: u64) -> Result<u64, QueueError> {
        let mut tx = self.db.begin_write().await.map_err(unavailable)?;
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM queue_dead WHERE queue = ? ORDER BY id LIMIT ?")
                .bind(queue)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
        let now = now_ms();
        for id in &ids {
            let (priority, payload): (i64, Vec<u8>) =
                sqlx::query_as("SELECT priority, payload FROM queue_dead WHERE id = ?")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            insert_job(&mut tx, queue, priority, &payload, now, now).await?;
            sqlx::query("DELETE FROM queue_dead WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.waker(queue).notify_waiters();
        Ok(ids.len() as u64)
    }

    async fn ping(&self) -> Result<(), QueueError> {
        sqlx::query("SELECT 1")
            .execute(&self.db.read)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

struct LocalConsumer {
    queue: LocalQueue,
    name: String,
    waker: Arc<Notify>,
    /// The attempt each delivery this consumer holds was received with: `ack` is given ids
    /// only, and must act only for the holder.
    held: HashMap<DeliveryId, u32>,
}

impl LocalConsumer {
    /// Claims up to `max` visible jobs, highest priority first, and parks any that have been
    /// claimed too often.
    async fn claim(&self, max: usize) -> Result<Vec<Delivery>, QueueError> {
        let now = now_ms();
        let claimed: Vec<(i64, i64, i64)> = sqlx::query_as(
            "UPDATE queue_jobs SET visible_at = ?, attempt = attempt + 1, claimed = 1 WHERE id IN \
             (SELECT id FROM queue_jobs WHERE queue = ? AND visible_at <= ? \
              ORDER BY priority DESC, id LIMIT ?) \
             RETURNING id, priority, attempt",
        )
        .bind(now + millis(self.queue.visibility))
        .bind(&self.name)
        .bind(now)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&self.queue.db.write)
        .await
        .map_err(unavailable)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        // Payloads are read off the writer: WAL readers see the committed jobs.
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT id, payload FROM queue_payloads WHERE id IN (");
        let mut sep = q.separated(",");
        for (id, ..) in &claimed {
            sep.push_bind(*id);
        }
        q.push(")");
        let payloads: std::collections::HashMap<i64, Vec<u8>> = q
            .build_query_as::<(i64, Vec<u8>)>()
            .fetch_all(&self.queue.db.read)
            .await
            .map_err(unavailable)?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(claimed.len());
        for (id, priority, attempt) in claimed {
            let d = Delivery {
                id: DeliveryId(id as u64),
                priority: priority as u8,
                payload: Bytes::from(payloads.get(&id).cloned().unwrap_or_default()),
                attempt: attempt as u32,
            };
            if d.attempt > self.queue.max_attempts {
                self.queue
                    .park(d.id, d.attempt, "delivered too many times without an ack")
                    .await?;
            } else {
                out.push(d);
            }
        }
        out.sort_by_key(|d| (std::cmp::Reverse(d.priority), d.id));
        Ok(out)
    }
}

#[async_trait]
impl Consumer for LocalConsumer {
    async fn receive(
        &mut self,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Delivery>, QueueError> {
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        loop {
            // Register for wake-ups before looking, so a publish between the look and the wait
            // is not missed.
            let notified = self.waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.claim(max).await?;
            if !got.is_empty() {
                self.held.extend(got.iter().map(|d| (d.id, d.attempt)));
                return Ok(got);
            }
            let now = tokio::time::Instant::now();
            let nap = match deadline {
                Some(d) if d <= now => return Ok(Vec::new()),
                Some(d) => (d - now).min(POLL),
                None => POLL,
            };
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    async fn ack(&mut self, ids: &[DeliveryId]) -> Result<(), QueueError> {
        // Ids this consumer does not hold (acked already) have nothing to delete.
        let held: Vec<(DeliveryId, u32)> = ids
            .iter()
            .filter_map(|id| self.held.get(id).map(|a| (*id, *a)))
            .collect();
        if held.is_empty() {
            return Ok(());
        }
        let mut tx = self.queue.db.begin_relaxed().await.map_err(unavailable)?;
        delete_jobs(&mut tx, &held).await?;
        tx.commit().await.map_err(unavailable)?;
        for (id, _) in &held {
            self.held.remove(id);
        }
        Ok(())
    }

    async fn retry(&mut self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        sqlx::query(
            "UPDATE queue_jobs SET visible_at = ?, claimed = 0 WHERE id = ? AND attempt = ?",
        )
        .bind(now_ms() + millis(delay))
        .bind(d.id.0 as i64)
        .bind(i64::from(d.attempt))
        .execute(&self.queue.db.write)
        .await
        .map_err(unavailable)?;
        self.held.remove(&d.id);
        Ok(())
    }

    async fn dead_letter(&mut self, d: &Delivery, reason: &str) -> Result<(), QueueError> {
        self.queue.park(d.id, d.attempt, reason).await?;
        self.held.remove(&d.id);
        Ok(())
    }
}

type Tx = sqlx::Transaction<'static, Sqlite>;

async fn insert_job(
    tx: &mut Tx,
    queue: &str,
    priority: i64,
    payload: &[u8],
    visible_at: i64,
    now: i64,
) -> Result<(), QueueError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO queue_jobs (queue, priority, visible_at, attempt, enqueued_at) \
         VALUES (?, ?, ?, 0, ?) RETURNING id",
    )
    .bind(queue)
    .bind(priority)
    .bind(visible_at)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(unavailable)?;
    sqlx::query("INSERT INTO queue_payloads (id, payload) VALUES (?, ?)")
        .bind(id)
        .bind(payload)
        .execute(&mut **tx)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Deletes the jobs still held at these attempts, with their payloads.
async fn delete_jobs(tx: &mut Tx, held: &[(DeliveryId, u32)]) -> Result<(), QueueError> {
    for chunk in held.chunks(500) {
        let mut q =
            QueryBuilder::<Sqlite>::new("DELETE FROM queue_jobs WHERE (id, attempt) IN (VALUES ");
        let mut sep = q.separated(",");
        for (id, attempt) in chunk {
            sep.push("(");
            sep.push_bind_unseparated(id.0 as i64);
            sep.push_unseparated(", ");
            sep.push_bind_unseparated(i64::from(*attempt));
            sep.push_unseparated(")");
        }
        q.push(") RETURNING id");
        let deleted: Vec<i64> = q
            .build_query_scalar()
            .fetch_all(&mut **tx)
            .await
            .map_err(unavailable)?;
        if deleted.is_empty() {
            continue;
        }
        let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM queue_payloads WHERE id IN (");
        let mut sep = q.separated(",");
        for id in deleted {
            sep.push_bind(id);
        }
        q.push(")");
        q.build().execute(&mut **tx).await.map_err(unavailable)?;
    }
    Ok(())
}
