//! `Idempotency-Key` on every POST of the API: the first request with a key runs and its
//! answer is kept; repeats get that answer without running again; a repeat while the first
//! is still running gets 409. Failed requests (non-2xx) free the key for a retry.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use textback_store::StoredResponse;

use super::{ApiAccount, ApiError};
use crate::AppState;

/// Largest answer kept for replay.
const MAX_KEPT: usize = 1024 * 1024;

pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return next.run(request).await;
    };
    if key.len() > 255 {
        return ApiError::invalid("Idempotency-Key", "at most 255 characters").into_response();
    }
    let (mut parts, body) = request.into_parts();
    let account = match ApiAccount::from_request_parts(&mut parts, &state).await {
        Ok(ApiAccount(a)) => a,
        Err(e) => return e.into_response(),
    };
    // Scoped to the account and the route, so one key cannot replay another endpoint.
    let scoped = format!("{} {}", parts.uri.path(), key);
    match state
        .store
        .reserve_idempotency_key(account, &scoped, state.now_ms())
        .await
    {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Err(())) => {
            return ApiError::Conflict(
                "a request with this Idempotency-Key is still running".into(),
            )
            .into_response();
        }
        Ok(Ok(Some(prev))) => {
            let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
            return (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                prev.body,
            )
                .into_response();
        }
        Ok(Ok(None)) => {}
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if !status.is_success() {
        let _ = state
            .store
            .finish_idempotency_key(account, &scoped, None)
            .await;
        return response;
    }
    let (mut head, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_KEPT).await {
        Ok(b) => b,
        Err(_) => {
            let _ = state
                .store
                .finish_idempotency_key(account, &scoped, None)
                .await;
            return ApiError::Malformed(
                "the answer was too large to keep for Idempotency-Key".into(),
            )
            .into_response();
        }
    };
    let kept = StoredResponse {
        status: status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    if let Err(e) = state
        .store
        .finish_idempotency_key(account, &scoped, Some(&kept))
        .await
    {
        tracing::error!(error = %e, "could not keep the answer for an Idempotency-Key");
    }
    head.headers
        .insert("idempotent-replayed", HeaderValue::from_static("false"));
    Response::from_parts(head, Body::from(bytes))
}
