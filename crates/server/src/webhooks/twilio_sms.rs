//! Twilio messaging webhooks: inbound texts and the delivery status of ours.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use textback_carriers::twilio::twiml;
use textback_core::Phone;
use textback_core::carrier_error::describe;
use textback_core::consent::{Intent, classify};
use textback_core::phone::redact;
use textback_store::{ConsentChange, DeliveryReport, InboundMessage};

use super::TwilioForm;
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

/// The HELP answer: who is texting, and how to stop it.
pub fn help_reply(business: &str, number: &str) -> String {
    format!(
        "{business}: reply to this message and our team will get back to you, or call {number}. Reply STOP to opt out."
    )
}

/// A text to one of our numbers: it joins the contact's conversation; keywords and
/// free-text requests change consent (with the message kept as evidence); HELP and INFO
/// get one answer naming the business. Twilio acts on STOP itself; we record it so that
/// nothing of ours is sent afterwards either.
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
    let Some(route) = state.store.route_for_number(to.as_str()).await? else {
        tracing::warn!(to = %redact(to.as_str()), "text to a number no account owns");
        return Ok(twiml_response(twiml::connect()));
    };
    let media_count: usize = form
        .get("NumMedia")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(MAX_MEDIA);
    let media: Vec<String> = (0..media_count)
        .filter_map(|i| form.get(&format!("MediaUrl{i}")).map(str::to_owned))
        .collect();
    let intent = classify(body);
    let consent = match intent {
        Some(Intent::OptOutKeyword) => Some(ConsentChange {
            opted_out: true,
            source: "keyword".into(),
            detail: body.trim().to_owned(),
        }),
        Some(Intent::OptOutRequest(phrase)) => Some(ConsentChange {
            opted_out: true,
            source: "free_text".into(),
            detail: phrase.to_owned(),
        }),
        Some(Intent::OptIn) => Some(ConsentChange {
            opted_out: false,
            source: "keyword".into(),
            detail: body.trim().to_owned(),
        }),
        Some(Intent::Help) | None => None,
    };
    let reply =
        matches!(intent, Some(Intent::Help)).then(|| help_reply(&route.account_name, to.as_str()));
    let msg = InboundMessage {
        account_id: route.number.account_id,
        number_id: route.number.id,
        from_phone: from.to_string(),
        to_phone: to.to_string(),
        body: body.to_owned(),
        media,
        carrier: "twilio".to_owned(),
        carrier_message_id: sid.to_owned(),
        consent,
        reply,
    };
    let outcome = state
        .store
        .record_inbound_message(&msg, state.now_ms())
        .await?;
    if let (Some(change), false) = (&msg.consent, outcome.duplicate) {
        tracing::info!(
            account = %route.account_slug,
            from = %from.redacted(),
            opted_out = change.opted_out,
            source = %change.source,
            "consent changed by an inbound text"
        );
    }
    Ok(twiml_response(match outcome.reply {
        Some(text) => twiml::message(&text),
        None => twiml::connect(),
    }))
}

/// `StatusCallback` of each text we send: queued → sent → delivered / undelivered / failed,
/// with the error code understood.
async fn message_status(
    State(state): State<AppState>,
    form: TwilioForm,
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
    let effect = error_code.and_then(contact_effect);
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
