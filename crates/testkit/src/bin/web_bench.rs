//! Web UI benchmark: a business with a busy month (missed calls through the real webhooks,
//! texts back, replies, tasks), then each page requested by a signed-in owner over HTTP.
//! Reports latency per page and the process's peak memory.
//!
//!     cargo run --release -p textback-testkit --bin web-bench -- [CALLS] [REQUESTS] [CONCURRENCY]
//!
//! CALLS missed calls are played in (a third of the callers reply); each page is then
//! fetched REQUESTS times, CONCURRENCY at a time. The server, the carrier stand-in and this
//! client share the process and its two cores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use textback_server::web::{SESSION_COOKIE, password};
use textback_store::Role;
use textback_testkit::bench::{caller, percentile, rss_high_water_kib};
use textback_testkit::fake_twilio::ACCOUNT_SID;
use textback_testkit::test_app::{BUSINESS_NUMBER, MESSAGE};
use textback_testkit::{TestApp, TestAppOptions};
use tokio::task::JoinSet;

const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "benchmarking-all-day";

/// Plays `calls` missed calls (and replies from every third caller) through the webhooks.
async fn busy_month(app: &Arc<TestApp>, calls: usize) {
    let mut set = JoinSet::new();
    for i in 0..calls {
        while set.len() >= 32 {
            set.join_next().await;
        }
        let app = app.clone();
        set.spawn(async move {
            let from = caller(i);
            app.missed_call(&from, "no-answer").await;
            if i % 3 == 0 {
                let sid = format!("SM{:032x}", fastrand::u128(..));
                let body = format!("Hi, this is caller {i}: can you come Tuesday?");
                let fields = [
                    ("MessageSid", sid.as_str()),
                    ("AccountSid", ACCOUNT_SID),
                    ("From", from.as_str()),
                    ("To", BUSINESS_NUMBER),
                    ("Body", body.as_str()),
                ];
                app.post_signed("/webhooks/twilio/sms", &fields).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
    app.drain().await;
}

/// Signs in over HTTP; returns the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let form = http
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    let pre = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let html = form.text().await.expect("login html");
    let marker = "name=\"csrf\" value=\"";
    let csrf = html
        .find(marker)
        .map(|i| html[i + marker.len()..].split('"').next().unwrap_or(""))
        .expect("login form token")
        .to_owned();
    let resp = http
        .post(format!("{base}/login"))
        .header("cookie", pre)
        .form(&[("email", EMAIL), ("password", PASSWORD), ("csrf", &csrf)])
        .send()
        .await
        .expect("sign in");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(SESSION_COOKIE))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
        .expect("a session cookie")
}

struct PageFigures {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    bytes: usize,
}

async fn measure(
    http: &reqwest::Client,
    url: String,
    cookie: &str,
    requests: usize,
    concurrency: usize,
) -> PageFigures {
    let fetch = |http: reqwest::Client, url: String, cookie: String| async move {
        let t = Instant::now();
        let resp = http
            .get(&url)
            .header("cookie", cookie)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let body = resp.bytes().await.expect("body");
        (t.elapsed(), body.len())
    };
    for _ in 0..5 {
        fetch(http.clone(), url.clone(), cookie.to_owned()).await;
    }
    let started = Instant::now();
    let mut set = JoinSet::new();
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    for _ in 0..requests {
        while set.len() >= concurrency {
            if let Some(Ok((t, n))) = set.join_next().await {
                times.push(t);
                bytes = n;
            }
        }
        set.spawn(fetch(http.clone(), url.clone(), cookie.to_owned()));
    }
    while let Some(done) = set.join_next().await {
        if let Ok((t, n)) = done {
            times.push(t);
            bytes = n;
        }
    }
    let elapsed = started.elapsed();
    times.sort();
    PageFigures {
        p50: percentile(&times, 0.50),
        p99: percentile(&times, 0.99),
        per_sec: requests as f64 / elapsed.as_secs_f64(),
        bytes,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let calls = args.first().copied().unwrap_or(2_000);
    let requests = args.get(1).copied().unwrap_or(200);
    let concurrency = args.get(2).copied().unwrap_or(8);

    let (db, fake, app) = textback_testkit::bench::start(TestAppOptions::default().workers).await;
    let (account, _) = app.seed_recommended(MESSAGE).await;
    let hash = password::hash(PASSWORD).expect("hash");
    app.store
        .create_user(account.id, EMAIL, "Pat Owner", Role::Owner, &hash, 0)
        .await
        .expect("owner");
    let app = Arc::new(app);

    println!(
        "web-bench: {calls} missed calls seeded, {requests} requests per page, {concurrency} in flight, {} store",
        app.store.backend()
    );
    let seeded = Instant::now();
    busy_month(&app, calls).await;
    println!("seeded in {:.1?}", seeded.elapsed());

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = sign_in(&http, &app.base_url).await;
    let conversation = app
        .store
        .conversations_page(account.id, None, 1)
        .await
        .expect("conversations")
        .first()
        .map(|c| c.id)
        .expect("a conversation");
    let pages = [
        "/".to_owned(),
        "/inbox".to_owned(),
        format!("/inbox/{conversation}"),
        "/calls".to_owned(),
        "/tasks?show=all".to_owned(),
        "/contacts".to_owned(),
        "/contacts?q=5550".to_owned(),
        "/reports".to_owned(),
        "/workflows".to_owned(),
        "/workflows/new".to_owned(),
        "/settings".to_owned(),
    ];
    println!(
        "{:<22} {:>9} {:>9} {:>8} {:>9}",
        "page", "p50", "p99", "req/s", "bytes"
    );
    for page in pages {
        let f = measure(
            &http,
            format!("{}{page}", app.base_url),
            &cookie,
            requests,
            concurrency,
        )
        .await;
        println!(
            "{page:<22} {:>9.2?} {:>9.2?} {:>8.0} {:>9}",
            f.p50, f.p99, f.per_sec, f.bytes
        );
    }
    if let Some(kib) = rss_high_water_kib() {
        println!(
            "peak resident set of the whole process (server + client + stand-in): {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    textback_testkit::bench::stop(db, fake, app).await;
}
