//! Twilio messaging webhooks. For now the delivery status callback; inbound texts join
//! conversations with the conversations work (issue #3).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

use super::TwilioForm;
use crate::{AppState, WebhookError};

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/twilio/sms/status", post(message_status))
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
