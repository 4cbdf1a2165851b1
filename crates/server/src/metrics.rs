//! Prometheus metrics at `/metrics`. Labels are route templates, outcomes, reasons and
//! error codes: never a phone number, a message or a secret.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (several apps in one test process share it). `App::new`
/// installs it, before any request or worker runs.
///
/// Installing it also calibrates the clock the exporter stamps every histogram sample
/// with (`quanta`'s, against the TSC): a spin of at least half a millisecond that gives up
/// only after 200 ms when the samples keep disagreeing, as they do while other threads
/// start. Left to the first sample, it ran while the workers started, and about one
/// start in forty answered its first request 200 ms late (docs/PERFORMANCE.md, session 9).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let _calibrated = quanta::Instant::now();
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        spawn_upkeep(handle.clone());
        handle
    })
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter keeps each histogram sample until it is folded into the buckets, which
/// otherwise happens only when `/metrics` is scraped: without a scraper, memory grew by
/// every request and text (the soak: 34 → 49 MiB in 23 minutes at 100 calls/s).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread did not start; scrape /metrics to bound memory");
    }
}

/// Counts every request by route template and status class, with its latency.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("textback_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("textback_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub async fn render(State(state): State<AppState>) -> Response {
    let h = handle();
    match state.store.queue_stats(state.now_ms()).await {
        Ok((depth, oldest_ms)) => {
            metrics::gauge!("textback_queue_depth").set(depth as f64);
            metrics::gauge!("textback_queue_oldest_job_age_seconds").set(oldest_ms as f64 / 1000.0);
        }
        Err(e) => tracing::warn!(error = %e, "queue stats unavailable for /metrics"),
    }
    if let Some(bytes) = state.store.sqlite_memory_bytes() {
        metrics::gauge!("textback_sqlite_memory_bytes").set(bytes as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.render(),
    )
        .into_response()
}
