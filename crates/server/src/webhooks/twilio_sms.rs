//! Twilio messaging webhooks: inbound texts and the delivery status of ours.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use textback_carriers::twilio::twiml;
use textback_core::Phone;
use textback_core::carrier_error::describe;
use textback_store::DeliveryReport;

use super::CarrierForm;
use super::inbound::{Inbound, record_inbound};
use crate::sender::contact_effect;
use crate::{AppState, WebhookError};

/// Twilio sends at most ten media items with one message.
const MAX_MEDIA: usize = 10;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio/sms", post(inbound))
        .route("/webhooks/twilio/sms/status", post(message_status))
}

fn twiml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// A text to one of our numbers: it joins the contact's conversation; keywords and
/// free-text requests change consent (with the message kept as evidence); HELP and INFO
/// get one answer naming the business. Twilio acts on STOP itself; we record it so that
/// nothing of ours is sent afterwards either.
async fn inbound(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let sid = form.require("MessageSid")?;
    let to = Phone::parse(form.require("To")?)
        .map_err(|e| WebhookError::BadRequest(format!("To: {e}")))?;
    let from = Phone::parse(form.require("From")?)
        .map_err(|e| WebhookError::BadRequest(format!("From: {e}")))?;
    let body = form.get("Body").unwrap_or_default();
    let media_count: usize = form
        .get("NumMedia")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(MAX_MEDIA);
    let media: Vec<String> = (0..media_count)
        .filter_map(|i| form.get(&format!("MediaUrl{i}")).map(str::to_owned))
        .collect();
    let text = Inbound {
        carrier: "twilio",
        carrier_message_id: sid,
        from: &from,
        to: &to,
        body,
        media,
        reply_by_api: false,
    };
    let reply = record_inbound(&state, text).await?;
    Ok(twiml_response(match reply {
        Some(text) => twiml::message(&text),
        None => twiml::connect(),
    }))
}

/// `StatusCallback` of each text we send: queued → sent → delivered / undelivered / failed,
/// with the error code understood.
async fn message_status(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<StatusCode, WebhookError> {
    let sid = form.require("MessageSid")?;
    let status = form.require("MessageStatus")?;
    let error_code =
        match form.get("ErrorCode").filter(|c| !c.is_empty() && *c != "0") {
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                WebhookError::BadRequest(format!("ErrorCode {c:?} is not a number"))
            })?),
            None => None,
        };
    let error_reason = error_code.map(|code| describe(code).reason.to_owned());
    let effect = error_code.and_then(|c| contact_effect("twilio", c));
    let report = DeliveryReport {
        carrier_message_id: sid.to_owned(),
        carrier_status: status.to_owned(),
        error_code,
        error_reason,
        effect,
    };
    let applied = state
        .store
        .record_delivery_report(&report, state.now_ms())
        .await?;
    if !applied {
        tracing::debug!(
            message_sid = sid,
            status,
            "status for an unknown message, or an older report"
        );
    }
    Ok(StatusCode::NO_CONTENT)
}
