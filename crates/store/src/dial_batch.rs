//! PostgreSQL: the dial results that arrive together are settled in one transaction.
//!
//! A missed call's webhook transaction is five statements and a commit per call on its own
//! (`Store::record_dial_result_alone`). Here one task settles one batch at a time: what
//! arrived while the previous batch was written. It writes each table's rows for all of
//! them with one statement: the calls (inserted or locked), the new contacts, the calls'
//! outcomes, the events with their trigger jobs. Nothing is acknowledged before that
//! commit, as before. Answered calls and webhook subscriptions, both rare on this path, run
//! their statements per call in the same transaction. A batch of one is settled alone.
//!
//! If the database refuses the batch (a deadlock with another instance, one call it will
//! not take), nothing of it is stored and each call is settled in a transaction of its
//! own, so one bad call fails alone. If the database does not answer, every call of the
//! batch gets the error at once (the webhook spools it) instead of waiting for it again.
//! SQLite does not need this: its one writer commits what is waiting together already
//! (`sqlite_writer`).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::calls::{DialFacts, emit_call_missed, settle_answered};
use crate::sql::WriteTx;
use crate::sqlite_writer::Lane;
use crate::{JobKind, Result, Store, StoreError};

/// The most dial results one transaction settles; more wait for the next.
const MAX_BATCH: usize = 128;

/// The sender's side: what `Store::record_dial_result` hands its call to.
#[derive(Clone)]
pub(crate) struct DialBatch {
    queue: mpsc::UnboundedSender<Pending>,
}

struct Pending {
    facts: DialFacts,
    screening: bool,
    now_ms: i64,
    reply: oneshot::Sender<Result<(bool, bool)>>,
}

impl DialBatch {
    /// Starts the task that settles batches on `store` (a store without a batch of its
    /// own); it ends when every `DialBatch` is dropped.
    pub(crate) fn start(store: Store) -> DialBatch {
        let (queue, mut rx) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                settle_batch(&store, batch).await;
            }
        });
        DialBatch { queue }
    }

    pub(crate) async fn settle(
        &self,
        facts: DialFacts,
        screening: bool,
        now_ms: i64,
    ) -> Result<(bool, bool)> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Writer("the dial result batch stopped".into());
        self.queue
            .send(Pending {
                facts,
                screening,
                now_ms,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn settle_batch(store: &Store, batch: Vec<Pending>) {
    // A call id twice in one batch (a retried webhook) waits for the batch, then finds its
    // call settled; one statement may not lock the same row twice.
    let mut seen = HashSet::new();
    let (mut together, again): (Vec<Pending>, Vec<Pending>) = batch
        .into_iter()
        .partition(|p| seen.insert(p.facts.call.carrier_call_id.clone()));
    // Rows locked in one order by every instance cannot deadlock each other.
    together.sort_by(|a, b| {
        a.facts
            .call
            .carrier_call_id
            .cmp(&b.facts.call.carrier_call_id)
    });
    let alone = if together.len() < 2 {
        together
    } else {
        match settle_together(store, &together).await {
            Ok(results) => {
                if results.iter().any(|&(missed, newly)| missed && newly) {
                    store.wake_workers();
                }
                for (p, r) in together.into_iter().zip(results) {
                    let _gone = p.reply.send(Ok(r));
                }
                Vec::new()
            }
            // The database refused something in it: each call alone, so only that one fails.
            Err(StoreError::Database(sqlx::Error::Database(e))) => {
                tracing::warn!(error = %e, calls = together.len(), "a batch of dial results was refused; settling each alone");
                together
            }
            // The database did not answer: alone, each would wait for it again.
            Err(e) => {
                let why = e.to_string();
                for p in together {
                    let _gone = p.reply.send(Err(StoreError::NotCommitted(why.clone())));
                }
                Vec::new()
            }
        }
    };
    // This batch's calls settle before the next batch is taken, which is what lets the
    // next one gather what arrives meanwhile; those alone run side by side.
    let mut running = JoinSet::new();
    for p in alone.into_iter().chain(again) {
        let store = store.clone();
        running.spawn(async move {
            let r = store
                .record_dial_result_alone(&p.facts, p.screening, p.now_ms)
                .await;
            let _gone = p.reply.send(r);
        });
    }
    while running.join_next().await.is_some() {}
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
async fn settle_together(store: &Store, batch: &[Pending]) -> Result<Vec<(bool, bool)>> {
    let mut tx = store.begin_write(Lane::Urgent).await?;
    let calls = lock_calls(&mut tx, batch).await?;
    let mut results = Vec::with_capacity(batch.len());
    let mut misses = Vec::new();
    for p in batch {
        let row = calls
            .get(p.facts.call.carrier_call_id.as_str())
            .ok_or_else(|| {
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
        let rows: Vec<MissIn> = misses
            .iter()
            .map(|(p, row)| MissIn {
                id: row.id,
                account_id: p.facts.call.account_id,
                dial_status: p.facts.dial_status.as_deref(),
                contact_id: p.facts.call.caller_phone.as_deref().and_then(|phone| {
                    contacts
                        .get(&(p.facts.call.account_id, phone.to_owned()))
                        .copied()
                }),
                at: p.now_ms,
            })
            .collect();
        let json = crate::to_json(&rows);
        crate::sql::query(
            "UPDATE calls SET outcome = 'missed', dial_status = COALESCE(x.dial_status, calls.dial_status), \
             contact_id = x.contact_id, missed_at = x.at, updated_at = x.at \
             FROM json_to_recordset($1::json) AS x(id bigint, dial_status text, contact_id bigint, at bigint) \
             WHERE calls.id = x.id",
        )
        .bind(json.as_str())
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
            if row.subscribed {
                emit_call_missed(&mut tx, &p.facts, row.id, miss.contact_id, p.now_ms).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Inserts the calls not known yet and locks every one (the no-op update takes the row
/// lock), as `record_dial_result_alone`'s first statement does per call.
async fn lock_calls<'b>(
    tx: &mut WriteTx<'_>,
    batch: &'b [Pending],
) -> Result<HashMap<&'b str, CallRow>> {
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
    let returned = crate::sql::query(
        "INSERT INTO calls (account_id, number_id, carrier, carrier_call_id, caller, caller_phone, \
         status, started_at, created_at, updated_at) \
         SELECT account_id, number_id, carrier, carrier_call_id, caller, caller_phone, 'ringing', at, at, at \
         FROM json_to_recordset($1::json) AS x(account_id bigint, number_id bigint, carrier text, \
         carrier_call_id text, caller text, caller_phone text, at bigint) \
         ON CONFLICT (carrier_call_id) DO UPDATE SET updated_at = calls.updated_at \
         RETURNING id, carrier_call_id, outcome, screen_accepted, \
         EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.account_id = calls.account_id AND s.active) AS subscribed",
    )
    .bind(crate::to_json(&rows))
    .fetch_all(&mut *tx)
    .await?;
    let mut calls = HashMap::with_capacity(batch.len());
    for r in returned {
        let key: String = r.try_get("carrier_call_id")?;
        let Some(p) = batch.iter().find(|p| p.facts.call.carrier_call_id == key) else {
            return Err(StoreError::Corrupt(format!(
                "call {key} returned but not sent"
            )));
        };
        calls.insert(
            p.facts.call.carrier_call_id.as_str(),
            CallRow {
                id: r.try_get("id")?,
                outcome: r.try_get("outcome")?,
                screen_accepted: r.try_get("screen_accepted")?,
                subscribed: r.try_get("subscribed")?,
            },
        );
    }
    Ok(calls)
}

/// The missed callers' contacts, created when new: (account, phone) → contact id.
async fn upsert_contacts(
    tx: &mut WriteTx<'_>,
    misses: &[(&Pending, &CallRow)],
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
        let phone: String = r.try_get("phone")?;
        if !wanted.contains_key(&(account_id, phone.as_str())) {
            return Err(StoreError::Corrupt(format!(
                "contact {phone} returned but not sent"
            )));
        }
        contacts.insert((account_id, phone), r.try_get("id")?);
    }
    Ok(contacts)
}
