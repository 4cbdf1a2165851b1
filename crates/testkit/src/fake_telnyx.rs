//! A local stand-in for Telnyx's Messaging API v2 (`POST /v2/messages`, bearer API key,
//! JSON in and out, Telnyx's error bodies), and the signer for the webhooks Telnyx sends
//! (Ed25519 over `"{timestamp}|{body}"`), started by the test on port 0.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const API_KEY: &str = "KEY0123456789ABCDEF_test";

/// A scripted answer for the next send, instead of the usual `200`.
#[derive(Debug, Clone)]
pub enum TelnyxFault {
    /// `500` with Telnyx's error body; nothing is sent.
    ServerError,
    /// `429` with `Retry-After`; nothing is sent.
    RateLimited { retry_after_secs: u64 },
    /// A `4xx` rejection with this Telnyx error code (409 / 40300 after a STOP, 422 / 10002
    /// for an invalid number…).
    Reject {
        status: u16,
        code: i64,
        title: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnyxSent {
    pub id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub webhook_url: Option<String>,
}

#[derive(Default)]
struct Inner {
    faults: VecDeque<TelnyxFault>,
    sent: Vec<TelnyxSent>,
}

#[derive(Clone)]
pub struct FakeTelnyx {
    pub base_url: String,
    inner: Arc<Mutex<Inner>>,
    keys: Arc<Ed25519KeyPair>,
    shutdown: Arc<Notify>,
}

impl FakeTelnyx {
    pub async fn start() -> FakeTelnyx {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake telnyx");
        let addr = listener.local_addr().expect("local addr");
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        let keys = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key pair");
        let fake = FakeTelnyx {
            base_url: format!("http://{addr}"),
            inner: Arc::default(),
            keys: Arc::new(keys),
            shutdown: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/v2/messages", post(send))
            .with_state(fake.clone());
        let stop = fake.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        fake
    }

    /// The account's public key as the portal shows it (base64), for `TELNYX_PUBLIC_KEY`.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.keys.public_key().as_ref())
    }

    /// The two headers Telnyx would send with `body` at Unix time `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> [(&'static str, String); 2] {
        let mut signed = format!("{timestamp}|").into_bytes();
        signed.extend_from_slice(body);
        [
            (
                "telnyx-signature-ed25519",
                STANDARD.encode(self.keys.sign(&signed).as_ref()),
            ),
            ("telnyx-timestamp", timestamp.to_string()),
        ]
    }

    pub fn push_fault(&self, fault: TelnyxFault) {
        self.inner.lock().expect("lock").faults.push_back(fault);
    }

    /// Messages Telnyx accepted, in order.
    pub fn sent(&self) -> Vec<TelnyxSent> {
        self.inner.lock().expect("lock").sent.clone()
    }

    pub fn stop(&self) {
        // notify_one keeps the wake-up for a server not yet waiting for it.
        self.shutdown.notify_one();
    }
}

fn errors(status: StatusCode, code: &str, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"errors": [{"code": code, "title": title, "detail": detail}]}).to_string(),
    )
        .into_response()
}

async fn send(State(fake): State<FakeTelnyx>, headers: HeaderMap, body: String) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(API_KEY) {
        return errors(
            StatusCode::UNAUTHORIZED,
            "10009",
            "Authentication failed",
            "The API key is missing or invalid.",
        );
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "10015",
            "Bad Request",
            "The request body is not JSON.",
        );
    };
    let field = |k: &str| req[k].as_str().map(str::to_owned);
    let (Some(from), Some(to), Some(text)) = (field("from"), field("to"), field("text")) else {
        return errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "10005",
            "Invalid parameter",
            "from, to and text are required.",
        );
    };
    let fault = fake.inner.lock().expect("lock").faults.pop_front();
    match fault {
        Some(TelnyxFault::ServerError) => {
            return errors(
                StatusCode::INTERNAL_SERVER_ERROR,
                "10007",
                "Unexpected error",
                "An unexpected error occured.",
            );
        }
        Some(TelnyxFault::RateLimited { retry_after_secs }) => {
            let mut r = errors(
                StatusCode::TOO_MANY_REQUESTS,
                "10011",
                "Too many requests",
                "Rate limit exceeded.",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after_secs.to_string().parse().expect("header"),
            );
            return r;
        }
        Some(TelnyxFault::Reject {
            status,
            code,
            title,
        }) => {
            return errors(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &code.to_string(),
                &title,
                &title,
            );
        }
        None => {}
    }
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        fastrand::u16(..0x1000),
        fastrand::u64(..0x1_0000_0000_0000)
    );
    let parts = textback_core::segments::count(&text).segments as i64;
    fake.inner.lock().expect("lock").sent.push(TelnyxSent {
        id: id.clone(),
        from: from.clone(),
        to: to.clone(),
        text: text.clone(),
        webhook_url: field("webhook_url"),
    });
    let answer = json!({"data": {
        "record_type": "message", "direction": "outbound", "id": id, "type": "SMS",
        "from": {"phone_number": from, "carrier": "Telnyx", "line_type": "VoIP"},
        "to": [{"phone_number": to, "status": "queued", "carrier": "T-MOBILE USA, INC.", "line_type": "Wireless"}],
        "text": text, "media": [], "parts": parts, "encoding": "GSM-7",
        "webhook_url": field("webhook_url"), "errors": [],
    }});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}
