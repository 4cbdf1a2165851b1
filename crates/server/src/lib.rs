#![recursion_limit = "512"]
//! The Textback server: carrier webhooks, health endpoints and the background workers that
//! turn a missed call into one text back.

pub mod account_settings;
pub mod api;
mod automation;
pub mod contacts_io;
pub mod deliver;
pub mod doctor;
mod error;
mod health;
pub mod metrics;
pub mod replies;
pub mod reports;
mod routes_cache;
mod sender;
pub mod smart_lists;
pub mod spool;
mod state;
pub mod web;
mod webhooks;
pub mod worker;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use textback_carriers::telnyx::{TelnyxClient, TelnyxPublicKey};
use textback_carriers::twilio::{SignatureCheck, TwilioClient, TwilioCredentials};
use textback_core::Clock;
use textback_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::WebhookError;
pub use state::AppState;
pub use worker::Worker;

/// Largest webhook body accepted; Twilio's are a few KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How often expired sessions and idempotency keys are swept (by one instance at a time).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

async fn housekeeping(state: AppState, mut stop: watch::Receiver<bool>) {
    // The first round waits a full period: nothing expires at start-up that cannot wait,
    // and several instances restarting together do not all sweep at once.
    let mut every = tokio::time::interval_at(
        tokio::time::Instant::now() + HOUSEKEEPING_EVERY,
        HOUSEKEEPING_EVERY,
    );
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        match state.store.housekeep(state.now_ms()).await {
            Ok(Some(swept)) if swept != textback_store::Swept::default() => {
                tracing::info!(
                    sessions = swept.sessions,
                    idempotency_keys = swept.idempotency_keys,
                    "swept expired rows"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; it runs again later"),
        }
    }
}

/// What one instance does when several share a database (`textback serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceRole {
    /// Webhooks, the API and the web UI; no workers.
    Api,
    /// Workers only; HTTP serves just `/healthz`, `/readyz` and `/metrics`.
    Worker,
    /// Both (one instance, or every instance alike).
    #[default]
    All,
}

impl InstanceRole {
    pub fn parse(raw: &str) -> Option<InstanceRole> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "api" => Some(InstanceRole::Api),
            "worker" => Some(InstanceRole::Worker),
            "all" => Some(InstanceRole::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceRole::Api => "api",
            InstanceRole::Worker => "worker",
            InstanceRole::All => "all",
        }
    }

    fn serves_requests(self) -> bool {
        self != InstanceRole::Worker
    }
}

/// Telnyx, when configured: the API key that sends, the public key its webhooks are
/// checked with (base64 Ed25519), and the API's base URL.
#[derive(Clone)]
pub struct TelnyxSettings {
    pub api_key: String,
    pub public_key: String,
    pub api_base: String,
}

impl std::fmt::Debug for TelnyxSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxSettings")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct ServerConfig {
    /// The base URL the carrier calls (signatures are checked against it).
    pub public_url: String,
    /// Twilio credentials; `None` runs every number on the sandbox carrier.
    pub twilio: Option<TwilioCredentials>,
    pub twilio_api_base: String,
    /// Twilio Lookup's base URL (line type intelligence).
    pub twilio_lookup_base: String,
    /// Telnyx; `None` leaves numbers set to `telnyx` on the sandbox.
    pub telnyx: Option<TelnyxSettings>,
    /// Shared key for webhooks signed with HMAC-SHA256 (Twilio webhook settings).
    pub webhook_shared_key: Option<String>,
    /// Key the sandbox's simulated webhooks are signed with when there is no auth token.
    pub sandbox_token: String,
    /// Concurrent worker loops; 0 runs none (an API-only instance, or tests that step).
    pub workers: usize,
    /// How long Twilio gets to answer one request.
    pub carrier_timeout: Duration,
    /// Let workflow webhooks reach private and loopback addresses (off by default).
    pub allow_private_webhooks: bool,
    /// `Api` runs no workers whatever `workers` says; `Worker` answers no webhooks.
    pub role: InstanceRole,
    /// Where a call result is kept when the database cannot take it (see `spool`); `None`
    /// answers the carrier with an error instead.
    pub spool_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("public_url", &self.public_url)
            .field("twilio", &self.twilio)
            .field("twilio_api_base", &self.twilio_api_base)
            .field("telnyx", &self.telnyx)
            .field("workers", &self.workers)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not build the HTTP client for Twilio: {0}")]
    HttpClient(String),
    #[error("Telnyx settings: {0}")]
    Telnyx(String),
    #[error("the spool directory {0} cannot be used: {1}")]
    Spool(String, std::io::Error),
    #[error("serving HTTP failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// How long after it starts serving `serve` loads the phone number metadata
/// (`textback_core::phone::warm_up`).
const PHONE_WARM_UP_AFTER: Duration = Duration::from_millis(200);

/// One running Textback: the router plus its workers.
pub struct App {
    state: AppState,
}

impl App {
    pub fn new(
        store: Store,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<App, StartError> {
        metrics::handle();
        let twilio = match &config.twilio {
            Some(creds) => Some(
                TwilioClient::new(
                    &config.twilio_api_base,
                    &config.twilio_lookup_base,
                    creds.clone(),
                    config.carrier_timeout,
                )
                .map_err(|e| StartError::HttpClient(e.to_string()))?,
            ),
            None => None,
        };
        let (telnyx, telnyx_key) = match &config.telnyx {
            Some(t) => (
                Some(
                    TelnyxClient::new(&t.api_base, &t.api_key, config.carrier_timeout)
                        .map_err(|e| StartError::Telnyx(e.to_string()))?,
                ),
                Some(
                    TelnyxPublicKey::parse(&t.public_key)
                        .map_err(|e| StartError::Telnyx(e.to_string()))?,
                ),
            ),
            None => (None, None),
        };
        let spool = match &config.spool_dir {
            Some(dir) => Some(
                spool::Spool::open(dir)
                    .map_err(|e| StartError::Spool(dir.display().to_string(), e))?,
            ),
            None => None,
        };
        let signature = SignatureCheck {
            auth_token: config
                .twilio
                .as_ref()
                .map(|c| c.auth_token.clone())
                .unwrap_or_else(|| config.sandbox_token.clone()),
            shared_key: config.webhook_shared_key.clone(),
        };
        let state = AppState {
            store,
            clock,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            signature,
            twilio,
            telnyx,
            telnyx_key,
            spool,
            routes: routes_cache::RoutesCache::default(),
            workers: if config.role == InstanceRole::Api {
                0
            } else {
                config.workers
            },
            role: config.role,
            allow_private_webhooks: config.allow_private_webhooks,
            login_limiter: web::LoginLimiter::default(),
            stopping: Default::default(),
        };
        Ok(App { state })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> Router {
        metrics::handle();
        let mut router = Router::new().merge(health::routes());
        if self.state.role.serves_requests() {
            router = router
                .merge(webhooks::routes())
                .merge(api::routes(self.state.clone()))
                .merge(web::routes());
        }
        router
            .route("/metrics", axum::routing::get(metrics::render))
            .layer(axum::middleware::from_fn(metrics::track))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.state.clone())
    }

    /// A worker that processes due jobs when stepped (tests) or in a loop (`run`).
    pub fn worker(&self, name: &str) -> Worker {
        Worker::new(self.state.clone(), name)
    }

    /// Serves HTTP on `listener` and runs the configured workers until `shutdown`
    /// resolves; then stops taking requests, finishes those in flight and stops workers.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        // Know every number's routing before the first call, so the phone keeps ringing even
        // if the database fails later.
        let routes = match self.state.store.all_routes().await {
            Ok(routes) => routes,
            Err(e) => {
                tracing::warn!(error = %e, "could not preload number routing");
                Vec::new()
            }
        };
        routes.iter().for_each(|r| self.state.routes.remember(r));
        // After start-up, not in it: run at once beside it, the ~150 ms of work slowed the
        // start itself on two cores (median +5 ms); a webhook that comes first does the
        // load itself, as it would anyway.
        let numbers: Vec<String> = routes.into_iter().map(|r| r.number.e164).collect();
        tokio::spawn(async move {
            tokio::time::sleep(PHONE_WARM_UP_AFTER).await;
            tokio::task::spawn_blocking(move || {
                textback_core::phone::warm_up(numbers.iter().map(String::as_str))
            });
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        // Other instances' new jobs wake this one's workers (PostgreSQL LISTEN/NOTIFY).
        let listening = (self.state.workers > 0)
            .then(|| self.state.store.listen_for_work())
            .flatten();
        let mut worker_tasks = Vec::new();
        worker_tasks.push(tokio::spawn(housekeeping(
            self.state.clone(),
            stop_rx.clone(),
        )));
        if self.state.spool.is_some() && self.state.role.serves_requests() {
            worker_tasks.push(tokio::spawn(webhooks::replay_spool(
                self.state.clone(),
                stop_rx.clone(),
            )));
        }
        for i in 0..self.state.workers {
            let w = self.worker(&format!("{}-w{i}", std::process::id()));
            worker_tasks.push(tokio::spawn(w.run(stop_rx.clone())));
        }
        let router = self.router();
        let stopping = self.state.stopping.clone();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let result = server.await;
        let _ = stop_tx.send(true);
        for t in worker_tasks {
            let _ = t.await;
        }
        if let Some(l) = listening {
            l.abort();
        }
        result.map_err(StartError::Serve)
    }
}
