//! Calls: recording them, settling the missed-call rule once, voicemail.

use textback_core::call::{DialStatus, dial_outcome};

use crate::events_out::{emit_event, subscribed_sql};
use crate::runs::{fire_event, resolve_contact};
use crate::sql::WriteTx;
use crate::{Result, Store, in_write_tx, on_pool};

/// An inbound call as first reported by the carrier.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewCall {
    pub account_id: i64,
    pub number_id: i64,
    pub carrier: String,
    pub carrier_call_id: String,
    /// The caller id as the carrier sent it (normalised when it is a phone number).
    pub caller: String,
    /// The caller's E.164 number, when the caller id is one.
    pub caller_phone: Option<String>,
    pub at_ms: i64,
}

/// The `<Dial>` result for a call.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DialFacts {
    pub call: NewCall,
    pub dial_status: Option<String>,
}

impl DialFacts {
    /// The missed-call rule on these facts: `dial_outcome` for a dial result; without one
    /// (the status callback settled the call, or nobody was rung) the caller reached no
    /// one, which is a miss.
    pub fn missed(&self, screening: bool, screen_accepted: bool) -> bool {
        match self.dial_status.as_deref().map(DialStatus::parse) {
            Some(Ok(status)) => dial_outcome(status, screening, screen_accepted).is_missed(),
            _ => true,
        }
    }
}

/// A call as shown by the CLI and (later) the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallView {
    pub id: i64,
    pub account: String,
    pub carrier_call_id: String,
    pub caller: String,
    pub number: String,
    pub status: String,
    pub dial_status: Option<String>,
    pub outcome: Option<String>,
    pub started_at_ms: i64,
    pub text_back_status: Option<String>,
    pub text_back_reason: Option<String>,
    pub recording_url: Option<String>,
    /// The carrier's transcription of the voicemail, when it made one.
    pub voicemail_transcript: Option<String>,
    pub contact_id: Option<i64>,
}

pub(crate) const CALL_VIEW: &str = "SELECT c.id, a.slug AS account, c.carrier_call_id, c.caller, n.e164 AS number, \
    c.status, c.dial_status, c.outcome, c.started_at, c.text_back_status, c.text_back_reason, \
    c.recording_url, c.voicemail_transcript, c.contact_id \
    FROM calls c JOIN accounts a ON a.id = c.account_id JOIN numbers n ON n.id = c.number_id";

macro_rules! call_view_from_row {
    ($row:expr) => {{
        let r = $row;
        CallView {
            id: r.try_get("id")?,
            account: r.try_get("account")?,
            carrier_call_id: r.try_get("carrier_call_id")?,
            caller: r.try_get("caller")?,
            number: r.try_get("number")?,
            status: r.try_get("status")?,
            dial_status: r.try_get("dial_status")?,
            outcome: r.try_get("outcome")?,
            started_at_ms: r.try_get("started_at")?,
            text_back_status: r.try_get("text_back_status")?,
            text_back_reason: r.try_get("text_back_reason")?,
            recording_url: r.try_get("recording_url")?,
            voicemail_transcript: r.try_get("voicemail_transcript")?,
            contact_id: r.try_get("contact_id")?,
        }
    }};
}

/// What inserting a call does when the carrier call id is already known.
#[derive(Clone, Copy)]
enum KnownCall {
    /// Nothing.
    Ignore,
    /// Returns the call's id, outcome and screening, locked until commit (the no-op update
    /// takes the row lock, as FOR UPDATE would): one statement instead of two.
    ReturnLocked,
}

macro_rules! insert_call_sql {
    ($tail:expr) => {
        concat!(
            "INSERT INTO calls (account_id, number_id, carrier, carrier_call_id, caller, caller_phone, ",
            "status, started_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'ringing', $7, $7, $7) ",
            "ON CONFLICT (carrier_call_id) ",
            $tail
        )
    };
}

/// The insert of a call row, bound.
fn call_insert(known: KnownCall, c: &NewCall) -> crate::sql::Query<'static> {
    let sql = match known {
        KnownCall::Ignore => insert_call_sql!("DO NOTHING"),
        KnownCall::ReturnLocked => insert_call_sql!(concat!(
            "DO UPDATE SET updated_at = calls.updated_at RETURNING id, outcome, screen_accepted, ",
            subscribed_sql!("calls.account_id")
        )),
    };
    crate::sql::query(sql)
        .bind(c.account_id)
        .bind(c.number_id)
        .bind(c.carrier.as_str())
        .bind(c.carrier_call_id.as_str())
        .bind(c.caller.as_str())
        .bind(c.caller_phone.as_deref())
        .bind(c.at_ms)
}

/// Inserts the call row unless the carrier call id is already known.
macro_rules! insert_call {
    ($tx:expr, $c:expr) => {{
        call_insert(KnownCall::Ignore, $c)
            .execute(&mut *$tx)
            .await?;
    }};
}

pub(crate) use call_view_from_row;

/// Queues `call.missed` to the account's webhook subscriptions, when it has any
/// (`subscribed`, read with the call by `subscribed_sql!`).
pub(crate) async fn emit_call_missed(
    tx: &mut WriteTx<'_>,
    facts: &DialFacts,
    call_id: i64,
    contact_id: Option<i64>,
    now_ms: i64,
    subscribed: bool,
) -> Result<()> {
    emit_event!(
        tx,
        facts.call.account_id,
        "call.missed",
        serde_json::json!({
            "call_id": call_id,
            "carrier_call_id": facts.call.carrier_call_id,
            "caller": facts.call.caller,
            "contact_id": contact_id,
            "dial_status": facts.dial_status,
        }),
        now_ms,
        subscribed: subscribed
    );
    Ok(())
}

/// Settles a locked, unsettled call as answered.
pub(crate) async fn settle_answered(
    tx: &mut WriteTx<'_>,
    facts: &DialFacts,
    call_id: i64,
    now_ms: i64,
) -> Result<()> {
    crate::sql::query(
        "UPDATE calls SET outcome = 'answered', dial_status = $2, status = 'in-progress', \
         updated_at = $3 WHERE id = $1",
    )
    .bind(call_id)
    .bind(&facts.dial_status)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    // The contact reached a person: what was still waiting to text them is moot.
    if let Some(phone) = &facts.call.caller_phone {
        let contact: Option<i64> = crate::sql::query_scalar(
            "SELECT id FROM contacts WHERE account_id = $1 AND phone = $2",
        )
        .bind(facts.call.account_id)
        .bind(phone)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(cid) = contact {
            resolve_contact!(tx, cid, "call_answered", now_ms);
        }
    }
    Ok(())
}

impl Store {
    /// Records a call the moment the carrier reports it ringing.
    pub async fn record_incoming_call(&self, call: &NewCall) -> Result<()> {
        in_write_tx!(self, tx => { insert_call!(tx, call); });
        Ok(())
    }

    /// Call screening: the team member pressed the key, so a human took the call.
    pub async fn record_screen_accepted(&self, carrier_call_id: &str, now_ms: i64) -> Result<bool> {
        let n = in_write_tx!(self, tx => {
            crate::sql::query("UPDATE calls SET screen_accepted = TRUE, updated_at = $2 WHERE carrier_call_id = $1")
                .bind(carrier_call_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Settles the call's outcome once, by the missed-call rule (`DialFacts::missed`, with
    /// whether screening was accepted as the call's row says). For a missed call the
    /// contact, the outcome and the job that will text it back commit together, before the
    /// webhook answers. A call whose outcome is already settled (a retried webhook) changes
    /// nothing; returns (missed, newly settled). On PostgreSQL the dial results that arrive
    /// together are settled in one transaction (`dial_batch`).
    pub async fn record_dial_result(
        &self,
        facts: &DialFacts,
        screening: bool,
        now_ms: i64,
    ) -> Result<(bool, bool)> {
        if let Some(batch) = &self.dial_batch {
            let item = crate::dial_batch::DialResult {
                facts: facts.clone(),
                screening,
                now_ms,
            };
            return batch.submit(item).await;
        }
        self.record_dial_result_alone(facts, screening, now_ms)
            .await
    }

    /// `record_dial_result` in a transaction of its own.
    pub(crate) async fn record_dial_result_alone(
        &self,
        facts: &DialFacts,
        screening: bool,
        now_ms: i64,
    ) -> Result<(bool, bool)> {
        let result = in_write_tx!(self, tx => {
            let row = call_insert(KnownCall::ReturnLocked, &facts.call).fetch_one(&mut *tx).await?;
            let call_id: i64 = row.try_get("id")?;
            let outcome: Option<String> = row.try_get("outcome")?;
            if let Some(existing) = outcome {
                (existing != "answered", false)
            } else {
                let missed = facts.missed(screening, row.try_get("screen_accepted")?);
                if missed {
                    let contact_id: Option<i64> = match &facts.call.caller_phone {
                        Some(phone) => Some(
                            crate::sql::query_scalar(
                                "INSERT INTO contacts (account_id, phone, created_at, updated_at) \
                                 VALUES ($1, $2, $3, $3) ON CONFLICT (account_id, phone) \
                                 DO UPDATE SET updated_at = contacts.updated_at RETURNING id",
                            )
                            .bind(facts.call.account_id)
                            .bind(phone)
                            .bind(now_ms)
                            .fetch_one(&mut *tx)
                            .await?,
                        ),
                        None => None,
                    };
                    crate::sql::query(
                        "UPDATE calls SET outcome = 'missed', dial_status = COALESCE($2, dial_status), \
                         contact_id = $3, missed_at = $4, updated_at = $4 WHERE id = $1",
                    )
                    .bind(call_id)
                    .bind(&facts.dial_status)
                    .bind(contact_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                    let _event = fire_event!(tx, facts.call.account_id, contact_id, "missed_call", call_id, now_ms);
                    emit_call_missed(tx, facts, call_id, contact_id, now_ms, row.try_get("subscribed")?).await?;
                } else {
                    settle_answered(tx, facts, call_id, now_ms).await?;
                }
                (missed, true)
            }
        });
        if result.0 && result.1 {
            self.wake_workers();
        }
        Ok(result)
    }

    /// The number's status callback: records how the call ended. Returns the outcome the
    /// call had before (None when no `<Dial>` result ever arrived).
    pub async fn record_call_status(
        &self,
        call: &NewCall,
        call_status: &str,
        duration_secs: Option<i64>,
        now_ms: i64,
    ) -> Result<Option<String>> {
        let outcome = in_write_tx!(self, tx => {
            insert_call!(tx, call);
            crate::sql::query(
                "UPDATE calls SET status = $2, duration_secs = COALESCE($3, duration_secs), \
                 ended_at = $4, updated_at = $4 WHERE carrier_call_id = $1",
            )
            .bind(&call.carrier_call_id)
            .bind(call_status)
            .bind(duration_secs)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            let o: Option<String> = crate::sql::query_scalar("SELECT outcome FROM calls WHERE carrier_call_id = $1")
                .bind(&call.carrier_call_id)
                .fetch_one(&mut *tx)
                .await?;
            o
        });
        Ok(outcome)
    }

    /// Attaches a voicemail recording to its call.
    /// The first recording of a call fires `voicemail_left`; a retried webhook does not.
    pub async fn record_voicemail(
        &self,
        carrier_call_id: &str,
        url: &str,
        secs: Option<i64>,
        now_ms: i64,
    ) -> Result<bool> {
        let fired = in_write_tx!(self, tx => {
            let row = crate::sql::query(
                "UPDATE calls SET recording_url = $2, recording_secs = $3, \
                 outcome = CASE WHEN outcome = 'missed' THEN 'voicemail' ELSE outcome END, updated_at = $4 \
                 WHERE carrier_call_id = $1 AND recording_url IS NULL RETURNING id, account_id, contact_id",
            )
            .bind(carrier_call_id)
            .bind(url)
            .bind(secs)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                Some(r) => {
                    let call_id: i64 = r.try_get("id")?;
                    let account_id: i64 = r.try_get("account_id")?;
                    let contact_id: Option<i64> = r.try_get("contact_id")?;
                    let _event = fire_event!(tx, account_id, contact_id, "voicemail_left", call_id, now_ms);
                    true
                }
                None => false,
            }
        });
        if fired {
            self.wake_workers();
        }
        Ok(fired)
    }

    /// Attaches the voicemail's transcription to its call; `false` if no such call. The
    /// text is the carrier's words, kept as they came (pages escape it).
    pub async fn record_transcript(
        &self,
        carrier_call_id: &str,
        text: &str,
        now_ms: i64,
    ) -> Result<bool> {
        let n = in_write_tx!(self, tx => {
            crate::sql::query("UPDATE calls SET voicemail_transcript = $2, updated_at = $3 WHERE carrier_call_id = $1")
                .bind(carrier_call_id)
                .bind(text)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    pub async fn call_by_carrier_id(&self, carrier_call_id: &str) -> Result<Option<CallView>> {
        let sql = format!("{CALL_VIEW} WHERE c.carrier_call_id = $1");
        on_pool!(self, pool => {
            let row = crate::sql::query(sql).bind(carrier_call_id).fetch_optional(pool).await?;
            Ok(match row { Some(r) => Some(call_view_from_row!(r)), None => None })
        })
    }

    pub async fn recent_calls(&self, limit: i64) -> Result<Vec<CallView>> {
        let sql = format!("{CALL_VIEW} ORDER BY c.started_at DESC, c.id DESC LIMIT $1");
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(call_view_from_row!(r)); }
            Ok(out)
        })
    }
}
