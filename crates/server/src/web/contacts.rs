//! Contacts: search by name or phone, tags, consent history, and smart lists (saved
//! filters such as "Missed Call, not replied, last 7 days").

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use textback_core::duration::HumanDuration;
use textback_core::smart_list::Filter;
use textback_store::ContactView;

use super::pages::{account_of, frame, local_time, zone};
use super::session::SignedIn;
use super::{WebError, parse_id, render};
use crate::AppState;

fn display_name(c: &ContactView) -> String {
    let name = [c.first_name.as_deref(), c.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if name.trim().is_empty() {
        c.phone.clone()
    } else {
        name
    }
}

fn card(c: &ContactView) -> minijinja::Value {
    context! {
        id => c.id,
        name => display_name(c),
        phone => &c.phone,
        tags => &c.tags,
        opted_out => c.opted_out,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    list: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let lists = state.store.smart_lists(account.id).await?;
    let q = query.q.unwrap_or_default();
    let mut error = None;
    let mut list_id = 0;
    let (heading, contacts) = if let Some(raw) = query.list.as_deref() {
        let id = parse_id(raw, "smart list")?;
        let list = lists
            .iter()
            .find(|l| l.id == id)
            .ok_or(WebError::NotFound("smart list"))?;
        list_id = id;
        match serde_json::from_str::<Filter>(&list.filter) {
            Ok(filter) => (
                Some(list.name.clone()),
                crate::smart_lists::members(&state.store, account.id, &filter, state.now_ms())
                    .await?,
            ),
            Err(e) => {
                error = Some(format!(
                    "This smart list's saved filter cannot be read: {e}"
                ));
                (Some(list.name.clone()), Vec::new())
            }
        }
    } else if q.trim().is_empty() {
        (
            None,
            state
                .store
                .contacts_page(account.id, None, None, None, 100)
                .await?,
        )
    } else {
        (
            Some(format!("Matching “{}”", q.trim())),
            state.store.search_contacts(account.id, &q, 100).await?,
        )
    };
    let lists_view: Vec<minijinja::Value> = lists
        .iter()
        .map(|l| context! { id => l.id, name => &l.name })
        .collect();
    Ok(render(
        "contacts.html",
        context! {
            q => q,
            heading => heading,
            error => error,
            lists => lists_view,
            list_id => list_id,
            contacts => contacts.iter().map(card).collect::<Vec<_>>(),
            ..frame(&signed_in, &account, "contacts", "Contacts")
        },
    )?
    .into_response())
}

pub async fn detail(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let id = parse_id(&raw, "contact")?;
    let c = state
        .store
        .contact(account.id, id)
        .await?
        .ok_or(WebError::NotFound("contact"))?;
    let tz = zone(&account);
    let history: Vec<minijinja::Value> = state
        .store
        .consent_history(account.id, &c.phone)
        .await?
        .into_iter()
        .map(|e| {
            context! {
                opted_out => e.opted_out,
                source => e.source.replace('_', " "),
                detail => e.detail,
                when => local_time(e.at_ms, &tz),
            }
        })
        .collect();
    let conversation = state
        .store
        .conversations_page(account.id, None, 200)
        .await?
        .into_iter()
        .find(|v| v.contact_id == c.id)
        .map(|v| v.id);
    let name = display_name(&c);
    Ok(render(
        "contact.html",
        context! {
            phone => &c.phone,
            tags => &c.tags,
            opted_out => c.opted_out,
            history => history,
            conversation => conversation,
            name => &name,
            ..frame(&signed_in, &account, "contacts", &name)
        },
    )?
    .into_response())
}

#[derive(Deserialize)]
pub struct SaveListForm {
    csrf: Option<String>,
    name: Option<String>,
    tag: Option<String>,
    replied: Option<String>,
    within: Option<String>,
}

/// The form's filter, or what is wrong with it.
fn filter_from(form: &SaveListForm) -> Result<(String, Filter), String> {
    let name = form.name.as_deref().unwrap_or_default().trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("A smart list needs a name of 1 to 100 characters.".into());
    }
    let replied = match form.replied.as_deref().unwrap_or_default() {
        "" => None,
        "yes" => Some(true),
        "no" => Some(false),
        other => return Err(format!("{other:?} is not yes, no or either.")),
    };
    let within = match form
        .within
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        Some(w) => Some(HumanDuration::parse(w).map_err(|e| format!("Last call within: {e}."))?),
        None => None,
    };
    let tags: Vec<String> = form
        .tag
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| vec![t.to_owned()])
        .unwrap_or_default();
    Ok((
        name,
        Filter {
            tags,
            replied,
            last_call_within: within,
            ..Filter::default()
        },
    ))
}

pub async fn save_list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<SaveListForm>,
) -> Result<Response, WebError> {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let account_id = signed_in.session.user.account_id;
    let (name, filter) = match filter_from(&form) {
        Ok(f) => f,
        Err(why) => {
            let account = account_of(&state, &signed_in).await?;
            let page = render(
                "error.html",
                context! {
                    detail => why,
                    ..frame(&signed_in, &account, "contacts", "The smart list was not saved")
                },
            )?;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let json = serde_json::to_string(&filter).unwrap_or_default();
    let id = state
        .store
        .save_smart_list(account_id, &name, &json, state.now_ms())
        .await?;
    Ok(Redirect::to(&format!("/contacts?list={id}")).into_response())
}
