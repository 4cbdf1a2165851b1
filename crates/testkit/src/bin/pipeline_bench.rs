//! Pipeline benchmark: signed missed-call webhooks into the real server, through SQLite (or
//! the database in DATABASE_URL) and the workers, out to the local Twilio stand-in. Counts
//! every text and checks each caller got exactly one.
//!
//!     cargo run --release -p textback-testkit --bin pipeline-bench -- [CALLS] [CONCURRENCY] [WORKERS] [RATE] [--recommended]
//!
//! RATE (calls per second) paces the calls open-loop for latency figures; 0 or absent
//! sends as fast as CONCURRENCY allows, for throughput. `--recommended` runs the account
//! as setup and the quick start leave it (the recommended workflow: text back, callback
//! task, tag, and a follow-up 30 minutes later, which a run this short never reaches)
//! instead of the built-in text back alone.
//!
//! The load generator, the stand-in and the server share this one process and its two
//! cores, so the figures are a floor for the server alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use textback_testkit::bench::{caller, percentile, rss_high_water_kib};
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE};
use tokio::task::JoinSet;

/// The allocator `textback serve` uses (with mimalloc's default options, which keep more
/// memory resident than serve's: this process's peak is not the RSS bar's figure).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // On a runtime thread, not the main one: the generator is woken by every webhook
    // answered and every text the stand-in takes, and a third thread woken ~15,000 times a
    // second took the CPU from the two runtime threads (14.5% of their context switches
    // were preemptions by it).
    let ok = tokio::spawn(run()).await.expect("the benchmark task");
    if !ok {
        eprintln!("FAILED: every call must be texted exactly once");
        std::process::exit(1);
    }
}

/// Runs the benchmark; true if every call was texted exactly once.
async fn run() -> bool {
    let mut args: Vec<usize> = Vec::new();
    let mut recommended = false;
    for arg in std::env::args().skip(1) {
        match (arg.as_str(), arg.parse()) {
            (_, Ok(n)) => args.push(n),
            ("--recommended", _) => recommended = true,
            _ => {
                eprintln!(
                    "pipeline-bench: {arg:?} is not a count; usage: pipeline-bench [CALLS] [CONCURRENCY] [WORKERS] [RATE] [--recommended]"
                );
                std::process::exit(2);
            }
        }
    }
    let calls = args.first().copied().unwrap_or(5_000);
    let concurrency = args.get(1).copied().unwrap_or(64);
    let workers = args.get(2).copied().unwrap_or(4);
    let rate = args.get(3).copied().unwrap_or(0);

    let (db, fake, app) = textback_testkit::bench::start(workers).await;
    if recommended {
        app.seed_recommended(MESSAGE).await;
    } else {
        app.seed_account(MESSAGE).await;
    }
    let app = std::sync::Arc::new(app);

    println!(
        "pipeline-bench: {calls} missed calls, {concurrency} in flight, {workers} workers, {}, {} store, {}",
        if rate == 0 {
            "unpaced".to_owned()
        } else {
            format!("paced at {rate}/s")
        },
        app.store.backend(),
        if recommended {
            "the recommended workflow"
        } else {
            "the built-in text back"
        }
    );
    let started = Instant::now();
    let mut set = JoinSet::new();
    // When each caller's missed-call webhook left the generator: the carrier's "this call was
    // missed", from which the bar counts until our text request reaches the carrier. (From the
    // webhook's answer instead, a text that reached the carrier before the answer reached
    // the generator counted as 0.)
    let mut missed_at: HashMap<String, Instant> = HashMap::with_capacity(calls);
    let mut webhook_latency = Vec::with_capacity(calls);
    let mut next = 0;
    while next < calls || !set.is_empty() {
        while next < calls && set.len() < concurrency {
            if rate > 0 {
                let due = started + Duration::from_secs_f64(next as f64 / rate as f64);
                if due > Instant::now() {
                    if set.is_empty() {
                        tokio::time::sleep_until(due.into()).await;
                    } else {
                        break;
                    }
                }
            }
            let app = app.clone();
            let from = caller(next);
            set.spawn(async move {
                let sid = format!("CA{:032x}", fastrand::u128(..));
                let t = Instant::now();
                let (status, _) = app
                    .dial_result(&sid, &from, BUSINESS_NUMBER, "no-answer")
                    .await;
                assert_eq!(status, 200, "webhook refused");
                (from, t, Instant::now())
            });
            next += 1;
        }
        let next_due = (rate > 0 && next < calls)
            .then(|| started + Duration::from_secs_f64(next as f64 / rate as f64));
        let joined = match next_due {
            Some(due) => tokio::select! {
                j = set.join_next() => j,
                _ = tokio::time::sleep_until(due.into()) => continue,
            },
            None => set.join_next().await,
        };
        if let Some(done) = joined {
            let (from, sent, replied) = done.expect("task");
            webhook_latency.push(replied - sent);
            missed_at.insert(from, sent);
        }
    }
    let webhooks_done = started.elapsed();
    let sent = fake.wait_for_sent(calls, Duration::from_secs(600)).await;
    let all_done = started.elapsed();

    let mut per_caller: HashMap<&str, usize> = HashMap::new();
    for m in &sent {
        *per_caller.entry(m.to.as_str()).or_default() += 1;
    }
    let doubles = per_caller.values().filter(|&&n| n > 1).count();
    let mut to_carrier: Vec<Duration> = sent
        .iter()
        .filter_map(|m| {
            missed_at
                .get(&m.to)
                .map(|t| m.received_at.saturating_duration_since(*t))
        })
        .collect();
    webhook_latency.sort();
    to_carrier.sort();

    println!(
        "texts sent: {} for {calls} calls; callers texted more than once: {doubles}",
        sent.len()
    );
    println!(
        "webhooks: {:.0}/s ({webhooks_done:.2?} for all); latency p50 {:.2?} p99 {:.2?}",
        calls as f64 / webhooks_done.as_secs_f64(),
        percentile(&webhook_latency, 0.50),
        percentile(&webhook_latency, 0.99)
    );
    println!(
        "whole pipeline: {:.0} missed calls/s ({all_done:.2?} until the last text reached the carrier)",
        calls as f64 / all_done.as_secs_f64()
    );
    println!(
        "missed call (webhook sent) -> carrier request: p50 {:.2?} p99 {:.2?}",
        percentile(&to_carrier, 0.50),
        percentile(&to_carrier, 0.99)
    );
    if let Some(kib) = rss_high_water_kib() {
        println!(
            "peak resident set of the whole process (server + load + stand-in): {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    let ok = sent.len() == calls && doubles == 0;
    textback_testkit::bench::stop(db, fake, app).await;
    ok
}
