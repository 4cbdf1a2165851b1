//! Carrier adapters. Twilio: webhook signatures, TwiML, the Messages REST client. The
//! sandbox carrier records texts instead of sending them, for installs with no carrier
//! account.

pub mod sandbox;
pub mod telnyx;
pub mod twilio;

use std::time::Duration;

/// What one attempt to hand a text to a carrier came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Accepted {
        carrier_message_id: String,
        status: String,
        segments: Option<i64>,
    },
    /// Refused for good (invalid number, opted out, not a mobile…): never retried.
    Rejected { code: Option<i64>, message: String },
    /// Worth another try: 5xx, 429, connection failures. `retry_after` honours the carrier.
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The request may have reached the carrier (time-out after sending): reconcile before
    /// sending again.
    Ambiguous { message: String },
}

/// A request that failed before an answer: never connected (safe to send again), or sent
/// and unanswered (the carrier may have the text: reconcile first).
pub(crate) fn classify_transport_error(e: &reqwest::Error, carrier: &str) -> SendResult {
    if e.is_connect() || e.is_builder() {
        SendResult::Retryable {
            message: format!("could not reach {carrier}: {e}"),
            retry_after: None,
        }
    } else {
        SendResult::Ambiguous {
            message: format!("no answer from {carrier}: {e}"),
        }
    }
}

/// The HTTP client every carrier adapter uses: bounded time per request and to connect.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    twilio::client::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("textback/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A carrier's `Retry-After` in seconds, when it sent one.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
