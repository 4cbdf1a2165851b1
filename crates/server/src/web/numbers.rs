//! Numbers (owners only): for each business number, the team phones it rings, how long it
//! rings before the call counts as missed, call screening, and its texting registration.
//! Adding or moving a number happens with the carrier and `textback apply`; this page
//! changes how an existing one rings.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use textback_core::ringing;
use textback_store::{AccountRecord, NumberRecord};

use super::pages::{account_of, frame};
use super::session::SignedIn;
use super::settings::{owner_account, owner_only};
use super::{WebError, parse_id, render_status};
use crate::AppState;

/// What the registration state means for texting, in plain words.
fn registration_words(state: &str) -> &'static str {
    match state {
        "approved" => "Registered: carriers deliver its texts.",
        "pending" => {
            "Registration pending: carriers may filter or block its texts until it is approved."
        }
        "rejected" => {
            "Registration rejected: US carriers block its texts. Fix the registration in the carrier's console."
        }
        _ => {
            "Not registered: US carriers block texts from unregistered numbers. Register it in the carrier's console."
        }
    }
}

#[derive(Deserialize)]
pub struct NumberForm {
    csrf: Option<String>,
    #[serde(default)]
    ring_to: String,
    #[serde(default)]
    ring_seconds: String,
    call_screening: Option<String>,
}

/// A number's card: its saved values, or what was just typed when saving failed.
struct Edited<'a> {
    id: i64,
    form: &'a NumberForm,
    error: Option<String>,
}

async fn page(
    state: &AppState,
    signed_in: &SignedIn,
    account: &AccountRecord,
    edited: Option<Edited<'_>>,
    saved: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let numbers: Vec<minijinja::Value> = state
        .store
        .numbers_of_account(account.id)
        .await?
        .iter()
        .map(|n| {
            let mine = edited.as_ref().filter(|e| e.id == n.id);
            context! {
                id => n.id,
                e164 => &n.e164,
                carrier => &n.carrier,
                active => n.active,
                registration => &n.registration,
                registration_words => registration_words(&n.registration),
                ring_to => mine.map_or_else(|| n.ring_to.join("\n"), |e| e.form.ring_to.clone()),
                ring_seconds => mine.map_or_else(|| n.ring_seconds.to_string(), |e| e.form.ring_seconds.clone()),
                call_screening => mine.map_or(n.call_screening, |e| e.form.call_screening.is_some()),
                error => mine.and_then(|e| e.error.clone()),
            }
        })
        .collect();
    render_status(
        status,
        "numbers.html",
        context! {
            numbers => numbers,
            saved => saved,
            ..frame(signed_in, account, "settings", "Numbers")
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    owner_only(&signed_in)?;
    let account = account_of(&state, &signed_in).await?;
    page(&state, &signed_in, &account, None, None, StatusCode::OK).await
}

/// Checks a number's form: the new ring plan, or what is wrong with it.
fn checked(n: &NumberRecord, form: &NumberForm) -> Result<NumberRecord, String> {
    let ring: Vec<String> = form
        .ring_to
        .split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let ring_to = ringing::team_phones(&n.e164, &ring).map_err(|e| e.to_string())?;
    let secs: u64 = form
        .ring_seconds
        .trim()
        .trim_end_matches('s')
        .parse()
        .map_err(|_| {
            format!(
                "ring time {:?} is not a number of seconds",
                form.ring_seconds
            )
        })?;
    let secs = ringing::ring_seconds(secs).map_err(|e| e.to_string())?;
    Ok(NumberRecord {
        ring_to,
        ring_seconds: secs as i64,
        call_screening: form.call_screening.is_some(),
        ..n.clone()
    })
}

pub async fn update(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<NumberForm>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let id = parse_id(&raw, "number")?;
    let number = state
        .store
        .numbers_of_account(account.id)
        .await?
        .into_iter()
        .find(|n| n.id == id)
        .ok_or(WebError::NotFound("number"))?;
    match checked(&number, &form) {
        Ok(changed) => {
            state.store.save_number(&changed, state.now_ms()).await?;
            // The voice webhook rings from the cache when the database is down: keep it true.
            if let Some(route) = state.store.route_for_number(&changed.e164).await? {
                state.routes.remember(&route);
            }
            page(
                &state,
                &signed_in,
                &account,
                None,
                Some(&changed.e164),
                StatusCode::OK,
            )
            .await
        }
        Err(why) => {
            let edited = Edited {
                id,
                form: &form,
                error: Some(why),
            };
            page(
                &state,
                &signed_in,
                &account,
                Some(edited),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}
