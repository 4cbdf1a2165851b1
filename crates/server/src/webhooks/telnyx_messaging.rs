//! Telnyx messaging webhooks (JSON, Ed25519-signed): inbound texts, and the status of ours.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use textback_carriers::telnyx::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use textback_carriers::telnyx::{MessagingEvent, parse_messaging_event};
use textback_core::Phone;
use textback_core::carrier_error::describe_telnyx;
use textback_store::DeliveryReport;

use super::inbound::{Inbound, record_inbound};
use crate::sender::contact_effect;
use crate::{AppState, WebhookError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/telnyx/messaging", post(messaging))
}

/// Telnyx's recipient statuses in the words our messages use (Twilio's), so the inbox,
/// reports and the never-backwards rule treat both carriers alike.
fn our_status(telnyx: &str) -> &str {
    match telnyx {
        "queued" | "sending" => "queued",
        "sent" | "delivery_unconfirmed" => "sent",
        "delivered" => "delivered",
        "sending_failed" => "failed",
        "delivery_failed" | "expired" => "undelivered",
        other => other,
    }
}

async fn messaging(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, WebhookError> {
    let Some(key) = &state.telnyx_key else {
        return Err(WebhookError::Refused(
            "Telnyx is not configured on this server (TELNYX_PUBLIC_KEY)".into(),
        ));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now_secs = state.clock.now().as_second();
    key.verify(
        header(SIGNATURE_HEADER),
        header(TIMESTAMP_HEADER),
        &body,
        now_secs,
    )
    .map_err(|e| WebhookError::Refused(e.to_string()))?;
    match parse_messaging_event(&body).map_err(WebhookError::BadRequest)? {
        MessagingEvent::Received {
            id,
            from,
            to,
            text,
            media,
        } => {
            let from =
                Phone::parse(&from).map_err(|e| WebhookError::BadRequest(format!("from: {e}")))?;
            let to = Phone::parse(&to).map_err(|e| WebhookError::BadRequest(format!("to: {e}")))?;
            let inbound = Inbound {
                carrier: "telnyx",
                carrier_message_id: &id,
                from: &from,
                to: &to,
                body: &text,
                media,
                reply_by_api: true,
            };
            record_inbound(&state, inbound).await?;
        }
        MessagingEvent::Status {
            id,
            status,
            error_code,
            error,
        } => {
            let report = DeliveryReport {
                carrier_message_id: id,
                carrier_status: our_status(&status).to_owned(),
                error_code,
                error_reason: error_code
                    .map(|c| describe_telnyx(c).reason.to_owned())
                    .or(error),
                effect: error_code.and_then(|c| contact_effect("telnyx", c)),
            };
            state
                .store
                .record_delivery_report(&report, state.now_ms())
                .await?;
        }
        MessagingEvent::Other(kind) => {
            tracing::debug!(event = %kind, "Telnyx event acknowledged and ignored");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
