//! Conversations: the thread between one of an account's numbers and one contact.

/// Creates the conversation if new and moves its clock; evaluates to its id.
macro_rules! upsert_conversation {
    ($tx:expr, $account_id:expr, $number_id:expr, $contact_id:expr, $now:expr, $inbound:expr) => {{
        let inbound: bool = $inbound;
        let now: i64 = $now;
        let id: i64 = crate::sql::query_scalar(
            "INSERT INTO conversations (account_id, number_id, contact_id, last_message_at, last_inbound_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $4) ON CONFLICT (number_id, contact_id) DO UPDATE SET \
             last_message_at = excluded.last_message_at, \
             last_inbound_at = COALESCE(excluded.last_inbound_at, conversations.last_inbound_at) RETURNING id",
        )
        .bind($account_id)
        .bind($number_id)
        .bind($contact_id)
        .bind(now)
        .bind(inbound.then_some(now))
        .fetch_one(&mut *$tx)
        .await?;
        id
    }};
}

pub(crate) use upsert_conversation;

use crate::jobs::{JobKind, enqueue};
use crate::messages::MessageView;
use crate::{Result, Store, in_write_tx, on_pool};

/// Why a team reply was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyRefused {
    #[error("no account {0:?}")]
    UnknownAccount(String),
    #[error("account {0} has no phone number to text from")]
    NoNumber(String),
    #[error("account {account} has several numbers ({numbers}); say which one to text from")]
    WhichNumber { account: String, numbers: String },
    #[error("{0} is not one of the account's numbers")]
    NotOurNumber(String),
    #[error("the contact opted out of texts; nothing was sent")]
    OptedOut,
    #[error("the carrier reported this number cannot receive texts ({0}); nothing was sent")]
    NotTextable(String),
}

/// A team member's reply to queue.
#[derive(Debug, Clone)]
pub struct Reply {
    pub account_slug: String,
    /// The account number to text from; may be left out when the account has only one.
    pub from_number: Option<String>,
    pub to_phone: String,
    pub body: String,
    /// The carrier the message goes through (`twilio`, `sandbox`).
    pub carrier: String,
}

impl Store {
    /// Queues a team reply through the same outbox as every text (the sender checks
    /// consent again just before the carrier call). Returns the message id.
    pub async fn queue_reply(
        &self,
        reply: &Reply,
        now_ms: i64,
    ) -> Result<Result<i64, ReplyRefused>> {
        let out = in_write_tx!(self, tx => 'done: {
            let contact_sql = format!(
                "SELECT id, opted_out, textable, not_textable_reason FROM contacts \
                 WHERE account_id = $1 AND phone = $2{}",
                tx.for_update()
            );
            let account_id: Option<i64> = crate::sql::query_scalar("SELECT id FROM accounts WHERE slug = $1")
                .bind(&reply.account_slug)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(account_id) = account_id else {
                break 'done Err(ReplyRefused::UnknownAccount(reply.account_slug.clone()));
            };
            let numbers = crate::sql::query("SELECT id, e164 FROM numbers WHERE account_id = $1 ORDER BY e164")
                .bind(account_id)
                .fetch_all(&mut *tx)
                .await?;
            let mut ours = Vec::with_capacity(numbers.len());
            for n in numbers {
                ours.push((n.try_get::<i64, _>("id")?, n.try_get::<String, _>("e164")?));
            }
            let (number_id, from) = match (&reply.from_number, ours.as_slice()) {
                (Some(f), _) => match ours.iter().find(|(_, e)| e == f) {
                    Some(n) => n.clone(),
                    None => break 'done Err(ReplyRefused::NotOurNumber(f.clone())),
                },
                (None, [one]) => one.clone(),
                (None, []) => break 'done Err(ReplyRefused::NoNumber(reply.account_slug.clone())),
                (None, many) => {
                    let numbers = many.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>().join(", ");
                    break 'done Err(ReplyRefused::WhichNumber { account: reply.account_slug.clone(), numbers });
                }
            };
            crate::sql::query(
                "INSERT INTO contacts (account_id, phone, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (account_id, phone) DO NOTHING",
            )
            .bind(account_id)
            .bind(&reply.to_phone)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let c = crate::sql::query(contact_sql)
                .bind(account_id)
                .bind(&reply.to_phone)
                .fetch_one(&mut *tx)
                .await?;
            let contact_id: i64 = c.try_get("id")?;
            if c.try_get::<bool, _>("opted_out")? {
                break 'done Err(ReplyRefused::OptedOut);
            }
            if !c.try_get::<bool, _>("textable")? {
                let why: Option<String> = c.try_get("not_textable_reason")?;
                break 'done Err(ReplyRefused::NotTextable(why.unwrap_or_default()));
            }
            let conversation_id = upsert_conversation!(tx, account_id, number_id, contact_id, now_ms, false);
            let id: i64 = crate::sql::query_scalar(
                "INSERT INTO messages (account_id, number_id, contact_id, conversation_id, kind, direction, \
                 from_phone, to_phone, body, status, carrier, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'reply', 'outbound', $5, $6, $7, 'pending', $8, $9, $9) RETURNING id",
            )
            .bind(account_id)
            .bind(number_id)
            .bind(contact_id)
            .bind(conversation_id)
            .bind(&from)
            .bind(&reply.to_phone)
            .bind(&reply.body)
            .bind(&reply.carrier)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            let _queued = enqueue!(tx, JobKind::SendMessage, id, Some(JobKind::SendMessage.key(id)), now_ms, now_ms);
            Ok(id)
        });
        if out.is_ok() {
            self.wake_workers();
        }
        Ok(out)
    }

    /// The conversation between an account and one contact, oldest first, across the
    /// account's numbers.
    pub async fn conversation(
        &self,
        account_slug: &str,
        phone: &str,
        limit: i64,
    ) -> Result<Vec<MessageView>> {
        let sql = format!(
            "SELECT * FROM ({} WHERE a.slug = $1 AND ((m.direction = 'inbound' AND m.from_phone = $2) \
             OR (m.direction = 'outbound' AND m.to_phone = $2)) ORDER BY m.created_at DESC, m.id DESC LIMIT $3) t \
             ORDER BY created_at, id",
            crate::messages::MESSAGE_VIEW
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql)
                .bind(account_slug)
                .bind(phone)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(crate::messages::message_view_from_row!(r)); }
            Ok(out)
        })
    }
}
