//! A team member's reply into a conversation, shared by the REST API and the inbox page so
//! both check the same things in the same order.

use textback_store::{Reply, ReplyRefused, StoreError};

use crate::AppState;

pub const MAX_CHARS: usize = 1600;

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is longer than {MAX_CHARS} characters")]
    TooLong,
    #[error("no such conversation")]
    NoConversation,
    #[error(transparent)]
    Refused(ReplyRefused),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues `text` to the conversation's contact from the conversation's number; the id of
/// the new message.
pub async fn reply(
    state: &AppState,
    account_id: i64,
    conversation_id: i64,
    text: &str,
) -> Result<i64, ReplyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ReplyError::Empty);
    }
    if text.chars().count() > MAX_CHARS {
        return Err(ReplyError::TooLong);
    }
    let (slug, number, to) = state
        .store
        .conversation_parties(account_id, conversation_id)
        .await?
        .ok_or(ReplyError::NoConversation)?;
    let carrier = match state.store.number_by_e164(&number).await? {
        Some(n) => state.carrier_for(&n.carrier, &to),
        None => "sandbox",
    };
    let reply = Reply {
        account_slug: slug,
        from_number: Some(number),
        to_phone: to,
        body: text.to_owned(),
        carrier: carrier.to_owned(),
    };
    state
        .store
        .queue_reply(&reply, state.now_ms())
        .await?
        .map_err(ReplyError::Refused)
}
