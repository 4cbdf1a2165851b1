//! Settings (owners only): business info, opening hours with a preview in the account's
//! zone, quiet hours, the text back with the live linter, cooldown, do-not-text list; the
//! numbers and the team shown.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use textback_core::BusinessHours;
use textback_store::{AccountRecord, Role};

use super::pages::{account_of, frame, zone};
use super::session::SignedIn;
use super::{WebError, render, render_status};
use crate::AppState;
use crate::account_settings::{SettingsChange, apply, save};

const DAYS: [(&str, &str); 7] = [
    ("mon", "Monday"),
    ("tue", "Tuesday"),
    ("wed", "Wednesday"),
    ("thu", "Thursday"),
    ("fri", "Friday"),
    ("sat", "Saturday"),
    ("sun", "Sunday"),
];

#[derive(Deserialize, Default, serde::Serialize)]
pub struct SettingsForm {
    #[serde(default, skip_serializing)]
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    booking_link: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    quiet_hours: String,
    #[serde(default)]
    cooldown: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    do_not_text: String,
    #[serde(default, serialize_with = "as_bool")]
    text_back_enabled: Option<String>,
    #[serde(flatten)]
    hours: BTreeMap<String, String>,
}

fn as_bool<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.is_some())
}

fn form_of(a: &AccountRecord) -> SettingsForm {
    SettingsForm {
        csrf: None,
        name: a.name.clone(),
        booking_link: a.booking_link.clone().unwrap_or_default(),
        time_zone: a.time_zone.clone(),
        quiet_hours: a.quiet_hours.clone(),
        cooldown: textback_core::HumanDuration::from_secs(a.cooldown_secs.max(0) as u64)
            .to_string(),
        message: a.text_back_template.clone(),
        do_not_text: a.do_not_text.join("\n"),
        text_back_enabled: a.text_back_enabled.then(|| "on".to_owned()),
        hours: DAYS
            .iter()
            .map(|(k, _)| {
                (
                    format!("hours_{k}"),
                    a.business_hours.get(*k).cloned().unwrap_or_default(),
                )
            })
            .collect(),
    }
}

pub(super) fn owner_only(signed_in: &SignedIn) -> Result<(), WebError> {
    if signed_in.session.user.role == Role::Owner {
        Ok(())
    } else {
        Err(WebError::OwnerOnly)
    }
}

/// What every owner-only form checks first: the session's form token, an owner, and their
/// account.
pub(super) async fn owner_account(
    state: &AppState,
    signed_in: &SignedIn,
    csrf: Option<&str>,
) -> Result<AccountRecord, WebError> {
    if !signed_in.csrf_ok(csrf) {
        return Err(WebError::Csrf);
    }
    owner_only(signed_in)?;
    account_of(state, signed_in).await
}

/// "It is Tue 9:00 AM in America/Chicago: open now."
fn preview(a: &AccountRecord, now: jiff::Timestamp) -> String {
    let tz = zone(a);
    let local = tz.to_datetime(now).strftime("%a %-I:%M %p").to_string();
    let open = BusinessHours::from_map(&a.business_hours).is_ok_and(|h| h.is_open(now, &tz));
    format!(
        "It is {local} in {}: {}.",
        a.time_zone,
        if open { "open now" } else { "closed now" }
    )
}

struct Outcome<'a> {
    status: StatusCode,
    saved: bool,
    error: Option<String>,
    warnings: Vec<String>,
    form: &'a SettingsForm,
}

async fn page(
    state: &AppState,
    signed_in: &SignedIn,
    account: &AccountRecord,
    out: Outcome<'_>,
) -> Result<Response, WebError> {
    let numbers: Vec<minijinja::Value> = state
        .store
        .numbers_of_account(account.id)
        .await?
        .iter()
        .map(|n| {
            context! {
                e164 => &n.e164,
                ring_to => n.ring_to.join(", "),
                ring_seconds => n.ring_seconds,
                call_screening => n.call_screening,
                registration => &n.registration,
                active => n.active,
            }
        })
        .collect();
    let team: Vec<minijinja::Value> = state
        .store
        .users_of_account(account.id)
        .await?
        .iter()
        .map(|u| context! { name => &u.name, email => &u.email, role => u.role.as_str() })
        .collect();
    let days: Vec<minijinja::Value> = DAYS
        .iter()
        .map(|(k, label)| {
            context! {
                key => *k,
                label => *label,
                value => out.form.hours.get(&format!("hours_{k}")).cloned().unwrap_or_default(),
            }
        })
        .collect();
    render_status(
        out.status,
        "settings.html",
        context! {
            v => minijinja::Value::from(minijinja::value::Serde(out.form)),
            days => days,
            preview => preview(account, state.clock.now()),
            numbers => numbers,
            team => team,
            saved => out.saved,
            error => out.error,
            warnings => out.warnings,
            ..frame(signed_in, account, "settings", "Settings")
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    owner_only(&signed_in)?;
    let account = account_of(&state, &signed_in).await?;
    let form = form_of(&account);
    let out = Outcome {
        status: StatusCode::OK,
        saved: false,
        error: None,
        warnings: vec![],
        form: &form,
    };
    page(&state, &signed_in, &account, out).await
}

pub async fn update(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<SettingsForm>,
) -> Result<Response, WebError> {
    let mut account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let hours: BTreeMap<String, String> = DAYS
        .iter()
        .map(|(k, _)| {
            let v = form
                .hours
                .get(&format!("hours_{k}"))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .unwrap_or("closed");
            ((*k).to_owned(), v.to_owned())
        })
        .collect();
    let change = SettingsChange {
        name: Some(form.name.clone()),
        booking_link: Some(Some(form.booking_link.clone())),
        time_zone: Some(form.time_zone.trim().to_owned()),
        business_hours: Some(hours),
        quiet_hours: Some(form.quiet_hours.trim().to_owned()),
        cooldown: Some(form.cooldown.trim().to_owned()),
        text_back_message: Some(form.message.trim().to_owned()),
        text_back_enabled: Some(form.text_back_enabled.is_some()),
        do_not_text: Some(
            form.do_not_text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        landline_lookup: None,
    };
    match apply(&mut account, &change) {
        Ok(warnings) => {
            save(&state, &account, &change).await?;
            let fresh = form_of(&account);
            let out = Outcome {
                status: StatusCode::OK,
                saved: true,
                error: None,
                warnings: warnings.into_iter().map(|w| w.message).collect(),
                form: &fresh,
            };
            page(&state, &signed_in, &account, out).await
        }
        Err(e) => {
            let out = Outcome {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                saved: false,
                error: Some(format!("{} — {}", field_label(&e.field), e.message)),
                warnings: vec![],
                form: &form,
            };
            page(&state, &signed_in, &account, out).await
        }
    }
}

fn field_label(field: &str) -> &'static str {
    match field {
        "name" => "Business name",
        "booking_link" => "Booking link",
        "time_zone" => "Time zone",
        "business_hours" => "Opening hours",
        "quiet_hours" => "Quiet hours",
        "cooldown" => "Do not text the same caller again within",
        "do_not_text" => "Never text these numbers",
        "text_back.message" => "Text back message",
        _ => "A setting",
    }
}

/// The doctor's checks for this account, as a page.
pub async fn doctor(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    owner_only(&signed_in)?;
    let account = account_of(&state, &signed_in).await?;
    let facts = crate::doctor::gather(
        &state.store,
        state.twilio.as_ref(),
        &state.public_url,
        Some(&account.slug),
        state.now_ms(),
    )
    .await?;
    let findings: Vec<crate::doctor::Finding> =
        facts.iter().flat_map(crate::doctor::evaluate).collect();
    let failing = findings
        .iter()
        .filter(|f| f.status == crate::doctor::Status::Fail)
        .count();
    let summary = match failing {
        0 => "Nothing is failing.".to_owned(),
        1 => "1 check is failing: see below.".to_owned(),
        n => format!("{n} checks are failing: see below."),
    };
    let view: Vec<minijinja::Value> = findings
        .iter()
        .map(|f| {
            context! {
                label => f.status.label(),
                status => f.status.label().to_lowercase(),
                number => &f.number,
                check => f.check,
                message => &f.message,
                fix => &f.fix,
            }
        })
        .collect();
    Ok(render(
        "doctor.html",
        context! {
            summary => summary,
            findings => view,
            ..frame(&signed_in, &account, "settings", "Doctor")
        },
    )?
    .into_response())
}
