//! SQLite reads by key, run on the calling thread.
//!
//! sqlx's SQLite driver runs each statement on a thread of its own and hands the rows back:
//! two thread wake-ups per read, far more than the read itself costs when it fetches one row
//! by its key. The pipeline's reads by key (a number's route, the message to send, the
//! run's contact) run here instead, inline like the writer's statements. Anything that may
//! scan many rows stays on sqlx's pool, so it never holds up the async runtime.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::Result;

/// Connections kept open for reuse, one per runtime thread on a small server; more are
/// opened while more threads read at once.
const KEEP: usize = 2;

pub(crate) struct PointReads {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl PointReads {
    pub(crate) fn new(path: &Path) -> PointReads {
        PointReads {
            path: path.to_owned(),
            idle: Mutex::new(Vec::with_capacity(KEEP)),
        }
    }

    /// Runs `f` on an idle connection (or a new one). Each statement reads the latest
    /// committed data: it takes its snapshot when it starts and drops it when reset.
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> std::result::Result<T, rusqlite::Error>,
    ) -> Result<T> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let out = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEEP
        {
            idle.push(conn);
        }
        Ok(out?)
    }

    fn open(&self) -> Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A reader waits only while another process recovers the log, which is rare and short.
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(32);
        // A read by key touches a handful of pages; the operating system caches the file.
        conn.execute_batch("PRAGMA cache_size = -1024")?;
        Ok(conn)
    }
}
