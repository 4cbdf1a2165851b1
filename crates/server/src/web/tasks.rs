//! The callback task list: mine, all open, overdue; done; give a task to someone.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use textback_store::{TaskFilter, TaskQuery};

/// How many tasks the page lists (soonest due first; it says how many there are in all).
const TASKS_LIST: i64 = 200;

use super::pages::{account_of, back_to, frame, task_card, zone};
use super::session::SignedIn;
use super::{WebError, parse_id, render, render_status};
use crate::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    show: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let tz = zone(&account);
    let now = state.now_ms();
    let show = match q.show.as_deref() {
        Some("mine") => "mine",
        Some("overdue") => "overdue",
        _ => "all",
    };
    let filter = if show == "overdue" {
        TaskFilter::OverdueAt(now)
    } else {
        TaskFilter::Open
    };
    let me = &signed_in.session.user;
    let team = state.store.users_of_account(account.id).await?;
    let name_of = |assignee: &str| {
        team.iter()
            .find(|u| u.email.eq_ignore_ascii_case(assignee))
            .map_or_else(|| assignee.to_owned(), |u| u.name.clone())
    };
    let query = TaskQuery {
        account_slug: Some(&account.slug),
        filter,
        assignee: (show == "mine").then_some((me.email.as_str(), me.name.as_str())),
        ..TaskQuery::default()
    };
    let total = state.store.count_tasks(&query).await?;
    let tasks: Vec<minijinja::Value> = state
        .store
        .find_tasks(&query, TASKS_LIST)
        .await?
        .into_iter()
        .map(|t| {
            context! {
                assignee_name => t.assignee.as_deref().map(name_of),
                ..task_card(&t, &tz, now)
            }
        })
        .collect();
    let team_view: Vec<minijinja::Value> = team
        .iter()
        .map(|u| context! { email => &u.email, name => &u.name })
        .collect();
    Ok(render(
        "tasks.html",
        context! {
            tasks => tasks,
            total => total,
            team => team_view,
            show => show,
            ..frame(&signed_in, &account, "tasks", "Tasks")
        },
    )?
    .into_response())
}

#[derive(Deserialize)]
pub struct AssignForm {
    csrf: Option<String>,
    assignee: Option<String>,
    back: Option<String>,
}

pub async fn assign(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<AssignForm>,
) -> Result<Response, WebError> {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let id = parse_id(&raw, "task")?;
    let account_id = signed_in.session.user.account_id;
    // Only someone on this account's team (or no one).
    let assignee = match form
        .assignee
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        None => None,
        Some(email) => {
            let team = state.store.users_of_account(account_id).await?;
            match team
                .into_iter()
                .find(|u| u.email.eq_ignore_ascii_case(email))
            {
                Some(u) => Some(u.email),
                None => return Err(WebError::NotFound("team member")),
            }
        }
    };
    if !state
        .store
        .assign_task(account_id, id, assignee.as_deref())
        .await?
    {
        return Err(WebError::NotFound("open task"));
    }
    Ok(Redirect::to(&back_to(form.back.as_deref())).into_response())
}

#[derive(Deserialize)]
pub struct CallBackForm {
    csrf: Option<String>,
    back: Option<String>,
}

/// "Call back": Twilio rings the number's first team phone and, answered, connects it to
/// the caller with the business number showing. When the caller picks up, the task is done
/// (the call-back's dial status marks it). Without Twilio there is no call to place: the
/// page says so and offers the phone's own dialer.
pub async fn call_back(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CallBackForm>,
) -> Result<Response, WebError> {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let id = parse_id(&raw, "task")?;
    let account = account_of(&state, &signed_in).await?;
    if state.store.task_account(id).await? != Some(account.id) {
        return Err(WebError::NotFound("task"));
    }
    let (contact, number, team) = state
        .store
        .callback_target(id)
        .await?
        .ok_or(WebError::NotFound("open task with a caller to call"))?;
    let (calling, problem) = match (&state.twilio, team.first()) {
        (None, _) => (
            None,
            Some("Calling back through Textback needs Twilio; this server runs on the sandbox. Call from your phone, then press Done.".to_owned()),
        ),
        (Some(_), None) => (
            None,
            Some(format!("{number} has no team phone to ring. Add one in Settings → Numbers, or call from your phone.")),
        ),
        (Some(twilio), Some(team_phone)) => {
            let url = state.public(&format!("/webhooks/twilio/voice/callback?task={id}"));
            match twilio.place_call(team_phone, &number, &url).await {
                Ok(_) => (Some(team_phone.clone()), None),
                Err(e) => {
                    tracing::warn!(task = id, error = %e, "the call-back could not be placed");
                    (None, Some("Twilio did not place the call; try again in a moment, or call from your phone.".to_owned()))
                }
            }
        }
    };
    let status = if problem.is_some() {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    render_status(
        status,
        "call_back.html",
        context! {
            contact => contact,
            number => number,
            calling => calling,
            problem => problem,
            back => back_to(form.back.as_deref()),
            ..frame(&signed_in, &account, "tasks", "Calling back")
        },
    )
}
