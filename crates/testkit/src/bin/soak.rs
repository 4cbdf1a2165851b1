//! Soak: missed calls at a steady rate for a long time, through the whole pipeline as in
//! `pipeline-bench`, reporting every interval the process's resident set (and how much of
//! it malloc has handed out, and how much SQLite holds), the size of SQLite's write-ahead
//! log, the job queue's depth and the webhook latency of that interval, so a leak or a
//! growing backlog shows.
//! Ends by waiting for the last texts and fails unless every call was texted exactly once.
//!
//!     cargo run --release -p textback-testkit --bin soak -- [SECONDS] [RATE] [REPORT_EVERY_SECONDS]
//!
//! The stand-in hands its texts over as they arrive and the load generator keeps one bit
//! per call, so the memory that grows is the server's.

use std::time::{Duration, Instant};

use textback_testkit::bench::{caller, caller_index, heap_in_use_kib, percentile, rss_kib};
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE};
use tokio::task::JoinSet;

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(3600);
    let rate = args.get(1).copied().unwrap_or(100).max(1);
    let every = Duration::from_secs(args.get(2).copied().unwrap_or(60).max(1));
    let calls = (seconds * rate) as usize;

    let (db, fake, app) = textback_testkit::bench::start(4).await;
    app.seed_account(MESSAGE).await;
    let app = std::sync::Arc::new(app);
    println!(
        "soak: {calls} missed calls at {rate}/s for {seconds} s, {} store",
        app.store.backend()
    );
    println!(
        "elapsed_s calls texts duplicates queued oldest_queued_ms rss_mib heap_mib sqlite_mib wal_mib webhook_p50_ms webhook_p99_ms"
    );

    let wal = db
        .as_ref()
        .and_then(|db| db.url.strip_prefix("sqlite:"))
        .map(|path| format!("{path}-wal"));
    let wal_mib = || {
        wal.as_ref()
            .and_then(|w| std::fs::metadata(w).ok())
            .map_or(0.0, |m| m.len() as f64 / 1024.0 / 1024.0)
    };
    let mut texted = vec![0u8; calls];
    let mut texts = 0usize;
    let mut duplicates = 0usize;
    let mut strays = 0usize;
    let mut window: Vec<Duration> = Vec::new();
    let mut refused = 0usize;
    let started = Instant::now();
    let mut next_report = started + every;
    let mut set = JoinSet::new();
    let mut next = 0usize;
    let mut tally = |fake: &textback_testkit::FakeTwilio, texted: &mut Vec<u8>| {
        for m in fake.take_sent() {
            texts += 1;
            match caller_index(&m.to).and_then(|i| texted.get_mut(i)) {
                Some(seen) if *seen > 0 => duplicates += 1,
                Some(seen) => *seen = 1,
                None => strays += 1,
            }
        }
        (texts, duplicates, strays)
    };
    while next < calls || !set.is_empty() {
        let due = started + Duration::from_secs_f64(next as f64 / rate as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()), if next < calls && set.len() < 256 => {
                let app = app.clone();
                let from = caller(next);
                set.spawn(async move {
                    let sid = format!("CA{:032x}", fastrand::u128(..));
                    let t = Instant::now();
                    let (status, _) = app.dial_result(&sid, &from, BUSINESS_NUMBER, "no-answer").await;
                    (status, t.elapsed())
                });
                next += 1;
            }
            Some(done) = set.join_next(), if !set.is_empty() => {
                let (status, latency) = done.expect("task");
                if status != 200 {
                    refused += 1;
                }
                window.push(latency);
            }
        }
        if Instant::now() >= next_report {
            next_report += every;
            let (texts, duplicates, _) = tally(&fake, &mut texted);
            let (queued, oldest) = app
                .store
                .queue_stats(jiff::Timestamp::now().as_millisecond())
                .await
                .unwrap_or((-1, -1));
            window.sort();
            println!(
                "{:>9.0} {next:>5} {texts:>5} {duplicates:>10} {queued:>6} {oldest:>16} {:>7.1} {:>8.1} {:>10.1} {:>7.1} {:>14.2} {:>14.2}",
                started.elapsed().as_secs_f64(),
                rss_kib().unwrap_or(0) as f64 / 1024.0,
                heap_in_use_kib().unwrap_or(0) as f64 / 1024.0,
                app.store.sqlite_memory_bytes().unwrap_or(0) as f64 / 1024.0 / 1024.0,
                wal_mib(),
                percentile(&window, 0.50).as_secs_f64() * 1000.0,
                percentile(&window, 0.99).as_secs_f64() * 1000.0,
            );
            window.clear();
        }
    }
    let wait_until = Instant::now() + Duration::from_secs(120);
    let (mut texts, mut duplicates, mut strays) = tally(&fake, &mut texted);
    while texts < calls && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (texts, duplicates, strays) = tally(&fake, &mut texted);
    }
    let missing = texted.iter().filter(|&&t| t == 0).count();
    println!(
        "done after {:.0} s: {calls} calls, {texts} texts, {missing} callers never texted, {duplicates} texted twice, {strays} texts to unknown numbers, {refused} webhooks refused",
        started.elapsed().as_secs_f64()
    );
    textback_testkit::bench::stop(db, fake, app).await;
    if missing > 0 || duplicates > 0 || strays > 0 || refused > 0 {
        eprintln!("FAILED: every call must be texted exactly once");
        std::process::exit(1);
    }
}
