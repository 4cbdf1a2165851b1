//! API errors as RFC 9457 problem details: a stable `type`, a `title`, the `status`, a
//! human `detail` and, for validation, the `field`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use textback_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Malformed(String),
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid API key",
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::Invalid { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed", "Malformed request"),
            ApiError::Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.kind();
        if let ApiError::Store(e) = &self {
            tracing::error!(error = %e, "API request failed on storage");
        }
        let mut body = serde_json::json!({
            "type": format!("https://textback.dev/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        if let ApiError::Invalid { field, .. } = &self {
            body["field"] = serde_json::Value::String(field.clone());
        }
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// JSON bodies that do not parse answer 400 problem+json too.
pub fn json_rejection(e: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::Malformed(e.body_text())
}

/// `Query` whose rejection is a problem+json 400.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::Malformed(e.body_text()))
    }
}

/// An optional JSON body: empty is `None`; anything else must parse (problem+json 400).
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> axum::extract::FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Malformed(e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| OptionalJson(Some(v)))
            .map_err(|e| {
                ApiError::Malformed(format!("the body is not valid JSON for this request: {e}"))
            })
    }
}
