//! SQLite's one writer: every write transaction of the process runs on one connection,
//! inline on the task that asked for it, and transactions that queue up behind each other
//! share one commit (group commit).
//!
//! SQLite lets one writer in at a time anyway; taking turns here, in a fair async queue,
//! costs a lock instead of a busy-wait, and keeps statements off sqlx's per-connection
//! thread. Each transaction body runs inside a savepoint of the batch's transaction, so a
//! body that fails rolls back alone. A body's caller is answered only once the batch has
//! committed: nothing is acknowledged before it is durable. The last body of a batch (no
//! one else waiting, the batch full, or open for `MAX_BATCH_AGE`) commits it; a caller left
//! waiting commits it itself when no body has begun for a millisecond (its successor was
//! cancelled).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard, Semaphore, watch};

use crate::{Result, StoreError};

/// Background transactions (the workers') queued for the writer at once: a carrier's
/// webhook waits behind at most this many of them, however long the job queue.
const BACKGROUND_QUEUE: usize = 8;
/// Bodies per commit at most, so a long queue still commits (and answers) regularly.
const MAX_BATCH: usize = 64;
/// How long a batch stays open for more bodies at most: under a long queue, the first
/// caller in it is answered within about this.
const MAX_BATCH_AGE: Duration = Duration::from_millis(3);
/// How long a caller waits, while no new body begins, for its batch to be committed by
/// someone else.
const COMMIT_WAIT: Duration = Duration::from_millis(1);
/// How long to wait for another process holding SQLite's write lock.
const BUSY_WAIT: Duration = Duration::from_secs(10);
/// A log of this many frames (pages; 32 MiB at SQLite's 4 KiB) is started over.
const RESTART_FRAMES: i64 = if cfg!(test) { 256 } else { 8192 };
/// A write-ahead log file larger than this is truncated once writes pause.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;
/// What SQLite may hold in memory, all connections together, before its page caches give
/// pages back. Unbounded, the writer's, the readers' and the point reads' caches grew to
/// 16 MB at 1,000 missed calls/s and took `serve`'s peak resident set to 71 MB (bar: 60);
/// at 8 MiB the peak was 62 MB, at 4 MiB 57 MB, with throughput and latency unchanged
/// within the noise (docs/PERFORMANCE.md).
const SOFT_HEAP_LIMIT: i64 = 4 * 1024 * 1024;

/// How much of a savepoint's journal (the pages a transaction body changes, kept to roll
/// the body back alone) SQLite keeps in memory before it moves it to a temporary file. The
/// journal grows in blocks of this size: with `temp_store = MEMORY` instead, the blocks
/// are 1 KiB, and allocating and freeing five of them per page journalled took ~10% of the
/// process at full load (docs/PERFORMANCE.md, session 8). A body rarely changes more
/// than a few dozen pages of 4 KiB.
const SAVEPOINT_JOURNAL_IN_MEMORY: usize = 1024 * 1024;
/// Sets SQLite's process-wide options, once, before the process's first connection
/// initialises SQLite (the writer opens first; after that `sqlite3_config` returns
/// SQLITE_MISUSE and changes nothing, which would only cost speed).
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with this option takes one int and only sets a global;
        // `Once` keeps two threads from calling it together.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
                SAVEPOINT_JOURNAL_IN_MEMORY as std::ffi::c_int,
            );
        }
    });
}

/// How often the checkpointer copies the write-ahead log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Who is waiting: someone who must be answered now (a carrier's webhook, a person), or
/// the workers' background work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Urgent,
    Background,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// Tasks queued for the lock (not the holder): while any wait, the holder leaves the
    /// batch open for them.
    waiting: AtomicUsize,
    /// Bodies begun so far: a caller waiting for its batch sees the writer at work.
    begun: AtomicU64,
    /// Admits background transactions to the queue (`BACKGROUND_QUEUE`).
    background: Semaphore,
    /// Tells the checkpointer thread to stop.
    stop: Arc<AtomicBool>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What the checkpointer shares with the writer: it takes the writer's turn to start the
/// log over (`restart_log`).
struct Shared {
    state: Mutex<State>,
    committed: watch::Sender<Committed>,
}

struct State {
    conn: rusqlite::Connection,
    /// A batch transaction is open.
    open: bool,
    /// The open (or next) batch's number.
    batch: u64,
    bodies: usize,
    /// When the open batch began.
    opened_at: Instant,
}

#[derive(Default)]
struct Committed {
    /// Every batch below this number is finished.
    upto: u64,
    /// Recent batches whose commit failed, with why.
    failed: VecDeque<(u64, Arc<str>)>,
}

impl Writer {
    /// Opens (creating it if missing) the database file for writing, in WAL mode. A file
    /// that may only be read, or a directory where SQLite cannot create its `-wal` and
    /// `-shm` files, is refused here with the reason, before anything is written.
    pub(crate) fn open(path: &Path) -> Result<Writer> {
        let cannot_write = |why: String| StoreError::CannotWrite {
            path: path.display().to_string(),
            why,
        };
        configure_sqlite();
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| cannot_write(e.to_string()))?;
        // SQLite quietly opens a file it may not write read-only.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            return Err(cannot_write(
                "the file may only be read (its permissions, or a read-only file system)".into(),
            ));
        }
        let beside = |e: rusqlite::Error| {
            cannot_write(format!(
                "{e} (SQLite keeps its -wal and -shm files beside the database: the directory, \
                 and those files where they exist, must be writable too)"
            ))
        };
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(beside)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(cannot_write(format!(
                "it stays in journal mode {mode:?}; Textback needs WAL"
            )));
        }
        // Taking the write lock is what fails when only the -shm file is not writable.
        // Another process writing just now is fine: the lock is there to be had.
        match conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy => {}
            other => other.map_err(beside)?,
        }
        // Waiting for another process's write lock happens in `begin_batch`, asleep.
        conn.busy_timeout(Duration::ZERO)?;
        // Checkpoints happen on their own thread (`checkpoint_until`), not inside a commit
        // that callers are waiting for: a checkpoint syncs the database file. Each body's
        // savepoint journals the pages it changes in memory (`SAVEPOINT_JOURNAL_IN_MEMORY`).
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.set_prepared_statement_cache_capacity(256);
        // Process-wide: every connection's page cache gives pages back before SQLite's
        // memory passes it (the operating system caches the file as well).
        conn.query_row(
            &format!("PRAGMA soft_heap_limit = {SOFT_HEAP_LIMIT}"),
            [],
            |_| Ok(()),
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                conn,
                open: false,
                batch: 0,
                bodies: 0,
                opened_at: Instant::now(),
            }),
            committed: watch::Sender::new(Committed::default()),
        });
        let checkpointer = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        checkpointer.busy_timeout(Duration::from_millis(100))?;
        {
            let stop = stop.clone();
            let wal = PathBuf::from(format!("{}-wal", path.display()));
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_until(&checkpointer, &wal, &shared, &stop))
                .map_err(|e| StoreError::Writer(format!("cannot start the checkpointer: {e}")))?;
        }
        Ok(Writer {
            shared,
            waiting: AtomicUsize::new(0),
            begun: AtomicU64::new(0),
            background: Semaphore::new(BACKGROUND_QUEUE),
            stop,
        })
    }

    /// Starts a write transaction: waits its turn, then opens a savepoint in the batch.
    pub(crate) async fn begin(&self, lane: Lane) -> Result<SqliteTx<'_>> {
        let admitted = match lane {
            Lane::Urgent => None,
            Lane::Background => Some(
                self.background
                    .acquire()
                    .await
                    .map_err(|_| StoreError::Writer("shut down".into()))?,
            ),
        };
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let queued = Queued(&self.waiting);
        let mut state = self.shared.state.lock().await;
        drop(queued);
        drop(admitted);
        if state.open && state.conn.is_autocommit() {
            // SQLite rolled the batch back under an earlier body: report it to that
            // batch's callers and start afresh.
            let _ = self.shared.finish_batch(&mut state);
        }
        if !state.open {
            begin_batch(&mut state).await?;
        }
        state.conn.prepare_cached("SAVEPOINT body")?.execute([])?;
        self.begun.fetch_add(1, Ordering::Relaxed);
        Ok(SqliteTx {
            writer: self,
            state: Some(state),
        })
    }

    /// Waits until `batch` is committed; commits it itself if no body has begun for
    /// `COMMIT_WAIT` (the successor it left the batch open for gave up).
    async fn wait_for(&self, batch: u64) -> Result<()> {
        let mut rx = self.shared.committed.subscribe();
        let mut begun = self.begun.load(Ordering::Relaxed);
        loop {
            {
                let c = rx.borrow_and_update();
                if c.upto > batch {
                    return match c.failed.iter().find(|(b, _)| *b == batch) {
                        Some((_, why)) => Err(StoreError::NotCommitted(why.to_string())),
                        None => Ok(()),
                    };
                }
            }
            if tokio::time::timeout(COMMIT_WAIT, rx.changed())
                .await
                .is_err()
            {
                let now_begun = self.begun.load(Ordering::Relaxed);
                if now_begun != begun {
                    // Under load a batch takes longer than that to fill: still going.
                    begun = now_begun;
                    continue;
                }
                let mut state = self.shared.state.lock().await;
                if state.open && state.batch == batch {
                    return self.shared.finish_batch(&mut state);
                }
            }
        }
    }
}

impl Shared {
    /// Commits the open batch and tells everyone waiting on it how it went.
    fn finish_batch(&self, state: &mut State) -> Result<()> {
        let result = if state.conn.is_autocommit() {
            Err(StoreError::NotCommitted(
                "SQLite rolled the transaction back (a full disk or an I/O error)".into(),
            ))
        } else {
            state
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]))
                .map(drop)
                .map_err(|e| StoreError::NotCommitted(e.to_string()))
        };
        if result.is_err() && !state.conn.is_autocommit() {
            let _ = state.conn.execute_batch("ROLLBACK");
        }
        let batch = state.batch;
        state.open = false;
        state.bodies = 0;
        state.batch += 1;
        self.committed.send_modify(|c| {
            c.upto = batch + 1;
            if let Err(StoreError::NotCommitted(why)) = &result {
                c.failed.push_back((batch, Arc::from(why.as_str())));
                if c.failed.len() > 64 {
                    c.failed.pop_front();
                }
            }
        });
        result
    }
}

/// Copies the write-ahead log into the database file every `CHECKPOINT_EVERY` (PASSIVE:
/// never waits for the writer or readers) until the writer is dropped.
///
/// SQLite starts the log over only when a write begins while every frame of it has been
/// copied; under steady writes a PASSIVE checkpoint never catches up (frames are added
/// while it copies), and the log grew by ~20 MB a second at 100 missed calls/s. So once
/// the log holds `RESTART_FRAMES`, the checkpointer copies once more, then takes the
/// writer's turn, commits any open batch, and runs a RESTART checkpoint: the next write
/// starts the log over.
///
/// The file itself never shrinks by reuse, so one burst would keep it large for good:
/// when it is over `WAL_SIZE_LIMIT` and no batch committed since the last round, it is
/// truncated. Truncating during a burst instead (`journal_size_limit`) cost 12% of
/// throughput.
fn checkpoint_until(conn: &rusqlite::Connection, wal: &Path, shared: &Shared, stop: &AtomicBool) {
    let mut last_batch = u64::MAX;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(CHECKPOINT_EVERY);
        let batch = shared.committed.borrow().upto;
        let idle = batch == last_batch;
        last_batch = batch;
        let large = std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_SIZE_LIMIT);
        let mode = if idle && large { "TRUNCATE" } else { "PASSIVE" };
        if checkpoint(conn, mode).is_some_and(|frames| frames >= RESTART_FRAMES) {
            // Copies, without holding the writer, what was added during the round above:
            // the restart then holds it only for the last few frames and the syncs (at
            // 1,000 missed calls/s: held a median 6.6 → 4.5 ms).
            checkpoint(conn, "PASSIVE");
            // The rounds above copied pages into the database file without syncing it
            // (SQLite syncs it only when a round reaches the log's end, which under steady
            // writes none does); the restart must, while it holds the writer. Synced here,
            // it flushes only what the restart itself copies: the writer was held ~4-5 ms
            // for that sync alone at 1,000 missed calls/s (docs/PERFORMANCE.md, session 10).
            if let Err(e) = sync_database_file(conn) {
                tracing::warn!(error = %e, "syncing the database file before the log restart failed");
            }
            restart_log(conn, shared);
        }
    }
}

/// Flushes what has been written to the database file to disk, through the connection's
/// own file handle: a second descriptor of ours, once closed, would drop the POSIX locks
/// SQLite holds on the file for the whole process.
fn sync_database_file(conn: &rusqlite::Connection) -> std::result::Result<(), String> {
    use rusqlite::ffi;
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the handle is this open connection's, used by this thread alone;
    // SQLITE_FCNTL_FILE_POINTER writes the main database's file object through the
    // pointer, which lives across the call.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return Err(format!(
            "no file object for the database (SQLite error {rc})"
        ));
    }
    // SAFETY: `file` is the connection's open file object; its methods stay valid while
    // the connection is open, and xSync is what SQLite itself calls to sync it.
    let rc = unsafe {
        match (*file).pMethods.as_ref().and_then(|m| m.xSync) {
            Some(sync) => sync(file, ffi::SQLITE_SYNC_NORMAL),
            None => ffi::SQLITE_MISUSE,
        }
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("SQLite error {rc}"))
    }
}

/// Runs a checkpoint of `mode`; returns the frames in the log, or None (logged) if it
/// failed: the next round tries again.
fn checkpoint(conn: &rusqlite::Connection, mode: &str) -> Option<i64> {
    match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(1)
    }) {
        Ok(frames) => Some(frames),
        Err(e) => {
            tracing::warn!(error = %e, "WAL checkpoint failed; will try again");
            None
        }
    }
}

/// Holds the writer (its callers wait asleep), commits the batch it left open, and runs a
/// RESTART checkpoint: the frames added since the last round are copied, and the next
/// write begins the log anew.
fn restart_log(conn: &rusqlite::Connection, shared: &Shared) {
    let mut state = shared.state.blocking_lock();
    if state.open {
        // Its callers learn the outcome from the batch's result, as after any commit.
        let _ = shared.finish_batch(&mut state);
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "WAL restart checkpoint failed; will try again");
    }
}

/// Counts a task as queued for the lock until it gets it or gives up.
struct Queued<'a>(&'a AtomicUsize);
impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// BEGIN IMMEDIATE, waiting (asleep, not blocking the thread) while another process holds
/// the write lock.
async fn begin_batch(state: &mut MutexGuard<'_, State>) -> Result<()> {
    let started = Instant::now();
    loop {
        let begun = state
            .conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut begin| begin.execute([]));
        match begun {
            Ok(_) => {
                state.open = true;
                state.bodies = 0;
                state.opened_at = Instant::now();
                return Ok(());
            }
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < BUSY_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One write transaction: a savepoint inside the writer's batch.
pub(crate) struct SqliteTx<'w> {
    writer: &'w Writer,
    state: Option<MutexGuard<'w, State>>,
}

impl SqliteTx<'_> {
    /// Runs `f` on the connection; a failed statement is the body's to handle or return.
    pub(crate) fn run<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Connection) -> std::result::Result<T, rusqlite::Error>,
    ) -> Result<T> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| StoreError::Writer("write transaction already finished".into()))?;
        Ok(f(&state.conn)?)
    }

    pub(crate) async fn commit(mut self) -> Result<()> {
        let Some(mut state) = self.state.take() else {
            return Ok(());
        };
        let released = state
            .conn
            .prepare_cached("RELEASE body")
            .and_then(|mut s| s.execute([]));
        if let Err(e) = released {
            roll_back_body(&mut state);
            return Err(e.into());
        }
        state.bodies += 1;
        let batch = state.batch;
        if self.writer.waiting.load(Ordering::SeqCst) == 0
            || state.bodies >= MAX_BATCH
            || state.opened_at.elapsed() >= MAX_BATCH_AGE
        {
            return self.writer.shared.finish_batch(&mut state);
        }
        drop(state);
        self.writer.wait_for(batch).await
    }
}

fn roll_back_body(state: &mut State) {
    if state.conn.is_autocommit() {
        // SQLite ended the whole transaction; the batch reports it when it commits.
        return;
    }
    let _ = state.conn.execute_batch("ROLLBACK TO body; RELEASE body");
}

impl Drop for SqliteTx<'_> {
    /// A body that returned early (an error, or its task cancelled) leaves no trace.
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            roll_back_body(&mut state);
            if state.bodies == 0 && self.writer.waiting.load(Ordering::SeqCst) == 0 {
                // Nothing else in the batch: end it rather than leave it open.
                if !state.conn.is_autocommit() {
                    let _ = state.conn.execute_batch("ROLLBACK");
                }
                state.open = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh WAL database with one table `t (v UNIQUE)`; removed on drop.
    struct TempDb(PathBuf);
    impl TempDb {
        fn new() -> TempDb {
            let path = crate::test_files::temp_db_path("writer");
            // The writer's SQLite settings, as in `serve`, whichever test opens SQLite first.
            configure_sqlite();
            let conn = rusqlite::Connection::open(&path).expect("create");
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE);",
            )
            .expect("schema");
            TempDb(path)
        }
        fn values(&self) -> Vec<String> {
            let conn = rusqlite::Connection::open(&self.0).expect("open");
            let mut stmt = conn.prepare("SELECT v FROM t ORDER BY id").expect("select");
            stmt.query_map([], |r| r.get(0))
                .expect("rows")
                .collect::<std::result::Result<_, _>>()
                .expect("values")
        }
    }
    impl Drop for TempDb {
        fn drop(&mut self) {
            crate::test_files::remove_db(&self.0);
        }
    }

    async fn insert(writer: &Writer, v: String) -> Result<()> {
        let mut tx = writer.begin(Lane::Urgent).await?;
        tx.run(|c| c.execute("INSERT INTO t (v) VALUES (?1)", [&v]))?;
        tx.commit().await
    }

    /// What the pipeline relies on: a job's text, committed by one task, is found at once by
    /// the task that sends it, on a reused connection with a cached statement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_by_key_see_each_commit_at_once() {
        let db = TempDb::new();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        let reads = Arc::new(crate::sqlite_point_reads::PointReads::new(&db.0));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..8 {
            let (writer, reads) = (writer.clone(), reads.clone());
            tasks.spawn(async move {
                for i in 0..100 {
                    let v = format!("v{t}-{i}");
                    insert(&writer, v.clone()).await.unwrap();
                    let found: Option<String> = reads
                        .run(|c| {
                            let mut stmt = c.prepare_cached("SELECT v FROM t WHERE v = ?1")?;
                            let mut rows = stmt.query([&v])?;
                            rows.next()?.map(|r| r.get(0)).transpose()
                        })
                        .unwrap();
                    assert_eq!(found.as_deref(), Some(v.as_str()), "committed, so readable");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(db.values().len(), 800);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land_in_fewer_commits() {
        let db = TempDb::new();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..300 {
            let writer = writer.clone();
            tasks.spawn(async move { insert(&writer, format!("v{i}")).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().expect("every write commits");
        }
        // Answered means durable: another connection sees every row.
        assert_eq!(db.values().len(), 300);
        let commits = writer.shared.committed.borrow().upto;
        assert!(
            commits < 300,
            "transactions that queued up shared commits: {commits} commits"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_body_rolls_back_alone() {
        let db = TempDb::new();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        insert(&writer, "taken".into()).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let writer = writer.clone();
            tasks.spawn(async move {
                let mut tx = writer.begin(Lane::Urgent).await?;
                match i % 3 {
                    // Writes, then gives up: nothing of it may remain.
                    0 => {
                        tx.run(|c| {
                            c.execute("INSERT INTO t (v) VALUES (?1)", [format!("gone{i}")])
                        })?;
                        return Err(StoreError::Corrupt("the body failed".into()));
                    }
                    // A statement fails (UNIQUE) after an insert that must not survive.
                    1 => {
                        tx.run(|c| {
                            c.execute("INSERT INTO t (v) VALUES (?1)", [format!("gone{i}")])
                        })?;
                        tx.run(|c| c.execute("INSERT INTO t (v) VALUES ('taken')", []))?;
                    }
                    _ => {
                        tx.run(|c| {
                            c.execute("INSERT INTO t (v) VALUES (?1)", [format!("kept{i}")])
                        })?;
                    }
                }
                tx.commit().await
            });
        }
        let mut ok = 0;
        while let Some(done) = tasks.join_next().await {
            ok += usize::from(done.unwrap().is_ok());
        }
        assert_eq!(ok, 20);
        let values = db.values();
        assert_eq!(values.len(), 21, "{values:?}");
        assert!(values.iter().all(|v| v == "taken" || v.starts_with("kept")));
    }

    /// A body whose savepoint journal outgrows `SAVEPOINT_JOURNAL_IN_MEMORY` (SQLite moves
    /// it to a temporary file) still rolls back alone when it fails, and the body beside it
    /// in the batch commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_body_larger_than_the_journal_in_memory_rolls_back_alone() {
        let db = TempDb::new();
        // ~2.5 MB of rows: rewriting every one journals more than 1 MiB of pages.
        rusqlite::Connection::open(&db.0)
            .unwrap()
            .execute_batch(
                "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000) \
                 INSERT INTO t (v) SELECT x || '-' || hex(randomblob(400)) FROM n",
            )
            .unwrap();
        let before = db.values();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        let large = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut tx = writer.begin(Lane::Urgent).await?;
                let changed = tx.run(|c| c.execute("UPDATE t SET v = v || 'x'", []))?;
                assert_eq!(changed, 3000);
                Err::<(), _>(StoreError::Corrupt("the body failed".into()))
            })
        };
        let small = {
            let writer = writer.clone();
            tokio::spawn(async move { insert(&writer, "kept".into()).await })
        };
        assert!(large.await.unwrap().is_err());
        small.await.unwrap().unwrap();
        let mut after = db.values();
        assert_eq!(after.pop().as_deref(), Some("kept"));
        assert_eq!(after, before, "the large body left nothing behind");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_callers_leave_no_one_waiting() {
        let db = TempDb::new();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        let mut kept = Vec::new();
        for i in 0..200 {
            let writer = writer.clone();
            let task = tokio::spawn(async move { insert(&writer, format!("v{i}")).await });
            if i % 3 == 0 {
                task.abort();
            } else {
                kept.push(task);
            }
        }
        let all = async {
            for task in kept {
                task.await.unwrap().expect("committed");
            }
        };
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("no caller is left waiting for a commit");
        let values = db.values();
        assert!(values.len() >= 133, "{} rows", values.len());
        // A new write after all that still works and lands.
        insert(&writer, "after".into()).await.unwrap();
        assert!(db.values().contains(&"after".to_owned()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_for_another_process_holding_the_write_lock() {
        let db = TempDb::new();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        let other = rusqlite::Connection::open(&db.0).unwrap();
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('other');")
            .unwrap();
        let task = {
            let writer = writer.clone();
            tokio::spawn(async move { insert(&writer, "ours".into()).await })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!task.is_finished(), "cannot write while the lock is held");
        other.execute_batch("COMMIT").unwrap();
        task.await.unwrap().expect("written once the lock is free");
        assert_eq!(db.values(), ["other", "ours"]);
    }

    #[test]
    fn opening_bounds_what_sqlite_keeps_in_memory() {
        let db = TempDb::new();
        let _writer = Writer::open(&db.0).unwrap();
        // SAFETY: a negative argument only reads the process-wide limit.
        let limit = unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(-1) };
        assert_eq!(limit, SOFT_HEAP_LIMIT);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_shrinks_back_after_a_burst() {
        let db = TempDb::new();
        let writer = Writer::open(&db.0).unwrap();
        let wal = || {
            std::fs::metadata(format!("{}-wal", db.0.display()))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        // One transaction larger than the limit: the log must hold all of it.
        {
            let mut tx = writer.begin(Lane::Urgent).await.unwrap();
            let chunk = "x".repeat(1024 * 1024);
            for i in 0..80 {
                tx.run(|c| c.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i}{chunk}")]))
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
        assert!(wal() > WAL_SIZE_LIMIT, "the burst went through the log");
        // Once writes pause, the checkpointer copies it into the database and cuts the file.
        let deadline = Instant::now() + Duration::from_secs(10);
        while wal() > WAL_SIZE_LIMIT && Instant::now() < deadline {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
        }
        assert!(wal() <= WAL_SIZE_LIMIT, "log still {} bytes", wal());
        // Nothing was lost on the way, and writing goes on.
        insert(&writer, "after".into()).await.unwrap();
        assert_eq!(db.values().len(), 81);
    }

    #[tokio::test]
    async fn the_database_file_syncs_through_sqlites_own_handle() {
        let db = TempDb::new();
        let writer = Writer::open(&db.0).unwrap();
        insert(&writer, "kept".into()).await.unwrap();
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        // Copies the committed row into the database file, which the sync then flushes.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .unwrap();
        assert_eq!(sync_database_file(&conn), Ok(()));
        // The sync leaves the connection and the writer as they were.
        conn.query_row("SELECT COUNT(*) FROM t", [], |_| Ok(()))
            .unwrap();
        insert(&writer, "after".into()).await.unwrap();
        assert_eq!(db.values(), ["kept", "after"]);
    }

    /// Writes that never pause: the log is started over again and again instead of growing
    /// by every commit (it grew by ~20 MB a second at 100 missed calls/s).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_starts_over_under_steady_writes() {
        let db = TempDb::new();
        let writer = Arc::new(Writer::open(&db.0).unwrap());
        let wal = || {
            std::fs::metadata(format!("{}-wal", db.0.display()))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let text = "x".repeat(300);
        let stop = Instant::now() + Duration::from_secs(3);
        let (mut rows, mut commits_before, mut largest) = (0, 0, 0);
        while Instant::now() < stop {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let (writer, v) = (writer.clone(), format!("{rows}{text}"));
                rows += 1;
                tasks.spawn(async move { insert(&writer, v).await });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap().unwrap();
            }
            largest = largest.max(wal());
            commits_before = writer.shared.committed.borrow().upto;
            // A steady pace, as a busy server's, rather than as fast as the disk goes.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A lower bound: each commit appends at least a table page and an index page (in
        // practice more than twice that). Growing by every commit, the file would exceed it.
        let appended = commits_before * 2 * 4096;
        assert!(
            appended > 8 << 20,
            "only {appended} bytes appended; the test needs more"
        );
        assert!(
            largest < appended,
            "the log reached {largest} bytes with {appended} or more appended"
        );
        assert_eq!(db.values().len(), rows);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_is_a_clear_error_and_corrupts_nothing() {
        let db = TempDb::new();
        let writer = Writer::open(&db.0).unwrap();
        insert(&writer, "before".into()).await.unwrap();
        // SQLite's own page limit fails a write exactly as a full disk does (SQLITE_FULL).
        {
            let state = writer.shared.state.lock().await;
            let pages: i64 = state
                .conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap();
            state
                .conn
                .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
                .unwrap();
        }
        let big = "x".repeat(64 * 1024);
        let err = insert(&writer, big.clone()).await.unwrap_err().to_string();
        assert!(err.contains("full"), "says why: {err}");
        assert_eq!(db.values(), ["before"], "nothing half-written");
        let check: String = rusqlite::Connection::open(&db.0)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // Room again: writing resumes.
        writer
            .shared
            .state
            .lock()
            .await
            .conn
            .execute_batch("PRAGMA max_page_count = 1073741823")
            .unwrap();
        insert(&writer, big).await.unwrap();
        assert_eq!(db.values().len(), 2);
    }
}
