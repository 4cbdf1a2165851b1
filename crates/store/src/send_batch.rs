//! PostgreSQL: the send outcomes that arrive together recorded in one transaction
//! (`pg_batch`). On its own an outcome is three statements and a commit
//! (`Store::record_send_outcome_alone`): the message, its call, the finished job. A batch
//! writes all three tables with one statement. What few outcomes write beyond those rows (a
//! subscription's `text_back.sent`, a refusal's effect on the contact) runs per outcome in
//! the same transaction.

use std::collections::HashSet;

use serde::Serialize;

use crate::events_out::subscribed_sql;
use crate::messages::{OutcomeColumns, SendResult, after_send_outcome, outcome_columns};
use crate::pg_batch::{Batched, id_array};
use crate::sqlite_writer::Lane;
use crate::{Result, Store};

impl Batched for SendResult {
    type Item = SendResult;
    type Out = ();
    type Key = i64;
    const WHAT: &'static str = "send outcomes";

    fn key(item: &SendResult) -> i64 {
        item.msg.id
    }

    async fn together(store: &Store, items: &[SendResult]) -> Result<Vec<()>> {
        record_together(store, items).await
    }

    async fn alone(store: &Store, item: &SendResult) -> Result<()> {
        store
            .record_send_outcome_alone(&item.msg, &item.outcome, item.done_job, item.now_ms)
            .await
    }

    fn settled(_: &Store, _: &[()]) {}
}

#[derive(Serialize)]
struct OutcomeIn<'a> {
    id: i64,
    status: &'a str,
    carrier_message_id: Option<&'a str>,
    carrier_status: Option<&'a str>,
    segments: Option<i64>,
    error_code: Option<i64>,
    error_message: Option<&'a str>,
    at: i64,
    call_id: Option<i64>,
    call_status: Option<&'a str>,
    call_reason: Option<&'a str>,
    job_id: Option<i64>,
}

async fn record_together(store: &Store, items: &[SendResult]) -> Result<Vec<()>> {
    let columns: Vec<OutcomeColumns> = items
        .iter()
        .map(|r| outcome_columns(&r.msg, &r.outcome))
        .collect();
    let rows: Vec<OutcomeIn> = items
        .iter()
        .zip(&columns)
        .map(|(r, c)| OutcomeIn {
            id: r.msg.id,
            status: &c.status,
            carrier_message_id: c.carrier_id.as_deref(),
            carrier_status: c.carrier_status.as_deref(),
            segments: c.segments,
            error_code: c.code,
            error_message: c.error.as_deref(),
            at: r.now_ms,
            // The call is written only with a status for it, as alone.
            call_id: c.call_status.as_ref().and(r.msg.call_id),
            call_status: c.call_status.as_ref().map(|(s, _)| *s),
            call_reason: c.call_status.as_ref().and_then(|(_, why)| why.as_deref()),
            job_id: r.done_job,
        })
        .collect();
    let mut tx = store.begin_write(Lane::Background).await?;
    let returned = crate::sql::query(concat!(
        "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(id bigint, status text, \
         carrier_message_id text, carrier_status text, segments bigint, error_code bigint, \
         error_message text, at bigint, call_id bigint, call_status text, call_reason text, job_id bigint)), \
         m AS (UPDATE messages SET status = x.status, \
         carrier_message_id = COALESCE(x.carrier_message_id, messages.carrier_message_id), \
         carrier_status = COALESCE(x.carrier_status, messages.carrier_status), \
         segments = COALESCE(x.segments, messages.segments), error_code = x.error_code, \
         error_message = x.error_message, \
         sent_at = CASE WHEN x.carrier_message_id IS NULL THEN messages.sent_at ELSE x.at END, \
         updated_at = x.at FROM x WHERE messages.id = x.id AND messages.id = ANY(CAST($2 AS bigint[])) \
         RETURNING messages.id, ",
        subscribed_sql!("messages.account_id"),
        "), c AS (UPDATE calls SET text_back_status = x.call_status, text_back_reason = x.call_reason, \
         updated_at = x.at FROM x WHERE calls.id = x.call_id AND calls.id = ANY(CAST($3 AS bigint[]))), \
         j AS (DELETE FROM jobs WHERE id = ANY(CAST($4 AS bigint[]))) \
         SELECT id FROM m WHERE subscribed",
    ))
    .bind(crate::to_json(&rows))
    .bind(id_array(rows.iter().map(|r| r.id)))
    .bind(id_array(rows.iter().filter_map(|r| r.call_id)))
    .bind(id_array(rows.iter().filter_map(|r| r.job_id)))
    .fetch_all(&mut tx)
    .await?;
    let mut subscribed = HashSet::with_capacity(returned.len());
    for r in returned {
        subscribed.insert(r.try_get::<i64, _>("id")?);
    }
    for r in items {
        let subscribed = subscribed.contains(&r.msg.id);
        after_send_outcome(&mut tx, &r.msg, &r.outcome, subscribed, r.now_ms).await?;
    }
    tx.commit().await?;
    Ok(vec![(); items.len()])
}
