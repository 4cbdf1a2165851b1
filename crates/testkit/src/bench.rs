//! What the benchmark binaries share: percentiles, peak memory, distinct callers.

use std::time::Duration;

use crate::{Backend, FakeTwilio, TestApp, TestAppOptions, TestDb};

/// The `p` quantile (0–1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A valid NANP number per index (exchange 2xx–9xx), distinct per call so no cooldown
/// applies.
pub fn caller(i: usize) -> String {
    format!("+1512{:03}{:04}", 200 + i / 10_000, i % 10_000)
}

/// This process's peak resident set, in KiB (Linux).
pub fn rss_high_water_kib() -> Option<u64> {
    proc_status_kib("VmHWM:")
}

/// This process's resident set now, in KiB (Linux).
pub fn rss_kib() -> Option<u64> {
    proc_status_kib("VmRSS:")
}

/// Bytes glibc's malloc has handed out and not had back, in KiB: against the resident set,
/// it tells memory in use from memory freed but kept by the allocator. None where the C
/// library is not glibc (mallinfo2 is glibc's).
pub fn heap_in_use_kib() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let info = unsafe { libc::mallinfo2() };
        Some(((info.uordblks + info.hblkhd) / 1024) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The call index `caller` made a number from.
pub fn caller_index(phone: &str) -> Option<usize> {
    let digits = phone.strip_prefix("+1512")?;
    let exchange: usize = digits.get(..3)?.parse().ok()?;
    let line: usize = digits.get(3..)?.parse().ok()?;
    Some((exchange.checked_sub(200)?) * 10_000 + line)
}

/// The database in `DATABASE_URL`, or a fresh SQLite file (dropped by the caller), and the
/// real server started on it with `workers` worker loops, texting the local stand-in.
pub async fn start(workers: usize) -> (Option<TestDb>, FakeTwilio, TestApp) {
    let (db, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let db = TestDb::create(Backend::Sqlite).await.expect("temp sqlite");
            let url = db.url.clone();
            (Some(db), url)
        }
    };
    let fake = FakeTwilio::start().await;
    let app = TestApp::start(
        &url,
        TestAppOptions {
            workers,
            twilio: Some(fake.clone()),
            ..Default::default()
        },
    )
    .await;
    (db, fake, app)
}

/// Stops what `start` started and drops the temporary database.
pub async fn stop(db: Option<TestDb>, fake: FakeTwilio, app: std::sync::Arc<TestApp>) {
    match std::sync::Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => eprintln!("app still shared; not stopped cleanly"),
    }
    fake.stop();
    if let Some(db) = db {
        db.drop_db().await;
    }
}
