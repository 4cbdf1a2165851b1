//! Twilio messaging webhooks: inbound texts and the delivery status of ours.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use textback_carriers::twilio::twiml;
use textback_core::Phone;
use textback_core::keywords::{Keyword, keyword};
use textback_core::phone::redact;
use textback_store::InboundMessage;

use super::TwilioForm;
use crate::{AppState, WebhookError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/twilio/sms", post(inbound))
        .route("/webhooks/twilio/sms/status", post(message_status))
}

/// A text to one of our numbers. Stored with its contact; a STOP-family keyword opts the
/// contact out at once (Twilio itself answers the keyword), START and friends opt back in.
/// Conversations, free-text opt-outs and HELP replies come with issue #3.
async fn inbound(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<Response, WebhookError> {
    let sid = form.require("MessageSid")?;
    let to = Phone::parse(form.require("To")?)
        .map_err(|e| WebhookError::BadRequest(format!("To: {e}")))?;
    let from = Phone::parse(form.require("From")?)
        .map_err(|e| WebhookError::BadRequest(format!("From: {e}")))?;
    let body = form.get("Body").unwrap_or_default();
    let empty = (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        twiml::connect(),
    )
        .into_response();
    let Some(route) = state.store.route_for_number(to.as_str()).await? else {
        tracing::warn!(to = %redact(to.as_str()), "text to a number no account owns");
        return Ok(empty);
    };
    let opt_out = match keyword(body) {
        Some(Keyword::OptOut) => Some(true),
        Some(Keyword::OptIn) => Some(false),
        Some(Keyword::Help) | None => None,
    };
    let msg = InboundMessage {
        account_id: route.number.account_id,
        number_id: route.number.id,
        from_phone: from.to_string(),
        to_phone: to.to_string(),
        body: body.to_owned(),
        carrier: "twilio".to_owned(),
        carrier_message_id: sid.to_owned(),
        opt_out,
    };
    state
        .store
        .record_inbound_message(&msg, state.now_ms())
        .await?;
    if let Some(out) = opt_out {
        tracing::info!(account = %route.account_slug, from = %from.redacted(), opted_out = out, "opt keyword received");
    }
    Ok(empty)
}

/// `StatusCallback` of each text we send: queued → sent → delivered / undelivered / failed.
async fn message_status(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, WebhookError> {
    let sid = form.require("MessageSid")?;
    let status = form.require("MessageStatus")?;
    let error_code =
        match form.get("ErrorCode").filter(|c| !c.is_empty()) {
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                WebhookError::BadRequest(format!("ErrorCode {c:?} is not a number"))
            })?),
            None => None,
        };
    let known = state
        .store
        .record_delivery_status(sid, status, error_code, state.now_ms())
        .await?;
    if !known {
        tracing::debug!(
            message_sid = sid,
            "status for a message we do not know (or an older report)"
        );
    }
    Ok(StatusCode::NO_CONTENT)
}
