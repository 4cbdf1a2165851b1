//! Browser sessions: the cookie, the signed-in extractor, CSRF tokens and the sign-in
//! rate limit.
//!
//! The cookie holds a random token; the database holds only its SHA-256. Every
//! state-changing form carries the session's CSRF token (checked in constant time); the
//! sign-in form, which has no session yet, uses a double-submit cookie instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use textback_store::Session;

use crate::AppState;
use crate::api::key_hash;

pub const SESSION_COOKIE: &str = "textback_session";
pub const LOGIN_CSRF_COOKIE: &str = "textback_login_csrf";
/// Sessions last 30 days: the owner signs in on a phone once, not every morning.
pub const SESSION_DAYS: i64 = 30;

/// A request from a signed-in team member. Extracting it from a request without a live
/// session redirects to the sign-in page.
pub struct SignedIn {
    pub session: Session,
    pub token_hash: String,
}

pub struct NotSignedIn;

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(NotSignedIn.into_response());
        };
        let token_hash = key_hash(&token);
        match state.store.session(&token_hash, state.now_ms()).await {
            Ok(Some(session)) => Ok(SignedIn {
                session,
                token_hash,
            }),
            Ok(None) => Err(NotSignedIn.into_response()),
            Err(e) => Err(super::WebError::Store(e).into_response()),
        }
    }
}

/// A form that carries only the session's token (sign-out, test call, on/off switches).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

impl SignedIn {
    /// Whether a submitted form token is this session's.
    pub fn csrf_ok(&self, submitted: Option<&str>) -> bool {
        submitted.is_some_and(|s| constant_time_eq(s, &self.session.csrf_token))
    }
}

/// The value of one cookie in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` header: HttpOnly and SameSite=Lax always, Secure when the server is
/// reached over HTTPS (a Secure cookie over plain http on localhost would never be sent).
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let raw =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&raw).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failed sign-ins per email: five in fifteen minutes, then that email waits. Keyed by
/// email rather than address because behind a proxy every browser shares one address.
#[derive(Clone, Default)]
pub struct LoginLimiter {
    failures: Arc<Mutex<HashMap<String, Vec<i64>>>>,
}

pub const MAX_FAILURES: usize = 5;
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

impl LoginLimiter {
    /// `Some(minutes)` to wait if this email is locked out now.
    pub fn locked_for(&self, email: &str, now_ms: i64) -> Option<i64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map.entry(email.to_lowercase()).or_default();
        entry.retain(|t| now_ms - t < WINDOW_MS);
        if entry.len() >= MAX_FAILURES {
            let oldest = entry.iter().min().copied().unwrap_or(now_ms);
            Some(((oldest + WINDOW_MS - now_ms) / 60_000).max(1))
        } else {
            None
        }
    }

    pub fn failed(&self, email: &str, now_ms: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a spray of made-up emails.
        if map.len() > 10_000 {
            map.retain(|_, v| v.iter().any(|t| now_ms - t < WINDOW_MS));
        }
        map.entry(email.to_lowercase()).or_default().push(now_ms);
    }

    pub fn succeeded(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&email.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_an_email_for_the_rest_of_the_window() {
        let l = LoginLimiter::default();
        for i in 0..4 {
            l.failed("Owner@Example.com", i * 1000);
        }
        assert_eq!(l.locked_for("owner@example.com", 5000), None);
        l.failed("owner@example.com", 5000);
        assert_eq!(l.locked_for("owner@example.com", 6000), Some(14));
        assert_eq!(l.locked_for("someone@example.com", 6000), None);
        assert_eq!(l.locked_for("owner@example.com", WINDOW_MS + 1000), None);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; textback_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "missing"), None);
        assert!(constant_time_eq("abc", "abc") && !constant_time_eq("abc", "abd"));
    }
}
