//! The REST API (`/api/v1`): JSON, a bearer API key scoped to one account, cursor
//! pagination `{"data": [...], "next_cursor": ...}`, errors as `application/problem+json`.
//! Every query is scoped to the key's account, so another account's ids answer 404.

mod auth;
mod error;
mod idempotency;
pub mod openapi;
mod resources;

use axum::Router;

use crate::AppState;

pub use auth::{ApiAccount, key_hash, new_key};
pub use error::ApiError;

pub fn routes(state: AppState) -> Router<AppState> {
    let api = resources::routes().route_layer(axum::middleware::from_fn_with_state(
        state,
        idempotency::idempotency,
    ));
    Router::new()
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(openapi::serve_document),
        )
        .route("/api/v1/docs", axum::routing::get(openapi::serve_docs))
        .nest("/api/v1", api)
}

/// Cursor pagination: `?cursor=` (an opaque position from the last page) and `?limit=`.
#[derive(Debug, serde::Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

impl PageQuery {
    pub fn parse(&self) -> Result<(Option<i64>, i64), ApiError> {
        let before =
            match self.cursor.as_deref().filter(|c| !c.is_empty()) {
                Some(c) => Some(c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::invalid("cursor", "not a cursor this API returned")
                })?),
                None => None,
            };
        let limit = match self.limit.as_deref() {
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    )
                })?,
            None => DEFAULT_LIMIT,
        };
        Ok((before, limit))
    }
}

/// A page of `items`; the cursor is the id of the last one when the page is full.
pub fn page<T: serde::Serialize>(
    items: Vec<T>,
    ids: impl Fn(&T) -> i64,
    limit: i64,
) -> serde_json::Value {
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|i| ids(i).to_string()))
        .flatten();
    serde_json::json!({ "data": items, "next_cursor": next })
}

/// RFC 3339, or null.
pub fn time(ms: Option<i64>) -> Option<String> {
    ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map(|t| t.to_string())
}
