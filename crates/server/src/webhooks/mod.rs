//! Carrier webhooks. Every request is signature-checked over its raw body before anything
//! is parsed or stored: Twilio's HMAC, Telnyx's Ed25519.

mod inbound;
mod signed_form;
mod telnyx_messaging;
mod twilio_sms;
mod twilio_voice;

use axum::Router;

use crate::AppState;

pub use signed_form::CarrierForm;
pub use twilio_voice::replay_spool;

pub fn routes() -> Router<AppState> {
    twilio_voice::routes()
        .merge(twilio_sms::routes())
        .merge(telnyx_messaging::routes())
}
