//! A local stand-in for Twilio's Messages API (2010-04-01), started by the test on port 0.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "test_auth_token_0123456789abcdef";

/// A scripted answer for the next create request, instead of the usual `201`.
#[derive(Debug, Clone)]
pub enum Fault {
    /// `500` with Twilio's error body; nothing is created.
    ServerError,
    /// `429`, code 20429, with `Retry-After`; nothing is created.
    RateLimited { retry_after_secs: u64 },
    /// A 4xx rejection with this error code (21211 invalid number, 21610 opted out, …).
    Reject { code: i64, message: String },
    /// Creates the message, then answers only after `delay` (longer than the client's
    /// time-out: the sender sees an ambiguous failure although the text went out).
    AcceptSlowly { delay: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// When the create request arrived (for latency measurements).
    pub received_at: std::time::Instant,
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub status_callback: Option<String>,
}

#[derive(Default)]
struct Inner {
    faults: VecDeque<Fault>,
    sent: Vec<SentMessage>,
    create_requests: usize,
    /// Requests for the message list (a sender reconciling before it resends).
    list_requests: usize,
    /// Line types by number for Lookup v2; unknown numbers are `mobile`.
    line_types: std::collections::HashMap<String, String>,
    lookups: usize,
    /// Numbers the account owns: (number, voice URL, SMS URL, status callback).
    incoming: Vec<(String, String, String, String)>,
    /// Messaging Services: (number in it, A2P campaign status).
    a2p: Vec<(String, String)>,
    /// Toll-free verifications: (number, status).
    tollfree: Vec<(String, String)>,
    /// Calls placed through the Calls API: (To, From, Url).
    calls: Vec<(String, String, String)>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    shutdown: Arc<Notify>,
}

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        FakeTwilio::start_on("127.0.0.1:0")
            .await
            .expect("bind the Twilio stand-in")
    }

    /// Starts the stand-in on `addr` (e.g. `127.0.0.1:4010`), for a server in another process.
    pub async fn start_on(addr: &str) -> std::io::Result<FakeTwilio> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let fake = FakeTwilio {
            base_url: format!("http://{addr}"),
            inner: Arc::default(),
            changed: Arc::new(Notify::new()),
            shutdown: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(create_message).get(list_messages),
            )
            .route(
                "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
                axum::routing::get(list_incoming),
            )
            .route("/v2/PhoneNumbers/{number}", axum::routing::get(lookup))
            .route(
                "/2010-04-01/Accounts/{account}/Calls.json",
                post(create_call),
            )
            .route("/v1/Services", axum::routing::get(list_services))
            .route(
                "/v1/Services/{service}/PhoneNumbers",
                axum::routing::get(service_numbers),
            )
            .route(
                "/v1/Services/{service}/Compliance/Usa2p",
                axum::routing::get(service_campaigns),
            )
            .route(
                "/v1/Tollfree/Verifications",
                axum::routing::get(tollfree_verifications),
            )
            .with_state(fake.clone());
        let stop = fake.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        Ok(fake)
    }

    pub fn push_fault(&self, fault: Fault) {
        self.inner.lock().expect("lock").faults.push_back(fault);
    }

    /// Messages Twilio accepted (created), in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.inner.lock().expect("lock").sent.clone()
    }

    /// Takes the texts received so far out of the stand-in (a long run keeps its memory
    /// flat this way; the message list the sender reconciles against is emptied too).
    pub fn take_sent(&self) -> Vec<SentMessage> {
        std::mem::take(&mut self.inner.lock().expect("lock").sent)
    }

    /// Create requests received, accepted or not.
    pub fn create_requests(&self) -> usize {
        self.inner.lock().expect("lock").create_requests
    }

    /// Waits until at least `n` messages were created, or `timeout` passes.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<SentMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            // Count without copying: a copy per text made the wait quadratic.
            if self.inner.lock().expect("lock").sent.len() >= n {
                return self.sent();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.sent();
            }
        }
    }

    /// What Lookup v2 answers for `number` (`landline`, `mobile`, …).
    pub fn set_line_type(&self, number: &str, line_type: &str) {
        self.inner
            .lock()
            .expect("lock")
            .line_types
            .insert(number.to_owned(), line_type.to_owned());
    }

    pub fn list_requests(&self) -> usize {
        self.inner.lock().expect("lock").list_requests
    }

    pub fn lookups(&self) -> usize {
        self.inner.lock().expect("lock").lookups
    }

    /// Registers a number the account owns, with its webhook configuration.
    pub fn own_number(&self, number: &str, voice_url: &str, sms_url: &str, status_callback: &str) {
        self.inner.lock().expect("lock").incoming.push((
            number.to_owned(),
            voice_url.to_owned(),
            sms_url.to_owned(),
            status_callback.to_owned(),
        ));
    }

    /// Puts `number` in its own Messaging Service with an A2P campaign in `campaign_status`
    /// (`VERIFIED`, `IN_PROGRESS`, `FAILED`, …).
    pub fn set_a2p(&self, number: &str, campaign_status: &str) {
        self.inner
            .lock()
            .expect("lock")
            .a2p
            .push((number.to_owned(), campaign_status.to_owned()));
    }

    /// A toll-free verification for `number` (`TWILIO_APPROVED`, `PENDING_REVIEW`, …).
    pub fn set_tollfree(&self, number: &str, status: &str) {
        self.inner
            .lock()
            .expect("lock")
            .tollfree
            .push((number.to_owned(), status.to_owned()));
    }

    /// Calls placed through the Calls API: (To, From, Url).
    pub fn placed_calls(&self) -> Vec<(String, String, String)> {
        self.inner.lock().expect("lock").calls.clone()
    }

    pub fn stop(&self) {
        // notify_one keeps the wake-up for a server not yet waiting for it.
        self.shutdown.notify_one();
    }
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap, account: &str) -> bool {
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    account == ACCOUNT_SID
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Basic {expected}"))
}

fn resource(m: &SentMessage) -> Value {
    let now = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string();
    json!({
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": m.body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": m.from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": "queued",
        "subresource_uris": { "media": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{}/Media.json", m.sid) },
        "to": m.to,
        "uri": format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{}.json", m.sid),
    })
}

async fn create_message(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &account) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (fault, message) = {
        let mut inner = fake.inner.lock().expect("lock");
        inner.create_requests += 1;
        let Some(to) = field("To") else {
            return error(
                StatusCode::BAD_REQUEST,
                21604,
                "A 'To' phone number is required.",
            );
        };
        let Some(from) = field("From") else {
            return error(
                StatusCode::BAD_REQUEST,
                21603,
                "A 'From' phone number is required.",
            );
        };
        let Some(text) = field("Body").filter(|b| !b.is_empty()) else {
            return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
        };
        let fault = inner.faults.pop_front();
        let message = SentMessage {
            received_at: std::time::Instant::now(),
            sid: format!("SM{:032x}", fastrand::u128(..)),
            to,
            from,
            body: text,
            status_callback: field("StatusCallback"),
        };
        let creates = matches!(fault, None | Some(Fault::AcceptSlowly { .. }));
        if creates {
            inner.sent.push(message.clone());
        }
        (fault, message)
    };
    fake.changed.notify_waiters();
    match fault {
        None => (StatusCode::CREATED, axum::Json(resource(&message))).into_response(),
        Some(Fault::ServerError) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        ),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            r
        }
        Some(Fault::Reject {
            code,
            message: text,
        }) => error(StatusCode::BAD_REQUEST, code, &text),
        Some(Fault::AcceptSlowly { delay }) => {
            tokio::time::sleep(delay).await;
            (StatusCode::CREATED, axum::Json(resource(&message))).into_response()
        }
    }
}

async fn list_messages(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &account) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    fake.inner.lock().expect("lock").list_requests += 1;
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (to, from) = (param("To"), param("From"));
    let messages: Vec<Value> = fake
        .sent()
        .iter()
        .rev()
        .filter(|m| {
            to.as_ref().is_none_or(|t| &m.to == t) && from.as_ref().is_none_or(|f| &m.from == f)
        })
        .map(resource)
        .collect();
    let uri = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json?PageSize=50&Page=0");
    axum::Json(json!({
        "end": messages.len().saturating_sub(1),
        "first_page_uri": uri,
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": uri,
        "messages": messages,
    }))
    .into_response()
}

async fn lookup(
    State(fake): State<FakeTwilio>,
    Path(number): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, ACCOUNT_SID) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let fields = query
        .iter()
        .find(|(k, _)| k == "Fields")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let line_type = {
        let mut inner = fake.inner.lock().expect("lock");
        inner.lookups += 1;
        inner
            .line_types
            .get(&number)
            .cloned()
            .unwrap_or_else(|| "mobile".to_owned())
    };
    if line_type == "fail" {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        );
    }
    let lti = fields.split(',').any(|f| f == "line_type_intelligence").then(|| {
        json!({ "carrier_name": "Test Carrier", "error_code": null, "mobile_country_code": "311", "mobile_network_code": "180", "type": line_type })
    });
    axum::Json(json!({
        "calling_country_code": "1",
        "country_code": "US",
        "phone_number": number,
        "national_format": number,
        "valid": true,
        "validation_errors": [],
        "caller_name": null,
        "sim_swap": null,
        "call_forwarding": null,
        "line_type_intelligence": lti,
        "line_status": null,
        "identity_match": null,
        "reassigned_number": null,
        "sms_pumping_risk": null,
        "phone_number_quality_score": null,
        "pre_fill": null,
        "url": format!("https://lookups.twilio.com/v2/PhoneNumbers/{number}"),
    }))
    .into_response()
}

async fn list_incoming(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &account) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let wanted = query
        .iter()
        .find(|(k, _)| k == "PhoneNumber")
        .map(|(_, v)| v.clone());
    let numbers: Vec<Value> = fake
        .inner
        .lock()
        .expect("lock")
        .incoming
        .iter()
        .filter(|(n, ..)| wanted.as_ref().is_none_or(|w| w == n))
        .enumerate()
        .map(|(i, (n, voice, sms, status))| {
            json!({
                "account_sid": ACCOUNT_SID,
                "api_version": "2010-04-01",
                "friendly_name": n,
                "phone_number": n,
                "sid": format!("PN{i:032x}"),
                "sms_method": "POST",
                "sms_url": sms,
                "status_callback": status,
                "status_callback_method": "POST",
                "voice_method": "POST",
                "voice_url": voice,
                "status": "in-use",
            })
        })
        .collect();
    let uri = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json");
    axum::Json(json!({
        "end": numbers.len().saturating_sub(1),
        "first_page_uri": uri,
        "next_page_uri": null,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": null,
        "start": 0,
        "uri": uri,
        "incoming_phone_numbers": numbers,
    }))
    .into_response()
}

fn service_sid(i: usize) -> String {
    format!("MG{i:032x}")
}

fn meta(key: &str, url: &str) -> Value {
    json!({"first_page_url": url, "key": key, "next_page_url": null, "page": 0, "page_size": 50, "previous_page_url": null, "url": url})
}

async fn list_services(State(fake): State<FakeTwilio>, headers: HeaderMap) -> Response {
    if !authorized(&headers, ACCOUNT_SID) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let n = fake.inner.lock().expect("lock").a2p.len();
    let services: Vec<Value> = (0..n)
        .map(|i| json!({"sid": service_sid(i), "account_sid": ACCOUNT_SID, "friendly_name": format!("Service {i}")}))
        .collect();
    axum::Json(json!({"services": services, "meta": meta("services", "https://messaging.twilio.com/v1/Services")})).into_response()
}

fn service_index(service: &str) -> Option<usize> {
    usize::from_str_radix(service.strip_prefix("MG")?, 16).ok()
}

async fn service_numbers(
    State(fake): State<FakeTwilio>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, ACCOUNT_SID) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let inner = fake.inner.lock().expect("lock");
    let Some((number, _)) = service_index(&service).and_then(|i| inner.a2p.get(i)) else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    let numbers = vec![
        json!({"sid": "PN00000000000000000000000000000001", "phone_number": number, "service_sid": service}),
    ];
    axum::Json(json!({"phone_numbers": numbers, "meta": meta("phone_numbers", "")})).into_response()
}

async fn service_campaigns(
    State(fake): State<FakeTwilio>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, ACCOUNT_SID) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let inner = fake.inner.lock().expect("lock");
    let Some((_, status)) = service_index(&service).and_then(|i| inner.a2p.get(i)) else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    let compliance = vec![
        json!({"sid": "QE00000000000000000000000000000001", "campaign_status": status, "messaging_service_sid": service}),
    ];
    axum::Json(json!({"compliance": compliance, "meta": meta("compliance", "")})).into_response()
}

async fn tollfree_verifications(
    State(fake): State<FakeTwilio>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, ACCOUNT_SID) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let inner = fake.inner.lock().expect("lock");
    let wanted = query
        .iter()
        .find(|(k, _)| k == "TollfreePhoneNumberSid")
        .map(|(_, v)| v.clone());
    let verifications: Vec<Value> = inner
        .incoming
        .iter()
        .enumerate()
        .filter(|(i, _)| wanted.as_deref().is_none_or(|w| w == format!("PN{i:032x}")))
        .filter_map(|(_, (n, ..))| inner.tollfree.iter().find(|(t, _)| t == n))
        .map(|(_, status)| json!({"sid": "HH00000000000000000000000000000001", "status": status}))
        .collect();
    axum::Json(json!({"verifications": verifications, "meta": meta("verifications", "")}))
        .into_response()
}

async fn create_call(
    State(fake): State<FakeTwilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &account) {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(to), Some(from), Some(url)) = (field("To"), field("From"), field("Url")) else {
        return error(
            StatusCode::BAD_REQUEST,
            21205,
            "Url, To and From are required",
        );
    };
    fake.inner
        .lock()
        .expect("lock")
        .calls
        .push((to.clone(), from.clone(), url));
    let sid = format!("CA{:032x}", fastrand::u128(..));
    (
        StatusCode::CREATED,
        axum::Json(json!({"sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": from, "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01"})),
    )
        .into_response()
}
