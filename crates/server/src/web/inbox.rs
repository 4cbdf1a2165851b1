//! The shared inbox: conversations newest first, a thread with each message's delivery
//! status in words, the reply box with a live segment count, and new messages pushed over
//! server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::Stream;
use jiff::tz::TimeZone;
use minijinja::context;
use serde::Deserialize;
use textback_core::carrier_error;
use textback_core::segments::{self, Encoding};
use textback_store::{AccountRecord, MessageView};

use super::pages::{account_of, frame, local_time, zone};
use super::session::SignedIn;
use super::{WebError, parse_id, render};
use crate::AppState;
use crate::replies::{self, ReplyError};

type PageResult = Result<Response, WebError>;

pub async fn list(State(state): State<AppState>, signed_in: SignedIn) -> PageResult {
    let account = account_of(&state, &signed_in).await?;
    let tz = zone(&account);
    let unread = state
        .store
        .unread_counts(signed_in.session.user.id, account.id)
        .await?;
    let conversations: Vec<minijinja::Value> = state
        .store
        .conversations_page(account.id, None, 100)
        .await?
        .into_iter()
        .map(|c| {
            context! {
                id => c.id,
                who => c.contact_phone,
                when => local_time(c.last_message_at_ms, &tz),
                // The last word was the customer's: someone should answer.
                unanswered => c.last_inbound_at_ms == Some(c.last_message_at_ms),
                unread => unread.get(&c.id).copied().unwrap_or(0),
            }
        })
        .collect();
    Ok(render(
        "inbox.html",
        context! { conversations => conversations, ..frame(&signed_in, &account, "inbox", "Inbox") },
    )?
    .into_response())
}

/// A message's state as the team would say it (see `status_rank` in the store for the
/// order these move through).
fn status_words(direction: &str, status: &str) -> &'static str {
    match (direction, status) {
        ("inbound", _) => "Received",
        (_, "pending" | "submitting") => "Sending",
        (_, "accepted" | "scheduled" | "queued" | "sending") => "With the carrier",
        (_, "sent") => "Sent",
        (_, "sandbox") => "Sandbox: shown here, not sent",
        (_, "delivered" | "read") => "Delivered",
        (_, "failed" | "undelivered") => "Not delivered",
        (_, "canceled") => "Not sent",
        _ => "Sending",
    }
}

fn message_card(m: &MessageView, tz: &TimeZone) -> minijinja::Value {
    let error = m
        .error_code
        .map(|code| carrier_error::describe(code).reason.to_owned())
        .or_else(|| m.error_message.clone());
    context! {
        direction => &m.direction,
        body => &m.body,
        when => local_time(m.created_at_ms, tz),
        status => status_words(&m.direction, &m.status),
        error => error,
    }
}

/// The thread's messages, oldest first, and the newest id.
async fn thread_messages(
    state: &AppState,
    account: &AccountRecord,
    id: i64,
) -> Result<(Vec<minijinja::Value>, i64), WebError> {
    let tz = zone(account);
    let mut messages = state
        .store
        .conversation_messages(account.id, id, None, 200)
        .await?;
    let newest = messages.first().map_or(0, |m| m.id);
    messages.reverse();
    Ok((
        messages.iter().map(|m| message_card(m, &tz)).collect(),
        newest,
    ))
}

#[derive(Deserialize)]
pub struct ThreadQuery {
    sent: Option<String>,
}

pub async fn thread(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Query(q): Query<ThreadQuery>,
) -> PageResult {
    let account = account_of(&state, &signed_in).await?;
    let id = parse_id(&raw, "conversation")?;
    let notice = q.sent.map(|_| "Sent.");
    thread_page(
        &state,
        &signed_in,
        &account,
        id,
        StatusCode::OK,
        notice,
        None,
    )
    .await
}

async fn thread_page(
    state: &AppState,
    signed_in: &SignedIn,
    account: &AccountRecord,
    id: i64,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> PageResult {
    let (_, _, phone) = state
        .store
        .conversation_parties(account.id, id)
        .await?
        .ok_or(WebError::NotFound("conversation"))?;
    let contact = state
        .store
        .contacts_page(account.id, Some(&phone), None, None, 1)
        .await?
        .into_iter()
        .next();
    let who = contact
        .as_ref()
        .and_then(|c| c.first_name.as_ref())
        .map(|n| format!("{n} ({phone})"))
        .unwrap_or_else(|| phone.clone());
    let (messages, newest) = thread_messages(state, account, id).await?;
    state
        .store
        .mark_read(signed_in.session.user.id, id, newest)
        .await?;
    let page = render(
        "thread.html",
        context! {
            id => id,
            who => &who,
            messages => messages,
            newest => newest,
            opted_out => contact.as_ref().is_some_and(|c| c.opted_out),
            notice => notice,
            error => error,
            ..frame(signed_in, account, "inbox", &who)
        },
    )?;
    Ok((status, page).into_response())
}

/// Just the message list, for the live update to swap in.
pub async fn messages_fragment(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
) -> PageResult {
    let account = account_of(&state, &signed_in).await?;
    let id = parse_id(&raw, "conversation")?;
    state
        .store
        .conversation_parties(account.id, id)
        .await?
        .ok_or(WebError::NotFound("conversation"))?;
    let (messages, newest) = thread_messages(&state, &account, id).await?;
    // The live update shows them on an open thread: they are read.
    state
        .store
        .mark_read(signed_in.session.user.id, id, newest)
        .await?;
    Ok(render(
        "thread_messages.html",
        context! { messages => messages, newest => newest },
    )?
    .into_response())
}

#[derive(Deserialize)]
pub struct EventsQuery {
    after: Option<String>,
}

/// Server-sent events: one `message` event each time the thread gains a message (a reply
/// arriving, a status changing is picked up on the next swap). The database is checked twice
/// a second, which works the same across instances without a broker.
pub async fn events(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, WebError> {
    let account_id = signed_in.session.user.account_id;
    let id = parse_id(&raw, "conversation")?;
    state
        .store
        .conversation_parties(account_id, id)
        .await?
        .ok_or(WebError::NotFound("conversation"))?;
    let after: i64 = q.after.and_then(|a| a.parse().ok()).unwrap_or(0);
    let stream =
        futures_util::stream::unfold((state, after), move |(state, mut seen)| async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // On shutdown the stream ends; the browser reconnects by itself.
                if state.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                let newest = state
                    .store
                    .conversation_messages(account_id, id, None, 1)
                    .await
                    .ok()
                    .and_then(|m| m.first().map(|m| m.id))
                    .unwrap_or(seen);
                if newest > seen {
                    seen = newest;
                    let event = Event::default().data(newest.to_string());
                    return Some((Ok(event), (state, seen)));
                }
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
pub struct ReplyForm {
    csrf: Option<String>,
    body: Option<String>,
}

pub async fn reply(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(raw): Path<String>,
    Form(form): Form<ReplyForm>,
) -> PageResult {
    if !signed_in.csrf_ok(form.csrf.as_deref()) {
        return Err(WebError::Csrf);
    }
    let account = account_of(&state, &signed_in).await?;
    let id = parse_id(&raw, "conversation")?;
    let text = form.body.unwrap_or_default();
    let (status, error) = match replies::reply(&state, account.id, id, &text).await {
        Ok(_) => return Ok(Redirect::to(&format!("/inbox/{id}?sent=1")).into_response()),
        Err(ReplyError::NoConversation) => return Err(WebError::NotFound("conversation")),
        Err(ReplyError::Store(e)) => return Err(WebError::Store(e)),
        Err(e @ (ReplyError::Empty | ReplyError::TooLong)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(ReplyError::Refused(r)) => (StatusCode::CONFLICT, r.to_string()),
    };
    let error = format!("Not sent: {error}.");
    thread_page(&state, &signed_in, &account, id, status, None, Some(&error)).await
}

/// "42 characters · 1 segment (GSM-7)" for the reply box, as the carrier will count it.
pub async fn segments(_signed_in: SignedIn, body: String) -> Response {
    let s = segments::count(&body);
    let chars = body.chars().count();
    let encoding = match s.encoding {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2: an emoji or special character makes every segment shorter",
    };
    format!(
        "{chars} character{} · {} segment{} ({encoding})",
        if chars == 1 { "" } else { "s" },
        s.segments,
        if s.segments == 1 { "" } else { "s" },
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::status_words;

    #[test]
    fn statuses_read_as_words() {
        assert_eq!(status_words("outbound", "queued"), "With the carrier");
        assert_eq!(status_words("outbound", "delivered"), "Delivered");
        assert_eq!(status_words("outbound", "undelivered"), "Not delivered");
        assert_eq!(
            status_words("outbound", "sandbox"),
            "Sandbox: shown here, not sent"
        );
        assert_eq!(status_words("inbound", "received"), "Received");
    }
}
