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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake twilio");
        let addr = listener.local_addr().expect("local addr");
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
            .with_state(fake.clone());
        let stop = fake.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        fake
    }

    pub fn push_fault(&self, fault: Fault) {
        self.inner.lock().expect("lock").faults.push_back(fault);
    }

    /// Messages Twilio accepted (created), in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.inner.lock().expect("lock").sent.clone()
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
            let sent = self.sent();
            if sent.len() >= n {
                return sent;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.sent();
            }
        }
    }

    pub fn stop(&self) {
        self.shutdown.notify_waiters();
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
