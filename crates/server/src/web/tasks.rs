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
use super::{WebError, parse_id, render};
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
