//! Outbound messages and what the carrier said about each.

use crate::consent::apply_contact_effect;
use crate::events_out::{emit_event, subscribed_sql};
use crate::sql::WriteTx;
use crate::sqlite_writer::Lane;
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
    pub kind: String,
    pub created_at_ms: i64,
    /// For a text back: when its call was settled as missed.
    pub call_missed_at_ms: Option<i64>,
}

fn outbound_from_row(r: &crate::sql::Row) -> Result<OutboundMessage> {
    Ok(OutboundMessage {
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
        kind: r.try_get("kind")?,
        created_at_ms: r.try_get("created_at")?,
        call_missed_at_ms: r.try_get("missed_at")?,
    })
}

/// Marks message `$1` as being handed to the carrier at `$2`; both ways of marking
/// (`begin_send`, `mark_send_attempt`) append their own conditions.
macro_rules! mark_submitting_sql {
    ($($tail:tt)*) => {
        concat!(
            "UPDATE messages SET status = 'submitting', attempts = attempts + 1, ",
            "last_attempt_at = $2, updated_at = $2 WHERE id = $1",
            $($tail)*
        )
    };
}

/// What a sender needs of a message marked for its send (`outbound_from_row`).
macro_rules! outbound_returning {
    () => {
        " RETURNING id, call_id, account_id, from_phone, to_phone, body, status, carrier, carrier_message_id, \
         attempts, last_attempt_at, FALSE AS opted_out, kind, created_at, \
         (SELECT k.missed_at FROM calls k WHERE k.id = messages.call_id) AS missed_at"
    };
}

/// The send's fast path (`Store::begin_send`) as one statement: marks message `$1` as
/// handed to the carrier at `$2` if it is still `pending`, not yet at the carrier and its
/// contact has not opted out (the final opt-out check), and returns it as marked.
const BEGIN_SEND: &str = mark_submitting_sql!(concat!(
    " AND status = 'pending' AND carrier_message_id IS NULL \
     AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = messages.contact_id AND c.opted_out)",
    outbound_returning!()
));

/// The `status, attempts, last_attempt_at` of an outbound message inserted for a worker to
/// send as soon as the inserting transaction commits (`queue_send`): marked as handed to
/// the carrier at `now_ms`, as `begin_send` would mark it, unless its contact has opted out
/// (the final opt-out check, made on the contact row the step holds locked), which leaves
/// it `pending` for its send job to cancel. Marking it in the insert saves the statement
/// that marked it after.
pub(crate) struct SendNow {
    pub(crate) status: &'static str,
    pub(crate) attempts: i64,
    pub(crate) last_attempt_at_ms: Option<i64>,
}

impl SendNow {
    pub(crate) fn new(contact_opted_out: bool, now_ms: i64) -> SendNow {
        if contact_opted_out {
            SendNow {
                status: "pending",
                attempts: 0,
                last_attempt_at_ms: None,
            }
        } else {
            SendNow {
                status: "submitting",
                attempts: 1,
                last_attempt_at_ms: Some(now_ms),
            }
        }
    }
}

/// The message a `SendNow` insert returned (`outbound_returning!`), when it was
/// marked for its send; None when it was left `pending`.
pub(crate) fn marked_for_send(row: &crate::sql::Row) -> Result<Option<OutboundMessage>> {
    let status: &str = row.try_get("status")?;
    if status == "submitting" {
        Ok(Some(outbound_from_row(row)?))
    } else {
        Ok(None)
    }
}

pub(crate) use outbound_returning;

/// How one send attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The carrier accepted the message (or the sandbox recorded it).
    Accepted {
        carrier_message_id: String,
        carrier_status: String,
        segments: Option<i64>,
    },
    /// The carrier refused it for good; never retried. `effect` is what the refusal
    /// says about the contact (opted out at the carrier, a number that cannot take texts).
    Rejected {
        code: Option<i64>,
        message: String,
        effect: Option<ContactEffect>,
    },
    /// Not sent, on purpose (the contact opted out meanwhile, …).
    Canceled { reason: String },
    /// A temporary failure; another attempt follows (or none, when `final_attempt`).
    /// `ambiguous`: the request may have reached the carrier, so the message stays
    /// `submitting` and the next attempt reconciles first.
    Temporary {
        message: String,
        final_attempt: bool,
        ambiguous: bool,
    },
}

/// What a carrier error says about the contact, applied with the message's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactEffect {
    /// Opted out at the carrier (21610); `source` goes into the consent history.
    OptedOut { source: String },
    /// The number cannot receive texts; later texts are skipped with this reason.
    NotTextable { reason: String },
}

/// A carrier's delivery report for one of our messages.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub carrier_message_id: String,
    pub carrier_status: String,
    pub error_code: Option<i64>,
    /// Readable reason for the error code, stored on the message (and on its call).
    pub error_reason: Option<String>,
    pub effect: Option<ContactEffect>,
}

/// Our own states before the carrier has the message, then the carrier's, in the order a
/// message moves through them. A report never moves a message back.
pub fn status_rank(status: &str) -> u8 {
    match status {
        "pending" => 0,
        "submitting" => 1,
        "accepted" | "scheduled" | "queued" => 2,
        "sending" => 3,
        "sent" | "sandbox" => 4,
        "delivered" | "undelivered" | "failed" | "read" | "canceled" | "received" => 5,
        _ => 2,
    }
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
    pub media: Vec<String>,
}

pub(crate) const MESSAGE_VIEW: &str = "SELECT m.id, a.slug AS account, m.kind, m.direction, m.from_phone, m.to_phone, \
    m.body, m.status, m.carrier, m.carrier_message_id, m.carrier_status, m.segments, m.error_code, \
    m.error_message, m.created_at, m.call_id, m.media FROM messages m JOIN accounts a ON a.id = m.account_id";

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
            media: match r.try_get::<Option<String>, _>("media")? {
                Some(json) => $crate::from_json("media", &json)?,
                None => Vec::new(),
            },
        }
    }};
}

pub(crate) use message_view_from_row;

/// A send attempt's result to record; see `Store::record_send_outcome`.
pub(crate) struct SendResult {
    pub(crate) msg: OutboundMessage,
    pub(crate) outcome: SendOutcome,
    pub(crate) done_job: Option<i64>,
    pub(crate) now_ms: i64,
}

/// What a send outcome writes on the message, and on its call as (status, reason).
pub(crate) struct OutcomeColumns {
    pub(crate) status: String,
    pub(crate) carrier_id: Option<String>,
    pub(crate) carrier_status: Option<String>,
    pub(crate) segments: Option<i64>,
    pub(crate) code: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) call_status: Option<(&'static str, Option<String>)>,
}

pub(crate) fn outcome_columns(msg: &OutboundMessage, outcome: &SendOutcome) -> OutcomeColumns {
    let (status, carrier_id, carrier_status, segments, code, error, call_status) = match outcome {
        SendOutcome::Accepted {
            carrier_message_id,
            carrier_status,
            segments,
        } => (
            if msg.carrier == "sandbox" {
                "sandbox".to_owned()
            } else if status_rank(carrier_status) >= 2 {
                carrier_status.clone()
            } else {
                "queued".to_owned()
            },
            Some(carrier_message_id.clone()),
            Some(carrier_status.clone()),
            *segments,
            None,
            None,
            Some(("sent", None)),
        ),
        SendOutcome::Rejected { code, message, .. } => (
            "failed".to_owned(),
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
            "canceled".to_owned(),
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
                "submitting"
            } else {
                "pending"
            }
            .to_owned(),
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
    OutcomeColumns {
        status,
        carrier_id,
        carrier_status,
        segments,
        code,
        error,
        call_status,
    }
}

/// What a send outcome writes beyond its message and call rows: `text_back.sent` to the
/// account's webhook subscriptions, a refusal's effect on the contact.
pub(crate) async fn after_send_outcome(
    tx: &mut WriteTx<'_>,
    msg: &OutboundMessage,
    outcome: &SendOutcome,
    subscribed: bool,
    now_ms: i64,
) -> Result<()> {
    if let (
        SendOutcome::Accepted {
            carrier_message_id, ..
        },
        "text_back",
    ) = (outcome, msg.kind.as_str())
    {
        emit_event!(tx, msg.account_id, "text_back.sent", serde_json::json!({
            "message_id": msg.id,
            "call_id": msg.call_id,
            "to": msg.to_phone,
            "body": msg.body,
            "carrier_message_id": carrier_message_id,
        }), now_ms, subscribed: subscribed);
    }
    if let SendOutcome::Rejected {
        effect: Some(effect),
        message,
        ..
    } = outcome
    {
        apply_contact_effect!(tx, msg.id, effect, message, now_ms);
    }
    Ok(())
}

impl Store {
    pub async fn outbound_message(&self, id: i64) -> Result<Option<OutboundMessage>> {
        on_pool!(self, pool => {
            let row = crate::sql::query(
                "SELECT m.id, m.call_id, m.account_id, m.from_phone, m.to_phone, m.body, m.status, m.carrier, \
                 m.carrier_message_id, m.attempts, m.last_attempt_at, COALESCE(c.opted_out, FALSE) AS opted_out, \
                 m.kind, m.created_at, k.missed_at \
                 FROM messages m LEFT JOIN contacts c ON c.id = m.contact_id LEFT JOIN calls k ON k.id = m.call_id \
                 WHERE m.id = $1",
            )
            .bind(id)
            .fetch_optional(pool.by_key())
            .await?;
            row.as_ref().map(outbound_from_row).transpose()
        })
    }

    /// The send's fast path: marks a message that is still `pending`, not yet at the
    /// carrier and whose contact has not opted out as `submitting` (see
    /// `mark_send_attempt`), and returns it as marked. None when any of that is not so: the
    /// sender then reads the message and decides (`outbound_message`). One statement where
    /// the read and the mark took two, committed on its own (`Db::alone`).
    pub async fn begin_send(&self, id: i64, now_ms: i64) -> Result<Option<OutboundMessage>> {
        let row = crate::sql::query(BEGIN_SEND)
            .bind(id)
            .bind(now_ms)
            .fetch_optional(self.db.alone(Lane::Background))
            .await?;
        row.as_ref().map(outbound_from_row).transpose()
    }

    /// Marks the message as being handed to the carrier. A message found `submitting` later
    /// may or may not have left: the sender reconciles with the carrier before resending.
    pub async fn mark_send_attempt(&self, id: i64, now_ms: i64) -> Result<()> {
        crate::sql::query(mark_submitting_sql!(""))
            .bind(id)
            .bind(now_ms)
            .execute(self.db.alone(Lane::Background))
            .await?;
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
        match &self.send_batch {
            Some(batch) => {
                let result = SendResult {
                    msg: msg.clone(),
                    outcome: outcome.clone(),
                    done_job,
                    now_ms,
                };
                batch.submit(result).await
            }
            None => {
                self.record_send_outcome_alone(msg, outcome, done_job, now_ms)
                    .await
            }
        }
    }

    /// `record_send_outcome` in a transaction of its own.
    pub(crate) async fn record_send_outcome_alone(
        &self,
        msg: &OutboundMessage,
        outcome: &SendOutcome,
        done_job: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let c = outcome_columns(msg, outcome);
        in_write_tx!(background self, tx => {
            let subscribed: Option<bool> = crate::sql::query_scalar(concat!(
                "UPDATE messages SET status = $2, carrier_message_id = COALESCE($3, carrier_message_id), \
                 carrier_status = COALESCE($4, carrier_status), segments = COALESCE($5, segments), \
                 error_code = $6, error_message = $7, \
                 sent_at = CASE WHEN $3 IS NULL THEN sent_at ELSE $8 END, updated_at = $8 WHERE id = $1 \
                 RETURNING ",
                subscribed_sql!("messages.account_id")
            ))
            .bind(msg.id)
            .bind(c.status)
            .bind(c.carrier_id)
            .bind(c.carrier_status)
            .bind(c.segments)
            .bind(c.code)
            .bind(c.error)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let (Some(call_id), Some((call_status, reason))) = (msg.call_id, c.call_status) {
                crate::sql::query(
                    "UPDATE calls SET text_back_status = $2, text_back_reason = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(call_id)
                .bind(call_status)
                .bind(reason)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            after_send_outcome(tx, msg, outcome, subscribed.unwrap_or(false), now_ms).await?;
            if let Some(job_id) = done_job {
                crate::sql::query("DELETE FROM jobs WHERE id = $1").bind(job_id).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    /// Applies a carrier delivery report: the message's status moves forward only (reports
    /// arrive out of order), the error and its effect on the contact are kept, and a text
    /// back that ends undelivered or failed says so on its call. Returns false for an
    /// unknown message or an out-of-date report.
    pub async fn record_delivery_report(
        &self,
        report: &DeliveryReport,
        now_ms: i64,
    ) -> Result<bool> {
        let applied = in_write_tx!(self, tx => {
            let select = format!(
                "SELECT id, status, call_id, account_id FROM messages WHERE carrier_message_id = $1{}",
                tx.for_update()
            );
            let row = crate::sql::query(select)
                .bind(&report.carrier_message_id)
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                None => false,
                Some(row) => {
                    let id: i64 = row.try_get("id")?;
                    let current: String = row.try_get("status")?;
                    let call_id: Option<i64> = row.try_get("call_id")?;
                    let forward = status_rank(&report.carrier_status) > status_rank(&current)
                        || (current == "sandbox" && report.carrier_status != "sandbox");
                    if forward {
                        crate::sql::query(
                            "UPDATE messages SET status = $2, carrier_status = $2, \
                             error_code = COALESCE($3, error_code), error_message = COALESCE($4, error_message), \
                             updated_at = $5 WHERE id = $1",
                        )
                        .bind(id)
                        .bind(&report.carrier_status)
                        .bind(report.error_code)
                        .bind(&report.error_reason)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                        if let (Some(call_id), true) =
                            (call_id, matches!(report.carrier_status.as_str(), "undelivered" | "failed"))
                        {
                            let reason = match (report.error_code, &report.error_reason) {
                                (Some(c), Some(r)) => format!("carrier error {c}: {r}"),
                                (Some(c), None) => format!("carrier error {c}"),
                                (None, _) => format!("the carrier reported the text {}", report.carrier_status),
                            };
                            crate::sql::query(
                                "UPDATE calls SET text_back_status = $2, text_back_reason = $3, updated_at = $4 WHERE id = $1",
                            )
                            .bind(call_id)
                            .bind(&report.carrier_status)
                            .bind(reason)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    if forward {
                        let account_id: i64 = row.try_get("account_id")?;
                        emit_event!(tx, account_id, "message.status", serde_json::json!({
                            "message_id": id,
                            "carrier_message_id": report.carrier_message_id,
                            "status": report.carrier_status,
                            "error_code": report.error_code,
                            "error": report.error_reason,
                        }), now_ms);
                    }
                    if let Some(effect) = &report.effect {
                        let detail = report.error_reason.clone().unwrap_or_default();
                        apply_contact_effect!(tx, id, effect, &detail, now_ms);
                    }
                    forward
                }
            }
        });
        Ok(applied)
    }

    pub async fn recent_messages(&self, limit: i64) -> Result<Vec<MessageView>> {
        let sql = format!("{MESSAGE_VIEW} ORDER BY m.created_at DESC, m.id DESC LIMIT $1");
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(message_view_from_row!(r)); }
            Ok(out)
        })
    }

    pub async fn messages_for_call(&self, call_id: i64) -> Result<Vec<MessageView>> {
        let sql = format!("{MESSAGE_VIEW} WHERE m.call_id = $1 ORDER BY m.id");
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(call_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(message_view_from_row!(r)); }
            Ok(out)
        })
    }
}
