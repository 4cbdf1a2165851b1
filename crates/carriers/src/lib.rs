//! Carrier adapters. Twilio: webhook signatures, TwiML, the Messages REST client. The
//! sandbox carrier records texts instead of sending them, for installs with no carrier
//! account.

pub mod sandbox;
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
