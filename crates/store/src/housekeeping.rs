//! Periodic clean-up of what expires: browser sessions past their end, and API idempotency
//! keys past the window in which a retry is answered from them. With several instances on
//! one PostgreSQL, one runs it at a time (a transaction-scoped advisory lock; the others
//! skip that round).

use crate::{Db, Result, Store, in_write_tx};

/// How long an `Idempotency-Key` answers retries with the first answer.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// A key still marked "in progress" this long after it was taken belongs to a request that
/// never finished (its instance died): it is freed so the client's retry can run.
pub const STALE_RESERVATION_MS: i64 = 5 * 60 * 1000;
/// Advisory lock key for housekeeping (migrations use 727384).
const LOCK_KEY: i64 = 727_385;

/// What one round removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub idempotency_keys: u64,
}

impl Store {
    /// One round of clean-up; `None` when another instance is doing it right now.
    pub async fn housekeep(&self, now_ms: i64) -> Result<Option<Swept>> {
        let locking = matches!(self.db, Db::Postgres(_));
        Ok(in_write_tx!(background self, tx => {
            let ours: bool = if locking {
                crate::sql::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(LOCK_KEY)
                    .fetch_one(&mut *tx)
                    .await?
            } else {
                true
            };
            if ours {
                let sessions = crate::sql::query("DELETE FROM sessions WHERE expires_at <= $1")
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let idempotency_keys = crate::sql::query(
                    "DELETE FROM idempotency_keys WHERE created_at < $1 OR (status = 0 AND created_at < $2)",
                )
                .bind(now_ms - IDEMPOTENCY_WINDOW_MS)
                .bind(now_ms - STALE_RESERVATION_MS)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                Some(Swept { sessions, idempotency_keys })
            } else {
                None
            }
        }))
    }
}
