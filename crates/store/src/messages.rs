//! Outbound messages and what the carrier said about each.

use sqlx::Row;

use crate::{Result, Store, in_write_tx, on_pool};

/// A message as the sender needs it.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    pub id: i64,
    pub call_id: Option<i64>,
    pub account_id: i64,
    pub from_phone: String,
    pub to_phone: String,
    pub body: String,
    pub status: String,
    pub carrier: String,
    pub carrier_message_id: Option<String>,
    pub contact_opted_out: bool,
    pub attempts: i64,
    pub last_attempt_at_ms: Option<i64>,
}

/// A text a contact sent to one of our numbers.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub account_id: i64,
    pub number_id: i64,
    pub from_phone: String,
    pub to_phone: String,
    pub body: String,
    pub carrier: String,
    pub carrier_message_id: String,
    /// `Some(true)` for an opt-out keyword, `Some(false)` for an opt-in one.
    pub opt_out: Option<bool>,
}

/// How one send attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The carrier accepted the message (or the sandbox recorded it).
    Accepted {
        carrier_message_id: String,
        carrier_status: String,
        segments: Option<i64>,
    },
    /// The carrier refused it for good; never retried.
    Rejected { code: Option<i64>, message: String },
    /// Not sent, on purpose (the contact opted out meanwhile, …).
    Canceled { reason: String },
    /// A temporary failure; another attempt follows (or none, when `final_attempt`).
    /// `ambiguous`: the request may have reached the carrier, so the message stays
    /// `sending` and the next attempt reconciles first.
    Temporary {
        message: String,
        final_attempt: bool,
        ambiguous: bool,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageView {
    pub id: i64,
    pub account: String,
    pub kind: String,
    pub direction: String,
    pub from: String,
    pub to: String,
    pub body: String,
    pub status: String,
    pub carrier: String,
    pub carrier_message_id: Option<String>,
    pub carrier_status: Option<String>,
    pub segments: Option<i64>,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub created_at_ms: i64,
    pub call_id: Option<i64>,
}

const MESSAGE_VIEW: &str = "SELECT m.id, a.slug AS account, m.kind, m.direction, m.from_phone, m.to_phone, \
    m.body, m.status, m.carrier, m.carrier_message_id, m.carrier_status, m.segments, m.error_code, \
    m.error_message, m.created_at, m.call_id FROM messages m JOIN accounts a ON a.id = m.account_id";

macro_rules! message_view_from_row {
    ($row:expr) => {{
        let r = $row;
        MessageView {
            id: r.try_get("id")?,
            account: r.try_get("account")?,
            kind: r.try_get("kind")?,
            direction: r.try_get("direction")?,
            from: r.try_get("from_phone")?,
            to: r.try_get("to_phone")?,
            body: r.try_get("body")?,
            status: r.try_get("status")?,
            carrier: r.try_get("carrier")?,
            carrier_message_id: r.try_get("carrier_message_id")?,
            carrier_status: r.try_get("carrier_status")?,
            segments: r.try_get("segments")?,
            error_code: r.try_get("error_code")?,
            error_message: r.try_get("error_message")?,
            created_at_ms: r.try_get("created_at")?,
            call_id: r.try_get("call_id")?,
        }
    }};
}

impl Store {
    pub async fn outbound_message(&self, id: i64) -> Result<Option<OutboundMessage>> {
        on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT m.id, m.call_id, m.account_id, m.from_phone, m.to_phone, m.body, m.status, m.carrier, \
                 m.carrier_message_id, m.attempts, m.last_attempt_at, COALESCE(c.opted_out, FALSE) AS opted_out \
                 FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id WHERE m.id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(r) => Some(OutboundMessage {
                    id: r.try_get("id")?,
                    call_id: r.try_get("call_id")?,
                    account_id: r.try_get("account_id")?,
                    from_phone: r.try_get("from_phone")?,
                    to_phone: r.try_get("to_phone")?,
                    body: r.try_get("body")?,
                    status: r.try_get("status")?,
                    carrier: r.try_get("carrier")?,
                    carrier_message_id: r.try_get("carrier_message_id")?,
                    contact_opted_out: r.try_get("opted_out")?,
                    attempts: r.try_get("attempts")?,
                    last_attempt_at_ms: r.try_get("last_attempt_at")?,
                }),
                None => None,
            })
        })
    }

    /// Marks the message as being handed to the carrier. A message found in `sending` later
    /// may or may not have left: the sender reconciles with the carrier before resending.
    pub async fn mark_send_attempt(&self, id: i64, now_ms: i64) -> Result<()> {
        in_write_tx!(self, tx => {
            sqlx::query(
                "UPDATE messages SET status = 'sending', attempts = attempts + 1, last_attempt_at = $2, \
                 updated_at = $2 WHERE id = $1",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// Records the result of a send attempt on the message and, for a text back, on its call;
    /// with `done_job`, deletes that job in the same transaction.
    pub async fn record_send_outcome(
        &self,
        msg: &OutboundMessage,
        outcome: &SendOutcome,
        done_job: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let (status, carrier_id, carrier_status, segments, code, error, call_status) = match outcome
        {
            SendOutcome::Accepted {
                carrier_message_id,
                carrier_status,
                segments,
            } => (
                if msg.carrier == "sandbox" {
                    "sandbox"
                } else {
                    "sent"
                },
                Some(carrier_message_id.clone()),
                Some(carrier_status.clone()),
                *segments,
                None,
                None,
                Some(("sent", None)),
            ),
            SendOutcome::Rejected { code, message } => (
                "failed",
                None,
                None,
                None,
                *code,
                Some(message.clone()),
                Some((
                    "failed",
                    Some(match code {
                        Some(c) => format!("carrier error {c}: {message}"),
                        None => message.clone(),
                    }),
                )),
            ),
            SendOutcome::Canceled { reason } => (
                "canceled",
                None,
                None,
                None,
                None,
                Some(reason.clone()),
                Some(("canceled", Some(reason.clone()))),
            ),
            SendOutcome::Temporary {
                message,
                final_attempt,
                ambiguous,
            } => (
                if *final_attempt {
                    "failed"
                } else if *ambiguous {
                    "sending"
                } else {
                    "pending"
                },
                None,
                None,
                None,
                None,
                Some(message.clone()),
                final_attempt.then(|| {
                    (
                        "failed",
                        Some(format!(
                            "gave up after {} attempts: {message}",
                            msg.attempts
                        )),
                    )
                }),
            ),
        };
        in_write_tx!(self, tx => {
            sqlx::query(
                "UPDATE messages SET status = $2, carrier_message_id = COALESCE($3, carrier_message_id), \
                 carrier_status = COALESCE($4, carrier_status), segments = COALESCE($5, segments), \
                 error_code = $6, error_message = $7, \
                 sent_at = CASE WHEN $3 IS NULL THEN sent_at ELSE $8 END, updated_at = $8 WHERE id = $1",
            )
            .bind(msg.id)
            .bind(status)
            .bind(carrier_id)
            .bind(carrier_status)
            .bind(segments)
            .bind(code)
            .bind(error)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if let (Some(call_id), Some((call_status, reason))) = (msg.call_id, call_status) {
                sqlx::query(
                    "UPDATE calls SET text_back_status = $2, text_back_reason = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(call_id)
                .bind(call_status)
                .bind(reason)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(job_id) = done_job {
                sqlx::query("DELETE FROM jobs WHERE id = $1").bind(job_id).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// Records an inbound text: the contact (created if new), the message (a retried
    /// webhook with the same carrier id is stored once) and, for a keyword, the contact's
    /// opt-out state. Returns false for a duplicate.
    pub async fn record_inbound_message(&self, msg: &InboundMessage, now_ms: i64) -> Result<bool> {
        let stored = in_write_tx!(self, tx => {
            let contact_id: i64 = sqlx::query_scalar(
                "INSERT INTO contacts (account_id, phone, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (account_id, phone) DO UPDATE SET updated_at = contacts.updated_at RETURNING id",
            )
            .bind(msg.account_id)
            .bind(&msg.from_phone)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO messages (account_id, number_id, contact_id, kind, direction, from_phone, to_phone, \
                 body, status, carrier, carrier_message_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'inbound', 'inbound', $4, $5, $6, 'received', $7, $8, $9, $9) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(msg.account_id)
            .bind(msg.number_id)
            .bind(contact_id)
            .bind(&msg.from_phone)
            .bind(&msg.to_phone)
            .bind(&msg.body)
            .bind(&msg.carrier)
            .bind(&msg.carrier_message_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted && let Some(opted_out) = msg.opt_out {
                sqlx::query("UPDATE contacts SET opted_out = $2, updated_at = $3 WHERE id = $1")
                    .bind(contact_id)
                    .bind(opted_out)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
            }
            inserted
        });
        Ok(stored)
    }

    /// Applies a carrier delivery report. Reports can arrive out of order: a final state
    /// (delivered, undelivered, failed) is never replaced by an earlier one.
    pub async fn record_delivery_status(
        &self,
        carrier_message_id: &str,
        carrier_status: &str,
        error_code: Option<i64>,
        now_ms: i64,
    ) -> Result<bool> {
        let status = match carrier_status {
            "delivered" | "read" => Some("delivered"),
            "undelivered" => Some("undelivered"),
            "failed" => Some("failed"),
            _ => None,
        };
        let n = in_write_tx!(self, tx => {
            sqlx::query(
                "UPDATE messages SET carrier_status = $2, status = COALESCE($3, status), \
                 error_code = COALESCE($4, error_code), updated_at = $5 \
                 WHERE carrier_message_id = $1 AND (status NOT IN ('delivered', 'undelivered', 'failed') OR $3 IS NOT NULL)",
            )
            .bind(carrier_message_id)
            .bind(carrier_status)
            .bind(status)
            .bind(error_code)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    pub async fn recent_messages(&self, limit: i64) -> Result<Vec<MessageView>> {
        let sql = format!("{MESSAGE_VIEW} ORDER BY m.created_at DESC, m.id DESC LIMIT $1");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(message_view_from_row!(r)); }
            Ok(out)
        })
    }

    pub async fn messages_for_call(&self, call_id: i64) -> Result<Vec<MessageView>> {
        let sql = format!("{MESSAGE_VIEW} WHERE m.call_id = $1 ORDER BY m.id");
        on_pool!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(call_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(message_view_from_row!(r)); }
            Ok(out)
        })
    }
}
