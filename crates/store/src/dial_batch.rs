//! PostgreSQL: the dial results that arrive together settled in one transaction
//! (`pg_batch`). A missed call's webhook transaction is five statements and a commit per
//! call on its own (`Store::record_dial_result_alone`); a batch writes the calls (inserted
//! or locked), the new contacts, the calls' outcomes and the events with their trigger jobs
//! with one statement each. Answered calls and webhook subscriptions, both rare on this
//! path, run their statements per call in the same transaction.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::calls::{DialFacts, emit_call_missed, settle_answered};
use crate::events_out::subscribed_sql;
use crate::pg_batch::{Batched, id_array};
use crate::sql::WriteTx;
use crate::sqlite_writer::Lane;
use crate::{JobKind, Result, Store, StoreError};

/// A dial result to settle: the facts, whether the number screens calls, when.
pub(crate) struct DialResult {
    pub(crate) facts: DialFacts,
    pub(crate) screening: bool,
    pub(crate) now_ms: i64,
}

impl Batched for DialResult {
    type Item = DialResult;
    /// (missed, newly settled)
    type Out = (bool, bool);
    type Key = String;
    const WHAT: &'static str = "dial results";

    fn key(item: &DialResult) -> String {
        item.facts.call.carrier_call_id.clone()
    }

    async fn together(store: &Store, items: &[DialResult]) -> Result<Vec<(bool, bool)>> {
        settle_together(store, items).await
    }

    async fn alone(store: &Store, item: &DialResult) -> Result<(bool, bool)> {
        store
            .record_dial_result_alone(&item.facts, item.screening, item.now_ms)
            .await
    }

    fn settled(store: &Store, outs: &[(bool, bool)]) {
        if outs.iter().any(|&(missed, newly)| missed && newly) {
            store.wake_workers();
        }
    }
}

/// One call's row as the batch's insert returned it.
struct CallRow {
    id: i64,
    outcome: Option<String>,
    screen_accepted: bool,
    subscribed: bool,
}

#[derive(Serialize)]
struct CallIn<'a> {
    account_id: i64,
    number_id: i64,
    carrier: &'a str,
    carrier_call_id: &'a str,
    caller: &'a str,
    caller_phone: Option<&'a str>,
    at: i64,
}

#[derive(Serialize)]
struct ContactIn<'a> {
    account_id: i64,
    phone: &'a str,
    at: i64,
}

#[derive(Serialize)]
struct MissIn<'a> {
    id: i64,
    account_id: i64,
    dial_status: Option<&'a str>,
    contact_id: Option<i64>,
    at: i64,
}

/// Settles `batch` (distinct call ids, sorted) in one transaction; the results in its order.
async fn settle_together(store: &Store, batch: &[DialResult]) -> Result<Vec<(bool, bool)>> {
    let mut tx = store.begin_write(Lane::Urgent).await?;
    let calls = lock_calls(&mut tx, batch).await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut misses = Vec::new();
    for p in batch {
        let row = calls.get(&p.facts.call.carrier_call_id).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "call {} not returned",
                p.facts.call.carrier_call_id
            ))
        })?;
        match &row.outcome {
            Some(existing) => results.push((existing != "answered", false)),
            None => {
                let missed = p.facts.missed(p.screening, row.screen_accepted);
                if missed {
                    misses.push((p, row));
                } else {
                    settle_answered(&mut tx, &p.facts, row.id, p.now_ms).await?;
                }
                results.push((missed, true));
            }
        }
    }
    if !misses.is_empty() {
        let contacts = upsert_contacts(&mut tx, &misses).await?;
        let mut rows: Vec<MissIn> = Vec::with_capacity(misses.len());
        for (p, row) in &misses {
            let account_id = p.facts.call.account_id;
            let contact_id = match &p.facts.call.caller_phone {
                Some(phone) => {
                    Some(*contacts.get(&(account_id, phone.clone())).ok_or_else(|| {
                        StoreError::Corrupt(format!("contact {phone} not returned"))
                    })?)
                }
                None => None,
            };
            rows.push(MissIn {
                id: row.id,
                account_id,
                dial_status: p.facts.dial_status.as_deref(),
                contact_id,
                at: p.now_ms,
            });
        }
        let json = crate::to_json(&rows);
        crate::sql::query(
            "UPDATE calls SET outcome = 'missed', dial_status = COALESCE(x.dial_status, calls.dial_status), \
             contact_id = x.contact_id, missed_at = x.at, updated_at = x.at \
             FROM json_to_recordset($1::json) AS x(id bigint, dial_status text, contact_id bigint, at bigint) \
             WHERE calls.id = x.id AND calls.id = ANY(CAST($2 AS bigint[]))",
        )
        .bind(json.as_str())
        .bind(id_array(rows.iter().map(|r| r.id)))
        .execute(&mut tx)
        .await?;
        // The events and the jobs that trigger their workflows, as `fire_event!` writes them.
        crate::sql::query(
            "WITH e AS (INSERT INTO events (account_id, contact_id, kind, subject_id, at) \
             SELECT account_id, contact_id, 'missed_call', id, at \
             FROM json_to_recordset($1::json) AS x(id bigint, account_id bigint, contact_id bigint, at bigint) \
             RETURNING id, at) \
             INSERT INTO jobs (kind, subject_id, unique_key, run_at, max_attempts, created_at) \
             SELECT $2, id, NULL, at, $3, at FROM e",
        )
        .bind(json.as_str())
        .bind(JobKind::Trigger.as_str())
        .bind(JobKind::Trigger.max_attempts())
        .execute(&mut tx)
        .await?;
        for ((p, row), miss) in misses.iter().zip(&rows) {
            let (call, contact) = (row.id, miss.contact_id);
            emit_call_missed(&mut tx, &p.facts, call, contact, p.now_ms, row.subscribed).await?;
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Inserts the calls not known yet and locks every one (the no-op update takes the row
/// lock), as `record_dial_result_alone`'s first statement does per call.
async fn lock_calls(
    tx: &mut WriteTx<'_>,
    batch: &[DialResult],
) -> Result<HashMap<String, CallRow>> {
    let rows: Vec<CallIn> = batch
        .iter()
        .map(|p| {
            let c = &p.facts.call;
            CallIn {
                account_id: c.account_id,
                number_id: c.number_id,
                carrier: &c.carrier,
                carrier_call_id: &c.carrier_call_id,
                caller: &c.caller,
                caller_phone: c.caller_phone.as_deref(),
                at: c.at_ms,
            }
        })
        .collect();
    let returned = crate::sql::query(concat!(
        "INSERT INTO calls (account_id, number_id, carrier, carrier_call_id, caller, caller_phone, \
         status, started_at, created_at, updated_at) \
         SELECT account_id, number_id, carrier, carrier_call_id, caller, caller_phone, 'ringing', at, at, at \
         FROM json_to_recordset($1::json) AS x(account_id bigint, number_id bigint, carrier text, \
         carrier_call_id text, caller text, caller_phone text, at bigint) \
         ON CONFLICT (carrier_call_id) DO UPDATE SET updated_at = calls.updated_at \
         RETURNING id, carrier_call_id, outcome, screen_accepted, ",
        subscribed_sql!("calls.account_id")
    ))
    .bind(crate::to_json(&rows))
    .fetch_all(&mut *tx)
    .await?;
    let mut calls = HashMap::with_capacity(batch.len());
    for r in returned {
        let row = CallRow {
            id: r.try_get("id")?,
            outcome: r.try_get("outcome")?,
            screen_accepted: r.try_get("screen_accepted")?,
            subscribed: r.try_get("subscribed")?,
        };
        calls.insert(r.try_get("carrier_call_id")?, row);
    }
    Ok(calls)
}

/// The missed callers' contacts, created when new: (account, phone) → contact id.
async fn upsert_contacts(
    tx: &mut WriteTx<'_>,
    misses: &[(&DialResult, &CallRow)],
) -> Result<HashMap<(i64, String), i64>> {
    // Each contact once (one statement may not update a row twice), in one order.
    let mut wanted: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    for (p, _) in misses {
        if let Some(phone) = p.facts.call.caller_phone.as_deref() {
            wanted
                .entry((p.facts.call.account_id, phone))
                .or_insert(p.now_ms);
        }
    }
    let mut contacts = HashMap::with_capacity(wanted.len());
    if wanted.is_empty() {
        return Ok(contacts);
    }
    let rows: Vec<ContactIn> = wanted
        .iter()
        .map(|(&(account_id, phone), &at)| ContactIn {
            account_id,
            phone,
            at,
        })
        .collect();
    let returned = crate::sql::query(
        "INSERT INTO contacts (account_id, phone, created_at, updated_at) \
         SELECT account_id, phone, at, at FROM json_to_recordset($1::json) AS x(account_id bigint, phone text, at bigint) \
         ON CONFLICT (account_id, phone) DO UPDATE SET updated_at = contacts.updated_at \
         RETURNING id, account_id, phone",
    )
    .bind(crate::to_json(&rows))
    .fetch_all(&mut *tx)
    .await?;
    for r in returned {
        let account_id: i64 = r.try_get("account_id")?;
        contacts.insert((account_id, r.try_get("phone")?), r.try_get("id")?);
    }
    Ok(contacts)
}
