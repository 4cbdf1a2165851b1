//! Inbound texts and consent: the reply joins its conversation, keyword and free-text
//! opt-outs change the contact's consent, and every change is kept with its time, source
//! and the message that caused it.

use crate::conversations::upsert_conversation;
use crate::events_out::emit_event;
use crate::jobs::{JobKind, enqueue};
use crate::runs::{fire_event, resolve_contact, wake_waiting};
use crate::{Result, Store, in_write_tx, on_pool, to_json};

/// Applies what a carrier error says about the contact of message `$message_id`.
macro_rules! apply_contact_effect {
    ($tx:expr, $message_id:expr, $effect:expr, $detail:expr, $now:expr) => {{
        let message_id: i64 = $message_id;
        let now: i64 = $now;
        let row = crate::sql::query("SELECT contact_id, account_id FROM messages WHERE id = $1")
            .bind(message_id)
            .fetch_one(&mut *$tx)
            .await?;
        let contact_id: Option<i64> = row.try_get("contact_id")?;
        let account_id: i64 = row.try_get("account_id")?;
        if let Some(contact_id) = contact_id {
            match $effect {
                $crate::ContactEffect::OptedOut { source } => {
                    let changed = crate::sql::query(
                        "UPDATE contacts SET opted_out = TRUE, updated_at = $2 WHERE id = $1 AND opted_out = FALSE",
                    )
                    .bind(contact_id)
                    .bind(now)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected();
                    if changed > 0 {
                        $crate::events_out::emit_event!($tx, account_id, "contact.opted_out", serde_json::json!({
                            "contact_id": contact_id, "source": source, "detail": $detail,
                        }), now);
                        crate::sql::query(
                            "INSERT INTO consent_events (account_id, contact_id, opted_out, source, detail, message_id, at) \
                             VALUES ($1, $2, TRUE, $3, $4, $5, $6)",
                        )
                        .bind(account_id)
                        .bind(contact_id)
                        .bind(source)
                        .bind($detail)
                        .bind(message_id)
                        .bind(now)
                        .execute(&mut *$tx)
                        .await?;
                    }
                }
                $crate::ContactEffect::NotTextable { reason } => {
                    crate::sql::query(
                        "UPDATE contacts SET textable = FALSE, not_textable_reason = $2, updated_at = $3 WHERE id = $1",
                    )
                    .bind(contact_id)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
        }
    }};
}

pub(crate) use apply_contact_effect;

/// A change of consent asked for by an inbound text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    pub opted_out: bool,
    /// `keyword` or `free_text` (or `carrier_21610`, `operator` from other paths).
    pub source: String,
    /// The keyword or phrase that matched.
    pub detail: String,
}

/// A text a contact sent to one of our numbers.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub account_id: i64,
    pub number_id: i64,
    pub from_phone: String,
    pub to_phone: String,
    pub body: String,
    pub media: Vec<String>,
    pub carrier: String,
    pub carrier_message_id: String,
    pub consent: Option<ConsentChange>,
    /// A keyword answer (HELP) to send back, unless the contact is opted out.
    pub reply: Option<String>,
    /// `false`: the answer goes back in the webhook's response (TwiML), so it is recorded
    /// as sent. `true`: the carrier has no such response (Telnyx): it is queued and sent
    /// through the carrier's API like any text.
    pub reply_by_api: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    /// The same carrier message was already stored (a retried webhook): nothing changed.
    pub duplicate: bool,
    pub contact_id: i64,
    pub conversation_id: i64,
    /// The contact's consent after this message.
    pub opted_out: bool,
    /// The reply to answer with, when one is due and allowed.
    pub reply: Option<String>,
}

/// One change in a contact's consent history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConsentEvent {
    pub opted_out: bool,
    pub source: String,
    pub detail: Option<String>,
    pub at_ms: i64,
}

impl Store {
    /// Records an inbound text in one transaction: contact (created if new), conversation,
    /// the message (stored once per carrier id), the "contact replied" event, a consent
    /// change with its evidence, and the keyword reply when one is due.
    pub async fn record_inbound_message(
        &self,
        msg: &InboundMessage,
        now_ms: i64,
    ) -> Result<InboundOutcome> {
        let outcome = in_write_tx!(self, tx => {
            let contact = crate::sql::query(
                "INSERT INTO contacts (account_id, phone, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (account_id, phone) DO UPDATE SET updated_at = contacts.updated_at \
                 RETURNING id, opted_out",
            )
            .bind(msg.account_id)
            .bind(&msg.from_phone)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            let contact_id: i64 = contact.try_get("id")?;
            let mut opted_out: bool = contact.try_get("opted_out")?;
            let conversation_id = upsert_conversation!(tx, msg.account_id, msg.number_id, contact_id, now_ms, true);
            let media = (!msg.media.is_empty()).then(|| to_json(&msg.media));
            let message_id: Option<i64> = crate::sql::query_scalar(
                "INSERT INTO messages (account_id, number_id, contact_id, conversation_id, kind, direction, \
                 from_phone, to_phone, body, media, status, carrier, carrier_message_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'inbound', 'inbound', $5, $6, $7, $8, 'received', $9, $10, $11, $11) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(msg.account_id)
            .bind(msg.number_id)
            .bind(contact_id)
            .bind(conversation_id)
            .bind(&msg.from_phone)
            .bind(&msg.to_phone)
            .bind(&msg.body)
            .bind(media)
            .bind(&msg.carrier)
            .bind(&msg.carrier_message_id)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            match message_id {
                None => InboundOutcome { duplicate: true, contact_id, conversation_id, opted_out, reply: None },
                Some(message_id) => {
                    crate::sql::query("UPDATE contacts SET last_replied_at = $2 WHERE id = $1")
                        .bind(contact_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    // The contact got in touch: runs that stop on a reply end here, a text
                    // back still queued is cancelled, and message_received workflows start.
                    let why = if msg.consent.as_ref().is_some_and(|c| c.opted_out) { "opted_out" } else { "contact_replied" };
                    resolve_contact!(tx, contact_id, why, now_ms);
                    wake_waiting!(tx, "reply", "contact_id = $1", contact_id, now_ms);
                    let _event = fire_event!(tx, msg.account_id, Some(contact_id), "message_received", message_id, now_ms);
                    emit_event!(tx, msg.account_id, "message.received", serde_json::json!({
                        "message_id": message_id,
                        "contact_id": contact_id,
                        "from": msg.from_phone,
                        "to": msg.to_phone,
                        "body": msg.body,
                        "media": msg.media,
                    }), now_ms);
                    if let Some(change) = msg.consent.as_ref().filter(|c| c.opted_out != opted_out) {
                        crate::sql::query("UPDATE contacts SET opted_out = $2, updated_at = $3 WHERE id = $1")
                            .bind(contact_id)
                            .bind(change.opted_out)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                        crate::sql::query(
                            "INSERT INTO consent_events (account_id, contact_id, opted_out, source, detail, message_id, at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        )
                        .bind(msg.account_id)
                        .bind(contact_id)
                        .bind(change.opted_out)
                        .bind(&change.source)
                        .bind(&change.detail)
                        .bind(message_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        opted_out = change.opted_out;
                        if change.opted_out {
                            emit_event!(tx, msg.account_id, "contact.opted_out", serde_json::json!({
                                "contact_id": contact_id, "phone": msg.from_phone, "source": change.source, "detail": change.detail,
                            }), now_ms);
                        }
                    }
                    // Never a text to an opted-out number, a keyword answer included.
                    let reply = msg.reply.clone().filter(|_| !opted_out);
                    if let Some(body) = &reply {
                        let (status, carrier, sent_at) = if msg.reply_by_api {
                            ("pending", msg.carrier.as_str(), None)
                        } else {
                            ("sent", "twiml", Some(now_ms))
                        };
                        let reply_id: i64 = crate::sql::query_scalar(
                            "INSERT INTO messages (account_id, number_id, contact_id, conversation_id, kind, direction, \
                             from_phone, to_phone, body, status, carrier, created_at, sent_at, updated_at) \
                             VALUES ($1, $2, $3, $4, 'keyword_reply', 'outbound', $5, $6, $7, $8, $9, $10, $11, $10) RETURNING id",
                        )
                        .bind(msg.account_id)
                        .bind(msg.number_id)
                        .bind(contact_id)
                        .bind(conversation_id)
                        .bind(&msg.to_phone)
                        .bind(&msg.from_phone)
                        .bind(body)
                        .bind(status)
                        .bind(carrier)
                        .bind(now_ms)
                        .bind(sent_at)
                        .fetch_one(&mut *tx)
                        .await?;
                        if msg.reply_by_api {
                            let _queued = enqueue!(tx, JobKind::SendMessage, reply_id, Some(JobKind::SendMessage.key(reply_id)), now_ms, now_ms);
                        }
                    }
                    InboundOutcome { duplicate: false, contact_id, conversation_id, opted_out, reply }
                }
            }
        });
        if !outcome.duplicate {
            self.wake_workers();
        }
        Ok(outcome)
    }

    /// The consent history of an account's contact, oldest first.
    pub async fn consent_history(&self, account_id: i64, phone: &str) -> Result<Vec<ConsentEvent>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT e.opted_out, e.source, e.detail, e.at FROM consent_events e \
                 JOIN contacts c ON c.id = e.contact_id WHERE c.account_id = $1 AND c.phone = $2 ORDER BY e.at, e.id",
            )
            .bind(account_id)
            .bind(phone)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ConsentEvent {
                    opted_out: r.try_get("opted_out")?,
                    source: r.try_get("source")?,
                    detail: r.try_get("detail")?,
                    at_ms: r.try_get("at")?,
                });
            }
            Ok(out)
        })
    }
}
