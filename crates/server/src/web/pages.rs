//! Page handlers: sign-in, sign-out, Today.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::tz::TimeZone;
use minijinja::context;
use serde::Deserialize;
use textback_core::secret::random_token;
use textback_core::text_back::SkipReason;
use textback_store::{AccountRecord, CallView, TaskFilter, TaskQuery, TaskView};

use super::session::{
    CsrfForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE, SESSION_DAYS, SignedIn, constant_time_eq, cookie,
    set_cookie, with_cookie,
};
use super::{WebError, password, render};
use crate::AppState;
use crate::api::key_hash;

type PageResult = Result<Response, WebError>;

pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if state.store.user_count().await? == 0 {
        return Ok(
            render("no_users.html", context! { title => "Set up sign-in" })?.into_response(),
        );
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && state
            .store
            .session(&key_hash(&token), state.now_ms())
            .await?
            .is_some()
    {
        return Ok(Redirect::to("/").into_response());
    }
    login_page(&state, StatusCode::OK, "", None)
}

/// The sign-in form with a fresh double-submit token (a cookie and the same value in the
/// form), since there is no session yet to hold one.
fn login_page(
    state: &AppState,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> PageResult {
    let token = random_token(32);
    let page = render(
        "login.html",
        context! { title => "Sign in", login_csrf => &token, email => email, error => error },
    )?;
    Ok(with_cookie(
        (status, page).into_response(),
        set_cookie(state, LOGIN_CSRF_COOKIE, &token, 3600),
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: Option<String>,
    password: Option<String>,
    csrf: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let submitted = form.csrf.unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(&expected, &submitted) {
        return Err(WebError::Csrf);
    }
    let email = form.email.unwrap_or_default().trim().to_lowercase();
    let password_given = form.password.unwrap_or_default();
    let now = state.now_ms();
    if let Some(minutes) = state.login_limiter.locked_for(&email, now) {
        let message = format!(
            "Too many failed sign-ins for this email. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        );
        return login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &email,
            Some(&message),
        );
    }
    let user = state.store.user_by_email(&email).await?;
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    // Argon2 takes tens of milliseconds of CPU: off the request threads.
    let matches = tokio::task::spawn_blocking(move || password::verify(&password_given, &stored))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        state.login_limiter.failed(&email, now);
        tracing::info!("sign-in refused");
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &email,
            Some("That email and password do not match."),
        );
    };
    state.login_limiter.succeeded(&email);
    tracing::info!(user_id = user.id, "signed in");
    start_session(&state, user.id, "/").await
}

/// Signs `user_id` in: a new session, its cookie, and a redirect to `to`.
pub(super) async fn start_session(state: &AppState, user_id: i64, to: &str) -> PageResult {
    let now = state.now_ms();
    let token = random_token(43);
    let max_age = SESSION_DAYS * 24 * 3600;
    state
        .store
        .create_session(
            user_id,
            &key_hash(&token),
            &random_token(32),
            now,
            now + max_age * 1000,
        )
        .await?;
    let response = with_cookie(
        Redirect::to(to).into_response(),
        set_cookie(state, SESSION_COOKIE, &token, max_age),
    );
    Ok(with_cookie(
        response,
        set_cookie(state, LOGIN_CSRF_COOKIE, "", 0),
    ))
}

pub async fn logout(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    state
        .store
        .delete_session(&signed_in.token_hash, state.now_ms())
        .await?;
    Ok(with_cookie(
        Redirect::to("/login").into_response(),
        set_cookie(&state, SESSION_COOKIE, "", 0),
    ))
}

#[derive(Deserialize)]
pub struct TodayQuery {
    welcome: Option<String>,
}

/// How many missed calls and tasks Today lists before pointing to Calls and Tasks.
const TODAY_LIST: i64 = 50;

pub async fn today(
    State(state): State<AppState>,
    Query(q): Query<TodayQuery>,
    signed_in: Result<SignedIn, Response>,
) -> PageResult {
    let signed_in = match signed_in {
        Ok(s) => s,
        // Before anyone can sign in, `/` explains how to create the first owner.
        Err(redirect) => {
            if state.store.user_count().await? == 0 {
                return Ok(Redirect::to("/login").into_response());
            }
            return Ok(redirect);
        }
    };
    let account = account_of(&state, &signed_in).await?;
    let tz = zone(&account);
    let now = state.clock.now();
    let midnight_ms = tz
        .to_ambiguous_timestamp(
            tz.to_datetime(now)
                .date()
                .to_datetime(jiff::civil::Time::midnight()),
        )
        .compatible()
        .map(|t| t.as_millisecond())
        .unwrap_or(0);
    // A busy day lists the latest and the most urgent, and says how many there are.
    let calls: Vec<minijinja::Value> = state
        .store
        .missed_calls_since(account.id, midnight_ms, TODAY_LIST)
        .await?
        .iter()
        .map(|c| call_card(c, &tz))
        .collect();
    let call_count = state
        .store
        .count_missed_calls_since(account.id, midnight_ms)
        .await?;
    let open = TaskQuery {
        account_slug: Some(&account.slug),
        filter: TaskFilter::Open,
        ..TaskQuery::default()
    };
    let tasks: Vec<minijinja::Value> = state
        .store
        .find_tasks(&open, TODAY_LIST)
        .await?
        .into_iter()
        .map(|t| task_card(&t, &tz, now.as_millisecond()))
        .collect();
    let task_count = state.store.count_tasks(&open).await?;
    let week = crate::reports::funnel_of(&state.store, &account, 7, now.as_millisecond()).await?;
    let funnel = super::reports::funnel_cards(&serde_json::json!(week.totals));
    Ok(render(
        "today.html",
        context! {
            calls => calls,
            call_count => call_count,
            tasks => tasks,
            task_count => task_count,
            funnel => funnel,
            welcome => q.welcome.is_some(),
            ..frame(&signed_in, &account, "today", "Today")
        },
    )?
    .into_response())
}

/// The call log: every call, its outcome, and for missed ones what Textback did.
pub async fn calls(State(state): State<AppState>, signed_in: SignedIn) -> PageResult {
    let account = account_of(&state, &signed_in).await?;
    let tz = zone(&account);
    let open_tasks = state.store.open_tasks_by_call(account.id).await?;
    let calls: Vec<minijinja::Value> = state
        .store
        .calls_page(account.id, None, 200)
        .await?
        .iter()
        .map(|c| {
            let outcome = match c.outcome.as_deref() {
                Some("answered") => "Answered",
                Some("voicemail") => "Missed: left a voicemail",
                Some("missed") => "Missed",
                _ => "In progress",
            };
            let day = jiff::Timestamp::from_millisecond(c.started_at_ms)
                .map(|t| tz.to_datetime(t).strftime("%a %b %-d").to_string())
                .unwrap_or_default();
            context! {
                missed => matches!(c.outcome.as_deref(), Some("missed" | "voicemail")),
                outcome => outcome,
                day => day,
                voicemail => c.recording_url.as_deref().filter(|u| u.starts_with("https://")),
                transcript => &c.voicemail_transcript,
                task => open_tasks.get(&c.id),
                ..call_card(c, &tz)
            }
        })
        .collect();
    Ok(render(
        "calls.html",
        context! { calls => calls, ..frame(&signed_in, &account, "calls", "Calls") },
    )?
    .into_response())
}

/// The signed-in user's account.
pub(super) async fn account_of(
    state: &AppState,
    signed_in: &SignedIn,
) -> Result<AccountRecord, WebError> {
    state
        .store
        .account_by_id(signed_in.session.user.account_id)
        .await?
        .ok_or_else(|| {
            WebError::Store(textback_store::StoreError::NotFound(
                "the user's account".into(),
            ))
        })
}

/// What every signed-in page's frame needs: title, current page, who, the form token.
pub(super) fn frame(
    signed_in: &SignedIn,
    account: &AccountRecord,
    page: &str,
    title: &str,
) -> minijinja::Value {
    let user = &signed_in.session.user;
    context! {
        title => title,
        page => page,
        user => context! { name => &user.name, role => user.role.as_str() },
        account_name => &account.name,
        csrf => &signed_in.session.csrf_token,
    }
}

pub(super) fn zone(account: &AccountRecord) -> TimeZone {
    TimeZone::get(&account.time_zone).unwrap_or(TimeZone::UTC)
}

#[derive(Deserialize)]
pub struct CompleteForm {
    csrf: Option<String>,
    back: Option<String>,
}

/// Where to go after a form: a local path the form named, else Today. Only paths on this
/// site, so a crafted form cannot bounce the user elsewhere.
pub(super) fn back_to(back: Option<&str>) -> String {
    back.filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or("/")
        .to_owned()
}

/// "Done" on a callback task.
pub async fn complete_task(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CompleteForm>,
) -> PageResult {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let id = super::parse_id(&raw, "task")?;
    if state.store.task_account(id).await? != Some(signed_in.session.user.account_id) {
        return Err(WebError::NotFound("task"));
    }
    state.store.complete_task(id, state.now_ms()).await?;
    Ok(Redirect::to(&back_to(form.back.as_deref())).into_response())
}

pub(super) fn local_time(ms: i64, tz: &TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| tz.to_datetime(t).strftime("%-I:%M %p").to_string())
        .unwrap_or_default()
}

/// A missed call and what Textback did about it, in words.
pub(super) fn call_card(c: &CallView, tz: &TimeZone) -> minijinja::Value {
    let reason = c.text_back_reason.as_deref().unwrap_or("");
    let why = SkipReason::from_code(reason)
        .map(|r| r.explain().to_owned())
        .unwrap_or_else(|| reason.replace('_', " "));
    let (state, what) = match c.text_back_status.as_deref() {
        Some("sent" | "delivered") => ("texted", "Texted back".to_owned()),
        Some("queued") => ("texting", "Texting back now".to_owned()),
        Some("failed" | "undelivered") => ("failed", format!("The text back failed: {why}")),
        Some(_) => ("suppressed", format!("Not texted: {why}")),
        None => ("pending", "Deciding whether to text back".to_owned()),
    };
    let who = if c.caller == super::TEST_CALLER {
        format!("{} (test call)", c.caller)
    } else {
        c.caller.clone()
    };
    context! {
        who => who,
        time => local_time(c.started_at_ms, tz),
        state => state,
        what => what,
    }
}

/// A callback task, with the voicemail (player and transcription) of its call.
pub(super) fn task_card(t: &TaskView, tz: &TimeZone, now_ms: i64) -> minijinja::Value {
    context! {
        id => t.id,
        title => &t.title,
        due => local_time(t.due_at_ms, tz),
        overdue => t.due_at_ms < now_ms,
        voicemail => t.recording_url.as_deref().filter(|u| u.starts_with("https://")),
        transcript => &t.voicemail_transcript,
        contact => &t.contact_phone,
        assignee => &t.assignee,
    }
}
