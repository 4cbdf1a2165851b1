use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use textback_carriers::twilio::SignatureError;
use textback_store::StoreError;

/// Why a carrier webhook was refused. Rendered as plain text: the carrier only reads the
/// status code, and a person debugging with curl reads the reason.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("forbidden: {0}")]
    Signature(#[from] SignatureError),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A webhook whose signature or timestamp does not check out (Telnyx), or one for a
    /// carrier this server is not set up for.
    #[error("forbidden: {0}")]
    Refused(String),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebhookError::Signature(_) | WebhookError::Refused(_) => StatusCode::FORBIDDEN,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match &self {
            WebhookError::Store(e) => tracing::error!(error = %e, "webhook failed on storage"),
            other => tracing::warn!(reason = %other, "webhook refused"),
        }
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.to_string(),
        )
            .into_response()
    }
}
