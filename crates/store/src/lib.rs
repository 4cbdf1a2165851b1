//! Storage for Textback: one `Store` over SQLite (the default, embedded) or PostgreSQL (the
//! scale-out store), each with its own migrations, and the durable job queue.
//!
//! Both backends run the same SQL text wherever the dialects agree (`$1` placeholders work
//! in SQLite too); the few places they differ (row locks, `SKIP LOCKED`, how a write
//! transaction begins) are spelled out per backend. Each query is written once in the
//! store's own query API (`sql`) and runs in a write transaction (`in_write_tx!`) or on the
//! read pool (`on_pool!`), so no handler carries a database type parameter. SQLite's write
//! transactions run on one writer connection with group commit (`sqlite_writer`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use tokio::sync::Notify;

mod accounts;
mod api;
mod calls;
mod consent;
mod conversations;
mod deliveries;
mod diagnostics;
mod dial_batch;
mod events_out;
mod housekeeping;
mod jobs;
mod lookups;
mod messages;
mod migrate;
mod pg_batch;
mod pg_deferred;
mod route_cache;
mod runs;
mod send_batch;
mod settings;
mod sql;
mod sqlite_point_reads;
mod sqlite_writer;
#[cfg(test)]
mod test_files;
mod users;
mod workflows;

pub use accounts::{AccountRecord, NumberRecord, NumberRoute};
pub use api::{
    ApiKeyView, ContactView, ConversationView, ImportRow, SmartListRecord, StoredResponse,
};
pub use calls::{CallView, DialFacts, NewCall};
pub use consent::{ConsentChange, ConsentEvent, InboundMessage, InboundOutcome};
pub use conversations::{Reply, ReplyRefused};
pub use deliveries::{Delivery, DeliveryView};
pub use diagnostics::{ErrorCount, FunnelRow, VariantRow};
pub use events_out::{EVENT_TYPES, Subscription};
pub use housekeeping::{IDEMPOTENCY_WINDOW_MS, STALE_RESERVATION_MS, Swept};
pub use jobs::{Claim, Job, JobKind, retry_delay, retry_delay_for};
pub use messages::{
    ContactEffect, DeliveryReport, MessageView, OutboundMessage, SendOutcome, status_rank,
};
/// How many migrations a fresh database gets.
pub use migrate::COUNT as MIGRATIONS;
pub use runs::{
    RunAction, RunCall, RunContact, RunInput, RunNext, RunPlan, RunView, StartPlan, StartRun,
    TaskFilter, TaskQuery, TaskView, TriggerInput,
};
pub use users::{Role, Session, TeamChange, User, normalize_email};
pub use workflows::{WorkflowChange, WorkflowRecord, WorkflowVersion};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("DATABASE_URL {0:?} is not a sqlite: or postgres: URL")]
    UnsupportedUrl(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The batch this write belonged to could not be committed; nothing of it is stored.
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    #[error("database writer: {0}")]
    Writer(String),
    #[error("cannot write to the SQLite database {path}: {why}")]
    CannotWrite { path: String, why: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The connection to the database failed, not a statement: doing the same work again
    /// at once, in smaller pieces, would only fail again. PostgreSQL reports some such
    /// failures as errors of its own (a database not accepting connections, a server
    /// shutting down): those end the session (FATAL) or are connection exceptions (08).
    pub(crate) fn lost_the_database(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::BeginFailed,
            ) => true,
            StoreError::Database(sqlx::Error::Database(e)) => {
                let fatal = e
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some_and(|pg| {
                        matches!(
                            pg.severity(),
                            sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                        )
                    });
                fatal || e.code().is_some_and(|c| c.starts_with("08"))
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// SQLite: sqlx's pool for reads (and migrations), connections for reads by key on the
/// calling thread (`sqlite_point_reads`), one writer connection for every write transaction
/// (`sqlite_writer`).
#[derive(Clone)]
pub(crate) struct SqliteDb {
    pub(crate) readers: SqlitePool,
    pub(crate) point_reads: Arc<sqlite_point_reads::PointReads>,
    pub(crate) writer: Arc<sqlite_writer::Writer>,
}

impl Db {
    /// Where a read of a few rows by key runs: on SQLite, inline on the calling thread
    /// (`sqlite_point_reads`); on PostgreSQL, the pool. Never for a read that may scan:
    /// debug builds (every test) check each statement's SQLite query plan the first time it
    /// runs here.
    pub(crate) fn by_key(&self) -> sql::ByKey<'_> {
        sql::ByKey(self)
    }

    /// Where a statement that writes runs when it is the whole transaction: on PostgreSQL
    /// outside any transaction, so it commits by itself without BEGIN and COMMIT round
    /// trips; on SQLite on the writer, in the given lane. Atomic because it is one
    /// statement: a body of two or more goes in `in_write_tx!`.
    pub(crate) fn alone(&self, lane: sqlite_writer::Lane) -> sql::Alone<'_> {
        sql::Alone(self, lane)
    }
}

/// Runs the body with `$pool` naming the store's database, for reads outside a
/// transaction (`crate::sql` queries run on it).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {{
        let $pool = &$store.db;
        $body
    }};
}

/// Runs the body inside one write transaction and commits it; an early return (`?`)
/// rolls it back. `background` marks the workers' transactions, which give way to those
/// someone is waiting on. On SQLite the transaction runs on the one writer connection, begun
/// IMMEDIATE (see `sqlite_writer`).
macro_rules! in_write_tx {
    (background $store:expr, $tx:ident => $body:expr) => {
        $crate::in_write_tx!(@lane $crate::sqlite_writer::Lane::Background, $store, $tx => $body)
    };
    ($store:expr, $tx:ident => $body:expr) => {
        $crate::in_write_tx!(@lane $crate::sqlite_writer::Lane::Urgent, $store, $tx => $body)
    };
    (@lane $lane:expr, $store:expr, $tx:ident => $body:expr) => {{
        let mut write = $store.begin_write($lane).await?;
        let $tx = &mut write;
        let out = $body;
        write.commit().await?;
        out
    }};
}

pub(crate) use {in_write_tx, on_pool};

#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    wake: Arc<Notify>,
    /// PostgreSQL: where dial results go to be settled together (`pg_batch`).
    dial_batch: Option<pg_batch::Batch<dial_batch::DialResult>>,
    /// PostgreSQL: where send outcomes go to be recorded together (`pg_batch`).
    send_batch: Option<pg_batch::Batch<messages::SendResult>>,
    /// PostgreSQL: number routes, while `listen_for_work` hears of their changes.
    pub(crate) routes: Arc<route_cache::RouteCache>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.db {
            Db::Sqlite(_) => "Store(sqlite)",
            Db::Postgres(_) => "Store(postgres)",
        })
    }
}

/// The channel the `jobs` insert trigger notifies (migration 0013).
const JOBS_CHANNEL: &str = "textback_jobs";
/// The channel changes to numbers and accounts notify (migration 0016).
const ROUTES_CHANNEL: &str = "textback_routes";

impl Store {
    /// Connects to `sqlite:PATH` (created if missing) or `postgres://…`. Does not migrate.
    pub async fn connect(url: &str) -> Result<Store> {
        let db = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let filename = opts.get_filename().to_owned();
            // The writer creates the file and switches it to WAL, or says why it cannot.
            let writer = sqlite_writer::Writer::open(&filename)?;
            let readers = SqlitePoolOptions::new()
                .max_connections(4)
                .min_connections(1)
                .connect_with(opts)
                .await?;
            Db::Sqlite(SqliteDb {
                readers,
                point_reads: Arc::new(sqlite_point_reads::PointReads::new(&filename)),
                writer: Arc::new(writer),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            Db::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let mut store = Store {
            db,
            wake: Arc::new(Notify::new()),
            dial_batch: None,
            send_batch: None,
            routes: Arc::default(),
        };
        if let Db::Postgres(_) = store.db {
            store.dial_batch = Some(pg_batch::Batch::start(store.clone()));
            store.send_batch = Some(pg_batch::Batch::start(store.clone()));
        }
        Ok(store)
    }

    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// On SQLite, the bytes SQLite holds in this process (page caches, schemas, prepared
    /// statements), for `/metrics` and the soak; `None` on PostgreSQL.
    pub fn sqlite_memory_bytes(&self) -> Option<i64> {
        match self.db {
            // SAFETY: sqlite3_memory_used only reads SQLite's own counters, under its mutex.
            Db::Sqlite(_) => Some(unsafe { rusqlite::ffi::sqlite3_memory_used() }),
            Db::Postgres(_) => None,
        }
    }

    /// Applies the backend's migrations that have not run yet; returns how many ran.
    pub async fn migrate(&self) -> Result<usize> {
        migrate::run(&self.db).await
    }

    /// `SELECT 1`, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        sql::query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(s) => s.readers.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Begins a write transaction; see `in_write_tx!`.
    pub(crate) async fn begin_write(&self, lane: sqlite_writer::Lane) -> Result<sql::WriteTx<'_>> {
        Ok(match &self.db {
            Db::Sqlite(s) => sql::WriteTx::Sqlite(s.writer.begin(lane).await?),
            Db::Postgres(pool) => sql::WriteTx::Postgres(sql::PgTx::new(pool.begin().await?)),
        })
    }

    /// Whether jobs of one kind are better run together (`start_runs_together`): on
    /// PostgreSQL, where they then share a transaction's round trips and commit. SQLite's
    /// one writer commits concurrent transactions together by itself.
    pub fn shares_transactions(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Whether number routes are served from memory: on PostgreSQL while
    /// `listen_for_work` is connected and hears of their changes (`route_cache`).
    pub fn routes_from_memory(&self) -> bool {
        self.routes.is_live()
    }

    /// Signalled whenever work is enqueued, so an idle worker wakes at once.
    pub fn work_signal(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Wakes this process's workers whenever any instance sharing the database enqueues a
    /// job: on PostgreSQL, LISTEN for the `jobs` insert trigger's NOTIFY (reconnecting after
    /// a lost connection); on SQLite there is nothing to do (one instance, woken in
    /// process). The returned task runs until aborted.
    pub fn listen_for_work(&self) -> Option<tokio::task::JoinHandle<()>> {
        let Db::Postgres(pool) = &self.db else {
            return None;
        };
        let pool = pool.clone();
        let wake = self.wake.clone();
        let routes = self.routes.clone();
        Some(tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => {
                        // A lost connection ends the loop below at once (notices may have
                        // been missed), to be made again from scratch.
                        listener.eager_reconnect(false);
                        if let Err(e) = listener.listen_all([JOBS_CHANNEL, ROUTES_CHANNEL]).await {
                            tracing::warn!(error = %e, "LISTEN failed; workers poll until it works");
                        } else {
                            let _live = routes.live_until_dropped();
                            // Jobs may have arrived while not listening.
                            wake.notify_waiters();
                            while let Ok(Some(notice)) = listener.try_recv().await {
                                if notice.channel() == ROUTES_CHANNEL {
                                    routes.forget_all();
                                } else {
                                    wake.notify_one();
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not listen for new jobs; workers poll until it works")
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }))
    }

    /// Wakes one idle worker per job enqueued (or leaves a permit for the next to wait):
    /// waking all of them for each job made every idle worker run a claim transaction for
    /// the one that got it: four write transactions per missed call below full load.
    pub(crate) fn wake_workers(&self) {
        self.wake.notify_one();
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
