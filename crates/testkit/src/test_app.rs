//! The real server, started on port 0 against a test database and (optionally) the fake
//! Twilio, with helpers that sign requests the way Twilio does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use textback_carriers::twilio::{TwilioCredentials, sign};
use textback_core::{Clock, ManualClock, SystemClock};
use textback_server::{App, AppState, ServerConfig, Worker};
use textback_store::{AccountRecord, NumberRecord, Store};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fake_twilio::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio};

/// The public URL the tests pretend Twilio calls; requests really go to the bound port, so
/// a server that checked signatures against its own address would fail every test.
pub const PUBLIC_URL: &str = "https://textback.example.test";
pub const BUSINESS_NUMBER: &str = "+15125550100";
pub const TEAM_PHONE: &str = "+15125550199";
pub const SANDBOX_TOKEN: &str = "sandbox-token-for-tests";
pub const MESSAGE: &str = "Hi {{contact.first_name | default(\"there\")}}, it's {{business.name}}. Sorry we missed your call! How can we help?";

#[derive(Clone)]
pub struct TestAppOptions {
    /// Worker loops; 0 means the test steps the worker itself.
    pub workers: usize,
    /// Drive time by hand (retry back-offs, cooldowns) instead of the system clock.
    pub manual_clock: bool,
    /// Send through the fake Twilio (else the sandbox carrier).
    pub twilio: Option<FakeTwilio>,
    /// Configure Telnyx against this stand-in (numbers set to `telnyx` text through it).
    pub telnyx: Option<crate::FakeTelnyx>,
    pub carrier_timeout: Duration,
    pub call_screening: bool,
    pub landline_lookup: bool,
    /// Workflow webhooks may reach the test's local receivers.
    pub allow_private_webhooks: bool,
    pub role: textback_server::InstanceRole,
}

impl Default for TestAppOptions {
    fn default() -> Self {
        TestAppOptions {
            workers: 0,
            manual_clock: false,
            twilio: None,
            telnyx: None,
            carrier_timeout: Duration::from_secs(5),
            call_screening: false,
            landline_lookup: false,
            allow_private_webhooks: true,
            role: textback_server::InstanceRole::All,
        }
    }
}

pub struct TestApp {
    pub base_url: String,
    pub store: Store,
    pub state: AppState,
    pub clock: Option<ManualClock>,
    pub options: TestAppOptions,
    pub db_url: String,
    http: reqwest::Client,
    /// Stops the server when sent or dropped. A oneshot, not a `Notify`: `notify_waiters`
    /// reached only a server already waiting for it, and one still loading its routes
    /// (nothing had called it since a restart) never stopped.
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<()>,
    spool_dir: std::path::PathBuf,
}

pub fn new_call_sid() -> String {
    format!("CA{:032x}", fastrand::u128(..))
}

impl TestApp {
    pub async fn start(db_url: &str, options: TestAppOptions) -> TestApp {
        Self::start_with_clock(db_url, options, None).await
    }

    async fn start_with_clock(
        db_url: &str,
        options: TestAppOptions,
        clock: Option<ManualClock>,
    ) -> TestApp {
        textback_carriers::twilio::client::install_crypto_provider();
        let store = Store::connect(db_url).await.expect("connect test database");
        store.migrate().await.expect("migrate");
        let manual = match (clock, options.manual_clock) {
            (Some(c), _) => Some(c),
            (None, true) => Some(ManualClock::new(
                "2026-11-30T15:00:00Z".parse().expect("time"),
            )),
            (None, false) => None,
        };
        let clock_arc: Arc<dyn Clock> = match &manual {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let spool_dir =
            std::env::temp_dir().join(format!("textback-spool-{:016x}", fastrand::u64(..)));
        let config = ServerConfig {
            public_url: PUBLIC_URL.to_owned(),
            twilio: options.twilio.as_ref().map(|_| TwilioCredentials {
                account_sid: ACCOUNT_SID.to_owned(),
                auth_token: AUTH_TOKEN.to_owned(),
            }),
            twilio_api_base: options
                .twilio
                .as_ref()
                .map(|f| f.base_url.clone())
                .unwrap_or_else(|| "http://127.0.0.1:9".to_owned()),
            twilio_lookup_base: options
                .twilio
                .as_ref()
                .map(|f| f.base_url.clone())
                .unwrap_or_else(|| "http://127.0.0.1:9".to_owned()),
            telnyx: options
                .telnyx
                .as_ref()
                .map(|f| textback_server::TelnyxSettings {
                    api_key: crate::fake_telnyx::API_KEY.to_owned(),
                    public_key: f.public_key(),
                    api_base: f.base_url.clone(),
                }),
            webhook_shared_key: Some("shared-key-for-tests".to_owned()),
            sandbox_token: SANDBOX_TOKEN.to_owned(),
            workers: options.workers,
            carrier_timeout: options.carrier_timeout,
            allow_private_webhooks: options.allow_private_webhooks,
            role: options.role,
            spool_dir: Some(spool_dir.clone()),
        };
        let app = App::new(store.clone(), config, clock_arc).expect("build app");
        let state = app.state().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (shutdown, stop) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.serve(listener, async move {
                let _ = stop.await;
            })
            .await
            .expect("serve");
        });
        TestApp {
            base_url: format!("http://{addr}"),
            store,
            state,
            clock: manual,
            options,
            db_url: db_url.to_owned(),
            http: reqwest::Client::new(),
            shutdown,
            server,
            spool_dir,
        }
    }

    /// Stops this instance and starts a fresh one on the same database (a restart).
    pub async fn restart(self, options: TestAppOptions) -> TestApp {
        let db_url = self.db_url.clone();
        let clock = self.clock.clone();
        self.stop().await;
        Self::start_with_clock(&db_url, options, clock).await
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
        self.store.close().await;
        let _ = std::fs::remove_dir_all(&self.spool_dir);
    }

    pub fn worker(&self) -> Worker {
        Worker::new(self.state.clone(), "test-worker")
    }

    /// Runs every job that is due now.
    pub async fn drain(&self) -> usize {
        self.worker().drain().await
    }

    pub fn set_time(&self, to: &str) {
        self.clock
            .as_ref()
            .expect("this test app has a manual clock")
            .set(to.parse().expect("an RFC 3339 instant"));
    }

    pub fn advance(&self, by: Duration) {
        self.clock
            .as_ref()
            .expect("this test app has a manual clock")
            .advance(by);
    }

    pub fn token(&self) -> &'static str {
        if self.options.twilio.is_some() {
            AUTH_TOKEN
        } else {
            SANDBOX_TOKEN
        }
    }

    /// Creates Acme Plumbing with the business number ringing the team phone.
    pub async fn seed_account(&self, template: &str) -> (AccountRecord, NumberRecord) {
        let mut hours = BTreeMap::new();
        hours.insert("mon".to_owned(), "08:00-17:00".to_owned());
        let mut account = AccountRecord {
            id: 0,
            slug: "acme-plumbing".into(),
            name: "Acme Plumbing".into(),
            time_zone: "America/Chicago".into(),
            booking_link: None,
            business_hours: hours,
            text_back_enabled: true,
            text_back_template: template.to_owned(),
            cooldown_secs: 900,
            do_not_text: vec!["+15125550177".into()],
            landline_lookup: self.options.landline_lookup,
            quiet_hours: "21:00-08:00".into(),
        };
        account.id = self
            .store
            .save_account(&account, 0)
            .await
            .expect("save account");
        let mut number = NumberRecord {
            id: 0,
            account_id: account.id,
            e164: BUSINESS_NUMBER.into(),
            carrier: "twilio".into(),
            ring_to: vec![TEAM_PHONE.into()],
            ring_seconds: 20,
            call_screening: self.options.call_screening,
            active: true,
            registration: "approved".into(),
        };
        number.id = self
            .store
            .save_number(&number, 0)
            .await
            .expect("save number");
        // The built-in text back, as `apply` keeps it: a preset workflow.
        let builtin = textback_core::workflow::WorkflowSpec::builtin_text_back(template);
        self.save_workflow(account.id, &builtin, true).await;
        (account, number)
    }

    /// The server texting through a fresh Twilio stand-in, on a hand-driven clock, with
    /// Acme Plumbing seeded as setup leaves it (`seed_recommended`).
    pub async fn with_twilio(db_url: &str) -> (TestApp, FakeTwilio, AccountRecord) {
        let fake = FakeTwilio::start().await;
        let app = TestApp::start(
            db_url,
            TestAppOptions {
                twilio: Some(fake.clone()),
                manual_clock: true,
                ..Default::default()
            },
        )
        .await;
        let (account, _) = app.seed_recommended(MESSAGE).await;
        (app, fake, account)
    }

    /// Acme Plumbing as setup leaves a business: the built-in text back off and the
    /// recommended workflow (text back, callback task, tag, follow-up) on.
    pub async fn seed_recommended(&self, template: &str) -> (AccountRecord, NumberRecord) {
        let (account, number) = self.seed_account(template).await;
        let mut builtin = textback_core::workflow::WorkflowSpec::builtin_text_back(template);
        builtin.active = false;
        self.save_workflow(account.id, &builtin, true).await;
        let recommended = textback_core::workflow::WorkflowSpec::recommended(template);
        self.save_workflow(account.id, &recommended, false).await;
        (account, number)
    }

    /// Saves a workflow for the account (a new version when it changed).
    pub async fn save_workflow(
        &self,
        account_id: i64,
        spec: &textback_core::workflow::WorkflowSpec,
        builtin: bool,
    ) {
        let json = spec.versioned_json();
        self.store
            .save_workflow(account_id, &spec.name, builtin, spec.active, &json, 0)
            .await
            .expect("save workflow");
    }

    /// POSTs form `params` to `path_and_query`, signed for the public URL.
    pub async fn post_signed(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
    ) -> (u16, String) {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let signature = sign(
            self.token(),
            &format!("{PUBLIC_URL}{path_and_query}"),
            &owned,
        );
        self.post_raw(path_and_query, params, Some(&signature))
            .await
    }

    pub async fn post_raw(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
        signature: Option<&str>,
    ) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}{path_and_query}", self.base_url))
            .form(params);
        if let Some(sig) = signature {
            req = req.header("X-Twilio-Signature", sig);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Makes an API key for the account and returns it.
    pub async fn api_key(&self, account_id: i64) -> String {
        let key = textback_server::api::new_key();
        self.store
            .create_api_key(
                account_id,
                "test",
                &key[..10],
                &textback_server::api::key_hash(&key),
                0,
            )
            .await
            .expect("create key");
        key
    }

    /// A REST API request: (status, content type, body as JSON or null).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            ct,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A raw API request with a text body (CSV imports): (status, body text).
    pub async fn api_text(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: &str,
        content_type: &str,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Twilio's messaging webhook for a text from `from` to the business number.
    pub async fn text_in(&self, from: &str, body: &str) -> (u16, String) {
        let sid = format!("SM{:032x}", fastrand::u128(..));
        self.post_signed(
            "/webhooks/twilio/sms",
            &[
                ("MessageSid", &sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", from),
                ("To", BUSINESS_NUMBER),
                ("Body", body),
            ],
        )
        .await
    }

    /// Twilio's voice webhook for a new inbound call.
    pub async fn ring(&self, sid: &str, from: &str, to: &str) -> (u16, String) {
        self.post_signed(
            "/webhooks/twilio/voice",
            &[
                ("CallSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", from),
                ("To", to),
                ("CallStatus", "ringing"),
                ("Direction", "inbound"),
            ],
        )
        .await
    }

    /// The `<Dial>` action with `dial_status`.
    pub async fn dial_result(
        &self,
        sid: &str,
        from: &str,
        to: &str,
        dial_status: &str,
    ) -> (u16, String) {
        self.post_signed(
            "/webhooks/twilio/voice/dial-status",
            &[
                ("CallSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", from),
                ("To", to),
                ("CallStatus", "in-progress"),
                ("DialCallStatus", dial_status),
            ],
        )
        .await
    }

    pub async fn call_completed(&self, sid: &str, from: &str, to: &str) -> (u16, String) {
        self.post_signed(
            "/webhooks/twilio/voice/status",
            &[
                ("CallSid", sid),
                ("AccountSid", ACCOUNT_SID),
                ("From", from),
                ("To", to),
                ("CallStatus", "completed"),
                ("CallDuration", "31"),
            ],
        )
        .await
    }

    /// Waits until the call's text back reaches a final state (background workers), or
    /// `timeout` passes; returns the call as it then is.
    pub async fn wait_for_text_back(
        &self,
        sid: &str,
        timeout: Duration,
    ) -> Option<textback_store::CallView> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let call = self
                .store
                .call_by_carrier_id(sid)
                .await
                .expect("query call");
            let settled = call.as_ref().is_some_and(|c| {
                matches!(
                    c.text_back_status.as_deref(),
                    Some("sent" | "skipped" | "failed" | "canceled")
                )
            });
            if settled || tokio::time::Instant::now() >= deadline {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A whole call nobody answers: ring, dial result, completion. Returns the call sid.
    pub async fn missed_call(&self, from: &str, dial_status: &str) -> String {
        let sid = new_call_sid();
        assert_eq!(self.ring(&sid, from, BUSINESS_NUMBER).await.0, 200);
        let (status, body) = self
            .dial_result(&sid, from, BUSINESS_NUMBER, dial_status)
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("<Record"),
            "a missed call hears the voicemail greeting: {body}"
        );
        assert_eq!(
            self.call_completed(&sid, from, BUSINESS_NUMBER).await.0,
            200
        );
        sid
    }
}
