//! The durable job queue. A job is enqueued inside the transaction of the fact that caused
//! it, claimed with a lease (an expired lease is claimed again), deleted when done, retried
//! later with backoff on failure, and parked as `dead` after its last attempt.

use std::time::Duration;

use crate::sqlite_writer::Lane;
use crate::{Db, Result, Store, StoreError, in_write_tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Start the runs of the workflows a trigger event matches (subject: event id).
    Trigger,
    /// Run a workflow run from where it stands (subject: run id).
    AdvanceRun,
    /// Send one outbound message through its carrier (subject: message id).
    SendMessage,
    /// A task's due time: fires `task_overdue` if it is still open (subject: task id).
    TaskDue,
    /// Deliver one outbound webhook (subject: delivery id).
    Webhook,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Trigger => "trigger",
            JobKind::AdvanceRun => "advance_run",
            JobKind::SendMessage => "send_message",
            JobKind::TaskDue => "task_due",
            JobKind::Webhook => "webhook",
        }
    }

    fn parse(s: &str) -> Result<JobKind> {
        match s {
            "trigger" => Ok(JobKind::Trigger),
            "advance_run" => Ok(JobKind::AdvanceRun),
            "send_message" => Ok(JobKind::SendMessage),
            "task_due" => Ok(JobKind::TaskDue),
            "webhook" => Ok(JobKind::Webhook),
            other => Err(StoreError::Corrupt(format!("unknown job kind {other:?}"))),
        }
    }

    /// The unique key of the one job of this kind about `subject` (a message's send, a
    /// task's due time, a delivery), which keeps it from being queued twice.
    pub(crate) fn key(self, subject: i64) -> String {
        format!("{}:{subject}", self.as_str())
    }

    pub fn max_attempts(self) -> i64 {
        match self {
            JobKind::Trigger | JobKind::AdvanceRun | JobKind::TaskDue => 10,
            JobKind::SendMessage => 8,
            // Receivers can be down for days: see `retry_delay_for`.
            JobKind::Webhook => 25,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub subject_id: i64,
    /// Attempts including the current one.
    pub attempts: i64,
    pub max_attempts: i64,
    /// For a send the step that queued it runs at once: its message, already marked
    /// `submitting` in the step's transaction (as `Store::begin_send` would), so the
    /// sender need not read and mark it again. None for a job claimed from the queue.
    pub ready: Option<Box<crate::OutboundMessage>>,
}

impl Job {
    /// A job just inserted already claimed (`enqueue_claimed!`): its first attempt.
    pub(crate) fn claimed(id: i64, kind: JobKind, subject_id: i64) -> Job {
        Job {
            id,
            kind,
            subject_id,
            attempts: 1,
            max_attempts: kind.max_attempts(),
            ready: None,
        }
    }
}

/// The backoff for a job kind: webhooks back off from 30 s up to 6 hours (25 attempts
/// span two to three days); everything else uses `retry_delay`.
pub fn retry_delay_for(kind: JobKind, attempts: i64) -> Duration {
    match kind {
        JobKind::Webhook => {
            let exp = attempts.clamp(1, 20) as u32 - 1;
            let base_ms = 30_000u64
                .saturating_mul(1u64 << exp.min(20))
                .min(6 * 3600 * 1000);
            Duration::from_millis(base_ms / 2 + fastrand::u64(0..=base_ms / 2))
        }
        _ => retry_delay(attempts),
    }
}

/// Exponential backoff with jitter: about 1 s, 2 s, 4 s … capped at 5 minutes, each drawn
/// from the upper half of its window so retries from many jobs spread out.
pub fn retry_delay(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) as u32 - 1;
    let base_ms = 1000u64.saturating_mul(1u64 << exp.min(16)).min(300_000);
    let jitter = fastrand::u64(0..=base_ms / 2);
    Duration::from_millis(base_ms / 2 + jitter)
}

/// Enqueues a job on an open transaction; a job whose unique key is already queued is
/// not added twice. Evaluates to the new job's id, if one was inserted.
macro_rules! enqueue {
    ($tx:expr, $kind:expr, $subject:expr, $unique_key:expr, $run_at:expr, $now:expr) => {{
        let kind: $crate::JobKind = $kind;
        let unique_key: Option<String> = $unique_key;
        let id: Option<i64> = crate::sql::query_scalar(
            "INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (unique_key) DO NOTHING RETURNING id",
        )
        .bind(kind.as_str())
        .bind($subject)
        .bind(unique_key)
        .bind($run_at)
        .bind(kind.max_attempts())
        .bind($now)
        .fetch_optional(&mut *$tx)
        .await?;
        id
    }};
}

/// Enqueues a job already claimed under `$claim`, for a worker that will run it at once:
/// no separate claim round. Evaluates to the claimed `Job`, if one was inserted.
macro_rules! enqueue_claimed {
    ($tx:expr, $kind:expr, $subject:expr, $unique_key:expr, $now:expr, $claim:expr) => {{
        let kind: $crate::JobKind = $kind;
        let subject: i64 = $subject;
        let unique_key: Option<String> = $unique_key;
        let claim: &$crate::Claim = $claim;
        let id: Option<i64> = $crate::sql::query_scalar(
            "INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at, \
             locked_until, locked_by, attempts) \
             VALUES ($1, $2, $3, $4, $5, $4, $6, $7, 1) ON CONFLICT (unique_key) DO NOTHING RETURNING id",
        )
        .bind(kind.as_str())
        .bind(subject)
        .bind(unique_key)
        .bind($now)
        .bind(kind.max_attempts())
        .bind(claim.until_ms)
        .bind(claim.worker)
        .fetch_optional(&mut *$tx)
        .await?;
        id.map(|id| $crate::Job::claimed(id, kind, subject))
    }};
}

/// Enqueues a job whose id nobody needs, as `enqueue!` does: on PostgreSQL with the
/// transaction's other such jobs in one statement before it commits (`PgTx`); on SQLite at
/// once, where a statement costs no round trip.
macro_rules! enqueue_later {
    ($tx:expr, $kind:expr, $subject:expr, $unique_key:expr, $run_at:expr, $now:expr) => {{
        let kind: $crate::JobKind = $kind;
        let subject_id: i64 = $subject;
        let unique_key: Option<String> = $unique_key;
        let run_at: i64 = $run_at;
        let now: i64 = $now;
        match &mut *$tx {
            $crate::sql::WriteTx::Postgres(pg) => pg.later_jobs.push($crate::sql::LaterJob {
                kind: kind.as_str(),
                subject_id,
                unique_key,
                run_at,
                max_attempts: kind.max_attempts(),
                created_at: now,
            }),
            _ => {
                let _queued =
                    $crate::jobs::enqueue!($tx, kind, subject_id, unique_key, run_at, now);
            }
        }
    }};
}

pub(crate) use {enqueue, enqueue_claimed, enqueue_later};

/// Who will run the follow-on jobs a step creates, and until when they are theirs.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub worker: &'a str,
    pub until_ms: i64,
}

impl Store {
    /// Enqueues a job on its own (work not caused by another write); returns false when a
    /// job with the same unique key is already queued.
    pub async fn enqueue_job(
        &self,
        kind: JobKind,
        subject_id: i64,
        unique_key: Option<&str>,
        run_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let added = in_write_tx!(self, tx => {
            enqueue!(tx, kind, subject_id, unique_key.map(str::to_owned), run_at_ms, now_ms).is_some()
        });
        if added {
            self.wake_workers();
        }
        Ok(added)
    }

    /// Claims up to `limit` due jobs for `lease`, in one statement committed on its own.
    /// PostgreSQL skips rows another instance holds; SQLite serialises writers, so the
    /// IMMEDIATE transaction is enough.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        now_ms: i64,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Job>> {
        let until = now_ms + lease.as_millis() as i64;
        let skip_locked = match self.db {
            Db::Sqlite(_) => "",
            Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET locked_until = $1, locked_by = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $3 \
               AND (locked_until IS NULL OR locked_until <= $3) ORDER BY run_at, id LIMIT $4{skip_locked}) \
             RETURNING id, kind, subject_id, attempts, max_attempts"
        );
        let rows = crate::sql::query(sql)
            .bind(until)
            .bind(worker)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(self.db.alone(Lane::Background))
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for r in rows {
            jobs.push(Job {
                id: r.try_get("id")?,
                kind: JobKind::parse(r.try_get::<&str, _>("kind")?)?,
                subject_id: r.try_get("subject_id")?,
                attempts: r.try_get("attempts")?,
                max_attempts: r.try_get("max_attempts")?,
                ready: None,
            });
        }
        Ok(jobs)
    }

    pub async fn complete_job(&self, job_id: i64) -> Result<()> {
        crate::sql::query("DELETE FROM jobs WHERE id = $1")
            .bind(job_id)
            .execute(self.db.alone(Lane::Background))
            .await?;
        Ok(())
    }

    /// Schedules another attempt at `run_at_ms`, or parks the job as dead after its last.
    pub async fn retry_job(&self, job: &Job, error: &str, run_at_ms: i64) -> Result<bool> {
        let dead = job.attempts >= job.max_attempts;
        let status = if dead { "dead" } else { "queued" };
        crate::sql::query(
            "UPDATE jobs SET status = $1, run_at = $2, locked_until = NULL, locked_by = NULL, \
             last_error = $3 WHERE id = $4",
        )
        .bind(status)
        .bind(run_at_ms)
        .bind(error)
        .bind(job.id)
        .execute(self.db.alone(Lane::Background))
        .await?;
        if !dead {
            self.wake_workers();
        }
        Ok(!dead)
    }

    /// When the next job may be claimed, so an idle worker knows how long to sleep; it reads
    /// a handful of index entries however many jobs wait
    /// (`next_due_reads_a_handful_of_rows_however_many_jobs_wait`).
    pub async fn next_job_due(&self) -> Result<Option<i64>> {
        crate::on_pool!(self, pool => {
            let v: Option<i64> = crate::sql::query_scalar(NEXT_DUE)
            .fetch_one(pool)
            .await?;
            Ok(v)
        })
    }

    /// Jobs due now and the age of the oldest one (ms), for `/metrics`.
    pub async fn queue_stats(&self, now_ms: i64) -> Result<(i64, i64)> {
        crate::on_pool!(self, pool => {
            let r = crate::sql::query("SELECT COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs WHERE status = 'queued' AND run_at <= $1")
                .bind(now_ms)
                .fetch_one(pool)
                .await?;
            let n: i64 = r.try_get("n")?;
            let oldest: Option<i64> = r.try_get("oldest")?;
            Ok((n, oldest.map(|t| (now_ms - t).max(0)).unwrap_or(0)))
        })
    }

    /// Jobs by state, for diagnostics and tests: (queued, dead).
    pub async fn job_counts(&self) -> Result<(i64, i64)> {
        crate::on_pool!(self, pool => {
            let q: i64 = crate::sql::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
                .fetch_one(pool).await?;
            let d: i64 = crate::sql::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'dead'")
                .fetch_one(pool).await?;
            Ok((q, d))
        })
    }
}

/// The earliest unleased waiting job (the first entry of `jobs_due` that is not leased:
/// leased jobs are the few in flight), and the earliest lease of a waiting job to run out
/// (`jobs_leased`).
const NEXT_DUE: &str = "SELECT MIN(t) FROM (\
     SELECT run_at AS t FROM (SELECT run_at FROM jobs \
       WHERE status = 'queued' AND locked_until IS NULL ORDER BY run_at LIMIT 1) unleased \
     UNION ALL \
     SELECT CASE WHEN locked_until > run_at THEN locked_until ELSE run_at END FROM jobs \
       WHERE status = 'queued' AND locked_until IS NOT NULL) due";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_files::{migrated_store as temp_store, remove_db};

    /// Each idle worker woken runs a claim transaction: waking all of them for one job
    /// made four write transactions per missed call where one claims it.
    #[tokio::test]
    async fn a_job_enqueued_wakes_one_idle_worker() {
        use std::task::{Context, Waker};
        let (store, path) = temp_store("wake").await;
        let signal = store.work_signal();
        let mut idle: Vec<_> = (0..3).map(|_| Box::pin(signal.notified())).collect();
        for w in &mut idle {
            w.as_mut().enable();
        }
        // Polls each idle worker's wait once; those woken leave the list.
        let woken = |idle: &mut Vec<std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>>>| {
            let mut cx = Context::from_waker(Waker::noop());
            let before = idle.len();
            idle.retain_mut(|w| w.as_mut().poll(&mut cx).is_pending());
            before - idle.len()
        };
        store
            .enqueue_job(JobKind::SendMessage, 1, None, 0, 0)
            .await
            .unwrap();
        assert_eq!(woken(&mut idle), 1, "one job, one worker");
        store
            .enqueue_job(JobKind::SendMessage, 2, None, 0, 0)
            .await
            .unwrap();
        assert_eq!(woken(&mut idle), 1, "the next job, the next worker");
        drop(idle);
        drop(store);
        remove_db(&path);
    }

    /// Follow-ups waiting for days are waiting jobs; an idle worker asks for the next due
    /// time after every empty claim, so the answer must not read them all.
    #[tokio::test]
    async fn next_due_reads_a_handful_of_rows_however_many_jobs_wait() {
        let (store, path) = temp_store("next-due").await;
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
             INSERT INTO jobs (kind, subject_id, run_at, max_attempts, created_at) \
             SELECT 'advance_run', i, 1000000 + i, 5, 0 FROM n; \
             INSERT INTO jobs (kind, subject_id, run_at, max_attempts, created_at, locked_until, locked_by) \
             VALUES ('send_message', 1, 10, 5, 0, 900000, 'w'), ('send_message', 2, 20, 5, 0, 60, 'w');",
        )
        .unwrap();
        let mut stmt = conn.prepare(NEXT_DUE).unwrap();
        let due: Option<i64> = stmt.query_row([], |r| r.get(0)).unwrap();
        assert_eq!(due, Some(60), "the lease that runs out first");
        let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
        assert!(steps < 200, "{steps} VM steps for 5,002 waiting jobs");
        conn.execute("DELETE FROM jobs WHERE locked_until IS NOT NULL", [])
            .unwrap();
        let due: Option<i64> = conn.query_row(NEXT_DUE, [], |r| r.get(0)).unwrap();
        assert_eq!(due, Some(1_000_001), "the earliest waiting job");
        drop(stmt);
        drop(conn);
        drop(store);
        remove_db(&path);
    }

    #[test]
    fn webhooks_are_retried_for_days() {
        let total_min: u64 = (1..=JobKind::Webhook.max_attempts())
            .map(|a| {
                let exp = (a.clamp(1, 20) - 1) as u32;
                30_000u64
                    .saturating_mul(1 << exp.min(20))
                    .min(6 * 3600 * 1000)
                    / 2
            })
            .sum();
        assert!(
            total_min > 2 * 24 * 3600 * 1000,
            "at least two days: {total_min} ms"
        );
        assert!(retry_delay_for(JobKind::Webhook, 20) <= Duration::from_secs(6 * 3600));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            let d = retry_delay(attempt).as_millis() as u64;
            let base = 1000u64
                .saturating_mul(1 << (attempt.clamp(1, 20) - 1).min(16))
                .min(300_000);
            assert!(d >= base / 2 && d <= base, "attempt {attempt}: {d}");
        }
        assert!(retry_delay(40) <= Duration::from_secs(300));
    }
}
