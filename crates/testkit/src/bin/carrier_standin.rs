//! The Twilio stand-in on its own, for load tests against `textback serve` running in
//! another process (with a load generator of your choice, e.g. `tools/loadgen.py`).
//!
//!     cargo run --release -p textback-testkit --bin carrier-standin -- [ADDR]
//!
//! Listens on ADDR (default 127.0.0.1:4010) with Twilio's Messages API, accepts every text,
//! and every second it received texts prints how many, to how many distinct numbers, how
//! many numbers were texted more than once, and how many texts repeated one already sent to
//! the same number word for word (a double text; a workflow's follow-up differs). Like Twilio it checks the credentials
//! (printed at start, the test suite's): point the server at it with
//! `TEXTBACK_TWILIO_API_BASE=http://ADDR` and those as TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use textback_testkit::FakeTwilio;
use textback_testkit::fake_twilio::{ACCOUNT_SID, AUTH_TOKEN};

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4010".to_owned());
    let fake = match FakeTwilio::start_on(&addr).await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "Twilio stand-in at {url}: set TEXTBACK_TWILIO_API_BASE={url} TWILIO_ACCOUNT_SID={ACCOUNT_SID} TWILIO_AUTH_TOKEN={AUTH_TOKEN}",
        url = fake.base_url
    );
    let mut seen: HashSet<String> = HashSet::new();
    let mut texts = 0usize;
    let mut twice = 0usize;
    // Each text as its number and a hash of its body: the bodies themselves would hold
    // ~100 bytes a text for the length of a soak.
    let mut sent: HashSet<(String, u64)> = HashSet::new();
    let mut repeated = 0usize;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let batch = fake.take_sent();
        if batch.is_empty() {
            continue;
        }
        for m in batch {
            first.get_or_insert(m.received_at);
            last = m.received_at;
            texts += 1;
            let mut body = DefaultHasher::new();
            m.body.hash(&mut body);
            if !sent.insert((m.to.clone(), body.finish())) {
                repeated += 1;
            }
            if !seen.insert(m.to) {
                twice += 1;
            }
        }
        let span = first
            .map(|f| last.duration_since(f).as_secs_f64())
            .unwrap_or(0.0);
        println!(
            "texts {texts}, distinct numbers {}, texted more than once {twice}, same text twice {repeated}, {:.0} texts/s from first to last",
            seen.len(),
            if span > 0.0 { texts as f64 / span } else { 0.0 }
        );
    }
    fake.stop();
}
