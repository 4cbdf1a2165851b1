//! "Send a test call": plays a missed call from a fictional number through the real
//! webhook handlers (signed like the carrier signs them), then shows what it produced —
//! the text back, the callback task, the tags — as the workers get to it.

use axum::Form;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use textback_store::{TaskFilter, TaskQuery};
use tower::ServiceExt;

use super::pages::{account_of, call_card, frame};
use super::session::{CsrfForm, SignedIn};
use super::{WebError, render};
use crate::AppState;

pub use textback_core::phone::TEST_CALLER;

/// Sends one signed carrier webhook through the app's own webhook routes.
async fn post_webhook(
    state: &AppState,
    path: &str,
    params: &[(&str, &str)],
) -> Result<(), WebError> {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = textback_carriers::twilio::signature::sign(
        &state.signature.auth_token,
        &state.public(path),
        &owned,
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", signature)
        .body(Body::from(body))
        .map_err(|e| WebError::Template(format!("test call request: {e}")))?;
    let response = crate::webhooks::routes()
        .with_state(state.clone())
        .oneshot(request)
        .await
        .map_err(|e| WebError::Template(format!("test call: {e}")))?;
    if !response.status().is_success() {
        return Err(WebError::Template(format!(
            "the {path} webhook answered {}",
            response.status()
        )));
    }
    Ok(())
}

pub async fn start(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let account = account_of(&state, &signed_in).await?;
    let number = state
        .store
        .numbers_of_account(account.id)
        .await?
        .into_iter()
        .find(|n| n.active)
        .ok_or(WebError::NotFound("active phone number"))?;
    let sid = format!(
        "CA{}",
        textback_core::secret::random_token(32).to_lowercase()
    );
    let base = [
        ("CallSid", sid.as_str()),
        ("From", TEST_CALLER),
        ("To", number.e164.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p: Vec<(&str, &str)> = base.to_vec();
        p.extend_from_slice(extra);
        p
    };
    post_webhook(
        &state,
        "/webhooks/twilio/voice",
        &with(&[("CallStatus", "ringing"), ("Direction", "inbound")]),
    )
    .await?;
    post_webhook(
        &state,
        "/webhooks/twilio/voice/dial-status",
        &with(&[
            ("CallStatus", "in-progress"),
            ("DialCallStatus", "no-answer"),
        ]),
    )
    .await?;
    post_webhook(
        &state,
        "/webhooks/twilio/voice/status",
        &with(&[("CallStatus", "completed"), ("CallDuration", "20")]),
    )
    .await?;
    Ok(Redirect::to(&format!("/test-call/{sid}")).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(sid): Path<String>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let call = state
        .store
        .call_by_carrier_id(&sid)
        .await?
        .filter(|c| c.account == account.slug && c.caller == TEST_CALLER)
        .ok_or(WebError::NotFound("test call"))?;
    let tz = super::pages::zone(&account);
    let card = call_card(&call, &tz);
    let text = state
        .store
        .messages_for_call(call.id)
        .await?
        .into_iter()
        .find(|m| m.direction == "outbound")
        .map(|m| m.body);
    let of_call = TaskQuery {
        account_slug: Some(&account.slug),
        filter: TaskFilter::All,
        call_id: Some(call.id),
        ..TaskQuery::default()
    };
    let task = state
        .store
        .find_tasks(&of_call, 1)
        .await?
        .into_iter()
        .next()
        .map(|t| t.title);
    let tags = state.store.contact_tags(account.id, TEST_CALLER).await?;
    let decided = matches!(
        call.text_back_status.as_deref(),
        Some("sent" | "delivered" | "sandbox" | "failed" | "undelivered" | "skipped" | "canceled")
    );
    let done = decided && (task.is_some() || text.is_none());
    Ok(render(
        "test_call.html",
        context! {
            caller => TEST_CALLER,
            number => &call.number,
            outcome => match call.outcome.as_deref() {
                Some("missed" | "voicemail") => "Missed",
                Some("answered") => "Answered",
                _ => "Ringing…",
            },
            text => text,
            task => task,
            tags => tags,
            done => done,
            ..minijinja::value::merge_maps([card, frame(&signed_in, &account, "today", "Test call")])
        },
    )?
    .into_response())
}
