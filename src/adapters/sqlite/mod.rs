//! The embedded backend: one SQLite file (WAL mode) holding the store and the local queue.

mod campaigns;
mod deliveries;
mod endpoints;
mod queue;
mod secrets;
mod store;

pub use queue::LocalQueue;
pub use store::SqliteStore;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlSafeStr, SqlitePool};
use tokio_util::sync::CancellationToken;

use super::sql::{classify, migrator};
use crate::ports::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "ownership_and_replay",
        include_str!("../../../migrations/sqlite/0002_ownership_and_replay.sql"),
    ),
    (
        3,
        "reported_statuses",
        include_str!("../../../migrations/sqlite/0003_reported_statuses.sql"),
    ),
    (
        4,
        "endpoints",
        include_str!("../../../migrations/sqlite/0004_endpoints.sql"),
    ),
    (
        5,
        "raw_retention",
        include_str!("../../../migrations/sqlite/0005_raw_retention.sql"),
    ),
    (
        6,
        "delivery_budget",
        include_str!("../../../migrations/sqlite/0006_delivery_budget.sql"),
    ),
    (
        7,
        "campaigns",
        include_str!("../../../migrations/sqlite/0007_campaigns.sql"),
    ),
    (
        9,
        "campaign_recovery",
        include_str!("../../../migrations/sqlite/0009_campaign_recovery.sql"),
    ),
    (
        11,
        "meta_phone_number_ids",
        include_str!("../../../migrations/sqlite/0011_meta_phone_number_ids.sql"),
    ),
];

/// Two pools on one file: writes go through a single connection, so writers in this process
/// queue in memory instead of spinning on SQLite's lock; reads use several connections, which
/// WAL lets run beside the writer.
#[derive(Clone)]
pub struct SqliteDb {
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    checkpointer: SqlitePool,
    stop: CancellationToken,
    /// With `synchronous = FULL` configured: the writer connection was last lent to a relaxed
    /// transaction and is at `NORMAL` until its release puts it back.
    relaxed: Option<Arc<AtomicBool>>,
}

/// Page cache per connection (negative: KiB), part of the process's memory budget. Every
/// connection has its own, so six at SQLite's 64 MiB would hold ~400 MB once the file is
/// large. The writer touches index pages all over the file and keeps most; readers lose their
/// cache whenever the writer commits (WAL), so a large one would only hold stale pages, and the
/// checkpointer copies WAL frames, which needs almost none.
const WRITER_CACHE: &str = "-16384";
const OTHER_CACHE: &str = "-2048";

/// WAL size (pages) at which a committing writer checkpoints by itself.
const WRITER_CHECKPOINT_PAGES: u32 = 16_000;
/// WAL frames beyond which a fully checkpointed WAL file is cut back. SQLite reuses the file
/// from its start and keeps its size: a reader held open during a burst of writes (a long
/// export, the load tool's final check) keeps checkpoints from finishing, and the WAL was seen
/// at 1.2 GB after one `bench ingest` of 500,000 events, and still 1.2 GB when idle. Twice the
/// writer's own checkpoint threshold; `journal_size_limit` cuts it back to the same size
/// when a writer starts the WAL over.
const WAL_LIMIT_FRAMES: u32 = 2 * WRITER_CHECKPOINT_PAGES;
const WAL_SIZE_LIMIT: u64 = WAL_LIMIT_FRAMES as u64 * 4096;
/// How often the background checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

impl SqliteDb {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`), and migrates it.
    pub async fn open(url: &str, synchronous_full: bool) -> Result<SqliteDb, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad sqlite url {url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            // The background checkpointer keeps the WAL short; this is only the writer's
            // fallback, set high because a checkpoint inside a commit stalls every writer.
            .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string())
            .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string());
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let relaxed = synchronous_full.then(|| Arc::new(AtomicBool::new(false)));
        let mut write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30));
        if let Some(flag) = relaxed.clone() {
            // Runs before the connection can be lent again, after any rollback a dropped
            // transaction queued; a failure closes the connection, and its replacement opens
            // at FULL.
            write = write.after_release(move |conn, _| {
                let flag = flag.clone();
                Box::pin(async move {
                    if flag.swap(false, Ordering::AcqRel) {
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(conn)
                            .await?;
                    }
                    Ok(true)
                })
            });
        }
        let write = write
            .connect_with(options.clone().pragma("cache_size", WRITER_CACHE))
            .await
            .map_err(classify)?;
        migrator(MIGRATIONS)
            .run(&write)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        // The checkpointer never waits for a lock: PASSIVE takes none, and a TRUNCATE that
        // would have to wait for a reader or the writer gives up at once instead.
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .busy_timeout(Duration::ZERO)
                    .pragma("cache_size", OTHER_CACHE),
            )
            .await
            .map_err(classify)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true).pragma("cache_size", OTHER_CACHE))
            .await
            .map_err(classify)?;
        let stop = CancellationToken::new();
        tokio::spawn(checkpoint_loop(checkpointer.clone(), stop.clone()));
        Ok(SqliteDb {
            write,
            read,
            checkpointer,
            stop,
            relaxed,
        })
    }

    /// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so it never
    /// has to upgrade from a read lock and fail with BUSY half-way.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.write.begin_with("BEGIN IMMEDIATE").await
    }

    /// A write transaction whose commit does not wait for the disk (`synchronous = NORMAL`
    /// for it alone), for writes whose loss only makes work be done again: acks (redelivery),
    /// the processor's apply (re-applied, idempotent), attempt records (the webhook goes out
    /// again, as at-least-once delivery allows). A power cut loses only commits
    /// after the last synced one (WAL keeps them in order), so never an effect without
    /// what it followed; the next durable commit (an ingress publish, a campaign claim)
    /// syncs every earlier one. A process crash loses nothing either way. Measured with
    /// `strace -c` on a 5,000-recipient closed loop: 3,764 fsyncs with every commit FULL,
    /// 849 with these relaxed.
    pub(crate) async fn begin_relaxed(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        let Some(flag) = &self.relaxed else {
            return self.begin_write().await;
        };
        let conn = self.write.acquire().await?;
        // Set while this task holds the only writer connection, so its release (even one
        // after a failed begin) is the one that puts FULL back.
        flag.store(true, Ordering::Release);
        sqlx::Transaction::begin(
            conn,
            Some("PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE".into_sql_str()),
        )
        .await
    }

    /// Stops the checkpointer, folds the WAL into the database file, closes every connection.
    pub async fn close(&self) {
        self.stop.cancel();
        self.read.close().await;
        self.write.close().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.checkpointer)
            .await;
        self.checkpointer.close().await;
    }
}

/// Copies committed WAL pages into the database from its own connection, so commits never
/// pay for it. A PASSIVE checkpoint takes no lock that writers or readers wait on; pages
/// rewritten between runs are copied once instead of once per commit.
async fn checkpoint_loop(pool: SqlitePool, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            // Every frame is back in the database and the file is far larger than the WAL
            // needs: cut it to nothing. Fails at once, to be tried next round, while anyone
            // reads or writes.
            Ok((_, log, copied)) if log == copied && log > i64::from(WAL_LIMIT_FRAMES) => {
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "background checkpoint failed; the writer's fallback remains");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn level(db: &SqliteDb) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&db.write)
            .await
            .unwrap()
    }

    async fn level_in(tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut **tx)
            .await
            .unwrap()
    }

    const NORMAL: i64 = 1;
    const FULL: i64 = 2;

    #[tokio::test]
    async fn a_relaxed_transaction_leaves_the_writer_at_full_however_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = SqliteDb::open(&url, true).await.unwrap();
        assert_eq!(level(&db).await, FULL);

        let mut tx = db.begin_relaxed().await.unwrap();
        assert_eq!(level_in(&mut tx).await, NORMAL);
        tx.commit().await.unwrap();
        assert_eq!(level(&db).await, FULL, "after a commit");

        let mut tx = db.begin_relaxed().await.unwrap();
        assert_eq!(level_in(&mut tx).await, NORMAL);
        drop(tx);
        assert_eq!(level(&db).await, FULL, "after a dropped transaction");

        let mut tx = db.begin_write().await.unwrap();
        assert_eq!(level_in(&mut tx).await, FULL, "a durable transaction");
        tx.rollback().await.unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn with_normal_configured_every_transaction_is_normal() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = SqliteDb::open(&url, false).await.unwrap();
        let mut tx = db.begin_relaxed().await.unwrap();
        assert_eq!(level_in(&mut tx).await, NORMAL);
        tx.commit().await.unwrap();
        assert_eq!(level(&db).await, NORMAL);
        db.close().await;
    }
}
