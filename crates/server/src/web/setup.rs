//! First run: on a server nobody can sign in to yet, `/setup` creates the business, its
//! number, the recommended missed-call workflow and the owner in one form, then signs the
//! owner in. It needs the setup link the server logs at start, so a freshly exposed server
//! cannot be claimed by whoever finds it first.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use textback_core::account::{AccountSlug, TimeZoneName};
use textback_core::account_file::DEFAULT_MESSAGE;
use textback_core::hours::BusinessHours;
use textback_core::lint::{LintInput, MessageKind, Severity, lint};
use textback_core::phone::{Country, Phone};
use textback_core::workflow::WorkflowSpec;
use textback_store::{AccountRecord, NumberRecord, Role, Store, StoreError};

use super::session::constant_time_eq;
use super::{WebError, password, render, render_status};
use crate::AppState;

const SETUP_TOKEN_KEY: &str = "web_setup_token";

/// The setup token, made on first use; `None` once someone can sign in. `textback
/// setup-link` prints it as a link (it is never logged).
pub async fn setup_token(store: &Store) -> Result<Option<String>, StoreError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    Ok(Some(
        store
            .setting_or_insert(SETUP_TOKEN_KEY, || textback_core::secret::random_token(24))
            .await?,
    ))
}

#[derive(Deserialize, Default, serde::Serialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default)]
    business: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    hours: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    ring: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

async fn token_ok(state: &AppState, given: &str) -> Result<Option<bool>, WebError> {
    Ok(setup_token(&state.store)
        .await?
        .map(|t| !given.is_empty() && constant_time_eq(&t, given)))
}

fn page(
    state: &AppState,
    status: StatusCode,
    token_ok: bool,
    form: &SetupForm,
    errors: &[String],
) -> Result<Response, WebError> {
    render_status(
        status,
        "setup.html",
        context! {
            title => "Set up Textback",
            token_ok => token_ok,
            token => &form.token,
            v => minijinja::Value::from(minijinja::value::Serde(form)),
            errors => errors.to_vec(),
            sandbox => state.twilio.is_none(),
        },
    )
}

pub async fn form(State(state): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let ok = match token_ok(&state, &token).await {
        Ok(Some(ok)) => ok,
        Ok(None) => return Redirect::to("/login").into_response(),
        Err(e) => return e.into_response(),
    };
    let form = SetupForm {
        token,
        time_zone: "America/Chicago".into(),
        hours: "08:00-17:00".into(),
        number: if state.twilio.is_none() {
            "+15125550100".into()
        } else {
            String::new()
        },
        message: DEFAULT_MESSAGE.into(),
        ..SetupForm::default()
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    page(&state, status, ok, &form, &[]).unwrap_or_else(IntoResponse::into_response)
}

/// Everything the form asks, checked before anything is written.
struct Checked {
    account: AccountRecord,
    number: Phone,
    ring: Phone,
    email: String,
    password_hash: String,
}

async fn check(state: &AppState, f: &SetupForm) -> Result<Result<Checked, Vec<String>>, WebError> {
    let mut errors = Vec::new();
    if f.name.trim().is_empty() {
        errors.push("Your name is empty.".to_owned());
    }
    let email = textback_store::normalize_email(&f.email).unwrap_or_else(|| {
        errors.push(format!("{:?} is not an email address.", f.email.trim()));
        String::new()
    });
    let business = f.business.trim();
    let slug: String = business
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug = match AccountSlug::parse(&slug) {
        Ok(s) if !business.is_empty() => Some(s),
        _ => {
            errors.push("The business name needs at least one letter or digit.".to_owned());
            None
        }
    };
    if let Some(s) = &slug
        && state.store.account_by_slug(s.as_str()).await?.is_some()
    {
        errors.push(format!(
            "An account called {:?} already exists.",
            s.as_str()
        ));
    }
    let tz = TimeZoneName::parse(f.time_zone.trim())
        .map_err(|e| errors.push(format!("Time zone: {e}.")))
        .ok();
    let hours_map: BTreeMap<String, String> = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| ((*d).to_owned(), f.hours.trim().to_owned()))
        .collect();
    if let Err(e) = BusinessHours::from_map(&hours_map) {
        errors.push(format!("Opening hours: {e}."));
    }
    let number = Phone::parse_in(&f.number, Country::US)
        .map_err(|e| errors.push(format!("The number customers call: {e}.")))
        .ok();
    if let Some(n) = &number
        && state.store.number_by_e164(n.as_str()).await?.is_some()
    {
        errors.push(format!("{} already belongs to an account.", n.as_str()));
    }
    let ring = Phone::parse_in(&f.ring, Country::US)
        .map_err(|e| errors.push(format!("The phone that rings: {e}.")))
        .ok();
    if number.is_some() && number == ring {
        errors.push("The phone that rings must not be the business number itself.".to_owned());
    }
    let report = lint(&LintInput {
        text: &f.message,
        kind: MessageKind::TextBack,
        business_name: Some(business),
        booking_link: None,
    });
    errors.extend(
        report
            .findings
            .iter()
            .filter(|x| x.severity == Severity::Error)
            .map(|x| format!("The text back: {}", x.message)),
    );
    let password_hash = match password::hash(&f.password) {
        Ok(h) => Some(h),
        Err(e) => {
            errors.push(format!("Password: {e}."));
            None
        }
    };
    match (slug, tz, number, ring, password_hash) {
        (Some(slug), Some(tz), Some(number), Some(ring), Some(password_hash))
            if errors.is_empty() =>
        {
            Ok(Ok(Checked {
                account: AccountRecord {
                    id: 0,
                    slug: slug.as_str().to_owned(),
                    name: business.to_owned(),
                    time_zone: tz.as_str().to_owned(),
                    booking_link: None,
                    business_hours: hours_map,
                    text_back_enabled: false,
                    text_back_template: f.message.trim().to_owned(),
                    cooldown_secs: 900,
                    do_not_text: vec![],
                    landline_lookup: false,
                    quiet_hours: "21:00-08:00".into(),
                },
                number,
                ring,
                email,
                password_hash,
            }))
        }
        _ => Ok(Err(errors)),
    }
}

pub async fn submit(State(state): State<AppState>, Form(form): Form<SetupForm>) -> Response {
    match submit_inner(&state, form).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn submit_inner(state: &AppState, form: SetupForm) -> Result<Response, WebError> {
    // Two browsers submitting at once must not both set up (the second would find the
    // token spent once the first has made its owner).
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = ONE_AT_A_TIME.lock().await;
    match token_ok(state, &form.token).await? {
        None => return Ok(Redirect::to("/login").into_response()),
        Some(false) => return page(state, StatusCode::FORBIDDEN, false, &form, &[]),
        Some(true) => {}
    }
    let checked = match check(state, &form).await? {
        Ok(c) => c,
        Err(errors) => {
            return page(
                state,
                StatusCode::UNPROCESSABLE_ENTITY,
                true,
                &form,
                &errors,
            );
        }
    };
    let now = state.now_ms();
    let account_id = state.store.save_account(&checked.account, now).await?;
    state
        .store
        .save_number(
            &NumberRecord {
                id: 0,
                account_id,
                e164: checked.number.as_str().to_owned(),
                carrier: "twilio".into(),
                ring_to: vec![checked.ring.as_str().to_owned()],
                ring_seconds: 20,
                call_screening: false,
                active: true,
                registration: "unregistered".into(),
            },
            now,
        )
        .await?;
    // The built-in text back stays off: the recommended workflow sends the same text and
    // adds the callback task, the tag and the follow-up.
    let message = &checked.account.text_back_template;
    let mut builtin = WorkflowSpec::builtin_text_back(message);
    builtin.active = false;
    let recommended = WorkflowSpec::recommended(message);
    for (spec, is_builtin) in [(&builtin, true), (&recommended, false)] {
        state
            .store
            .save_workflow(
                account_id,
                &spec.name,
                is_builtin,
                spec.active,
                &spec.versioned_json(),
                now,
            )
            .await?;
    }
    let created = state
        .store
        .create_user(
            account_id,
            &checked.email,
            form.name.trim(),
            Role::Owner,
            &checked.password_hash,
            now,
        )
        .await?;
    let Some(user_id) = created else {
        return page(
            state,
            StatusCode::CONFLICT,
            true,
            &form,
            &["That email already has a sign-in.".to_owned()],
        );
    };
    routes_changed(state).await;
    tracing::info!(account = %checked.account.slug, "first-run setup done");
    super::pages::start_session(state, user_id, "/?welcome=1").await
}

/// New numbers ring at once, without a restart.
async fn routes_changed(state: &AppState) {
    if let Ok(routes) = state.store.all_routes().await {
        routes.iter().for_each(|r| state.routes.remember(r));
    }
}

#[derive(Deserialize)]
pub struct LintQuery {
    business: Option<String>,
    /// `text_back` (default), `follow_up` or `reply`: the linter's rules differ by kind.
    kind: Option<String>,
}

/// The linter's verdict on a draft message, as a small HTML fragment for the live preview.
/// For signed-in people, and for the setup page while no one can sign in yet.
pub async fn lint_fragment(
    State(state): State<AppState>,
    signed_in: Result<super::session::SignedIn, Response>,
    Query(q): Query<LintQuery>,
    body: String,
) -> Response {
    if signed_in.is_err() && !matches!(state.store.user_count().await, Ok(0)) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let report = lint(&LintInput {
        text: &body,
        kind: match q.kind.as_deref() {
            Some("follow_up") => MessageKind::FollowUp,
            Some("reply") => MessageKind::Reply,
            _ => MessageKind::TextBack,
        },
        business_name: q.business.as_deref().filter(|b| !b.trim().is_empty()),
        booking_link: None,
    });
    render(
        "lint.html",
        context! {
            characters => report.characters,
            segments => report.segments,
            encoding => report.encoding,
            rendered_max => report.rendered_segments.1,
            findings => minijinja::Value::from(minijinja::value::Serde(&report.findings)),
        },
    )
    .map(IntoResponse::into_response)
    .unwrap_or_else(IntoResponse::into_response)
}
