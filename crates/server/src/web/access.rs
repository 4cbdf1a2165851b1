//! Team and access (owners only): who can sign in and with what role, the API keys, and
//! the webhook subscriptions that tell other systems what happened.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use textback_store::{AccountRecord, EVENT_TYPES, Role, TeamChange, normalize_email};

use super::pages::{account_of, frame, zone};
use super::password;
use super::session::{CsrfForm, SignedIn};
use super::settings::{owner_account, owner_only};
use super::{WebError, parse_id, render_status};
use crate::AppState;

/// What the last action did, shown at the top of the page.
#[derive(Default)]
struct Notice {
    done: Option<String>,
    error: Option<String>,
    /// A new API key, shown this once.
    new_key: Option<String>,
}

impl Notice {
    fn done(what: impl Into<String>) -> Notice {
        Notice {
            done: Some(what.into()),
            ..Notice::default()
        }
    }

    fn error(why: impl Into<String>) -> Notice {
        Notice {
            error: Some(why.into()),
            ..Notice::default()
        }
    }
}

/// "Event names" in words for the subscription form.
fn event_label(event: &str) -> &'static str {
    match event {
        "call.missed" => "A call was missed",
        "text_back.sent" => "A text back was sent",
        "text_back.suppressed" => "A text back was held back (and why)",
        "message.received" => "A text came in",
        "message.status" => "A text's delivery status changed",
        "contact.opted_out" => "A contact opted out",
        "task.created" => "A callback task was created",
        "task.completed" => "A callback task was done",
        _ => "Other",
    }
}

async fn page(
    state: &AppState,
    signed_in: &SignedIn,
    account: &AccountRecord,
    notice: Notice,
) -> Result<Response, WebError> {
    let tz = zone(account);
    let day = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| tz.to_datetime(t).strftime("%b %-d, %Y").to_string())
            .unwrap_or_default()
    };
    let me = signed_in.session.user.id;
    let team: Vec<minijinja::Value> = state
        .store
        .users_of_account(account.id)
        .await?
        .iter()
        .map(|u| {
            context! {
                id => u.id,
                name => &u.name,
                email => &u.email,
                role => u.role.as_str(),
                me => u.id == me,
            }
        })
        .collect();
    let keys: Vec<minijinja::Value> = state
        .store
        .api_keys(account.id)
        .await?
        .iter()
        .map(|k| {
            context! {
                id => k.id,
                name => &k.name,
                prefix => &k.prefix,
                created => day(k.created_at_ms),
                last_used => k.last_used_at_ms.map(day),
                revoked => k.revoked,
            }
        })
        .collect();
    let hooks: Vec<minijinja::Value> = state
        .store
        .subscriptions(account.id)
        .await?
        .iter()
        .filter(|s| s.active)
        .map(|s| {
            let events: Vec<&str> = s
                .events
                .iter()
                .map(|e| {
                    if e == "*" {
                        "every event"
                    } else {
                        event_label(e)
                    }
                })
                .collect();
            context! { id => s.id, url => &s.url, events => events.join("; ") }
        })
        .collect();
    let secret = crate::deliver::account_secret(&state.store, account.id).await?;
    let status = if notice.error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_status(
        status,
        "access.html",
        context! {
            team => team,
            keys => keys,
            hooks => hooks,
            events => EVENT_TYPES.iter().map(|e| context! { key => *e, label => event_label(e) }).collect::<Vec<_>>(),
            signing_secret => secret,
            done => notice.done,
            error => notice.error,
            new_key => notice.new_key,
            min_password => password::MIN_LENGTH,
            ..frame(signed_in, account, "settings", "Team and access")
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    owner_only(&signed_in)?;
    let account = account_of(&state, &signed_in).await?;
    page(&state, &signed_in, &account, Notice::default()).await
}

#[derive(Deserialize)]
pub struct NewMember {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn add_member(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<NewMember>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let notice = match (
        form.name.trim(),
        normalize_email(&form.email),
        Role::parse(&form.role),
    ) {
        ("", _, _) => Notice::error("Give the person's name."),
        (_, None, _) => Notice::error(format!("{:?} is not an email address.", form.email)),
        (_, _, None) => Notice::error("Choose owner or member."),
        (name, Some(email), Some(role)) => match password::hash(&form.password) {
            Err(e) => Notice::error(format!("Not added: {e}.")),
            Ok(hash) => match state
                .store
                .create_user(account.id, &email, name, role, &hash, state.now_ms())
                .await?
            {
                Some(_) => Notice::done(format!(
                    "{name} can sign in now as {email}, with the password you chose. Share it with them in person or by phone."
                )),
                None => Notice::error(format!("Not added: {email} already signs in to Textback.")),
            },
        },
    };
    page(&state, &signed_in, &account, notice).await
}

#[derive(Deserialize)]
pub struct RoleForm {
    csrf: Option<String>,
    #[serde(default)]
    role: String,
}

fn team_notice(change: TeamChange, done: &str) -> Result<Notice, WebError> {
    match change {
        TeamChange::Done => Ok(Notice::done(done)),
        TeamChange::NotFound => Err(WebError::NotFound("team member")),
        TeamChange::LastOwner => Ok(Notice::error(
            "Not changed: the account needs at least one owner. Make someone else an owner first.",
        )),
    }
}

pub async fn set_role(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let id = parse_id(&raw, "team member")?;
    let Some(role) = Role::parse(&form.role) else {
        return page(
            &state,
            &signed_in,
            &account,
            Notice::error("Choose owner or member."),
        )
        .await;
    };
    let change = state.store.set_user_role(account.id, id, role).await?;
    let notice = team_notice(change, "Role changed.")?;
    page(&state, &signed_in, &account, notice).await
}

pub async fn remove_member(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let id = parse_id(&raw, "team member")?;
    let change = state
        .store
        .disable_user(account.id, id, state.now_ms())
        .await?;
    let notice = team_notice(
        change,
        "Removed: they are signed out and can no longer sign in.",
    )?;
    page(&state, &signed_in, &account, notice).await
}

#[derive(Deserialize)]
pub struct NewKey {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
}

pub async fn create_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<NewKey>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        let notice = Notice::error("Name the key (up to 100 characters): what will use it?");
        return page(&state, &signed_in, &account, notice).await;
    }
    let key = crate::api::new_key();
    let prefix: String = key.chars().take(10).collect();
    state
        .store
        .create_api_key(
            account.id,
            name,
            &prefix,
            &crate::api::key_hash(&key),
            state.now_ms(),
        )
        .await?;
    let notice = Notice {
        done: Some(format!("Key “{name}” created.")),
        new_key: Some(key),
        ..Notice::default()
    };
    page(&state, &signed_in, &account, notice).await
}

pub async fn revoke_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let id = parse_id(&raw, "API key")?;
    if !state
        .store
        .revoke_api_key(account.id, id, state.now_ms())
        .await?
    {
        return Err(WebError::NotFound("API key"));
    }
    page(
        &state,
        &signed_in,
        &account,
        Notice::done("Key revoked: requests with it are refused from now on."),
    )
    .await
}

pub async fn add_webhook(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let account = owner_account(&state, &signed_in, field("csrf")).await?;
    let url = field("url").unwrap_or("").trim().to_owned();
    let events: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "event")
        .map(|(_, v)| v.clone())
        .collect();
    let notice = match crate::deliver::subscription_problem(&url, &events) {
        Some((_, why)) => Notice::error(format!("Not added: {why}.")),
        None => {
            state
                .store
                .save_subscription(account.id, &url, &events, true, state.now_ms())
                .await?;
            Notice::done(format!("Subscribed {url}."))
        }
    };
    page(&state, &signed_in, &account, notice).await
}

pub async fn remove_webhook(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, WebError> {
    let account = owner_account(&state, &signed_in, form.csrf.as_deref()).await?;
    let id = parse_id(&raw, "webhook")?;
    if !state.store.delete_subscription(account.id, id).await? {
        return Err(WebError::NotFound("webhook"));
    }
    page(
        &state,
        &signed_in,
        &account,
        Notice::done("Subscription removed."),
    )
    .await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    again: String,
}

fn password_page(
    signed_in: &SignedIn,
    account: &AccountRecord,
    done: bool,
    error: Option<String>,
) -> Result<Response, WebError> {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_status(
        status,
        "password.html",
        context! {
            done => done,
            error => error,
            min_password => password::MIN_LENGTH,
            ..frame(signed_in, account, "password", "Your password")
        },
    )
}

/// Anyone signed in changes their own password (a first one an owner chose, say).
pub async fn password_form(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    password_page(&signed_in, &account, false, None)
}

pub async fn change_password(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let account = account_of(&state, &signed_in).await?;
    let refuse = |why: &str| password_page(&signed_in, &account, false, Some(why.to_owned()));
    if !password::verify(&form.current, &signed_in.session.user.password_hash) {
        return refuse("Your current password is not right; nothing changed.");
    }
    if form.new != form.again {
        return refuse("The two new passwords differ; nothing changed.");
    }
    let hash = match password::hash(&form.new) {
        Ok(h) => h,
        Err(e) => return refuse(&format!("Nothing changed: {e}.")),
    };
    state
        .store
        .set_password(signed_in.session.user.id, &hash, &signed_in.token_hash)
        .await?;
    password_page(&signed_in, &account, true, None)
}
