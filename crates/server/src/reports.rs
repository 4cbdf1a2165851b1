//! Reports: the funnel by day, median times, and reply rates by message variant.

use jiff::tz::TimeZone;
use serde_json::{Value, json};
use textback_core::reports::{CallFacts, Report, funnel};
use textback_core::variants::{VariantCounts, compare};
use textback_store::{AccountRecord, Store, StoreError};

/// The account's report over the last `days` days, as JSON.
pub async fn build(
    store: &Store,
    account_id: i64,
    days: i64,
    now_ms: i64,
) -> Result<Option<Value>, StoreError> {
    let Some(account) = store.account_by_id(account_id).await? else {
        return Ok(None);
    };
    let report = funnel_of(store, &account, days, now_ms).await?;
    let mut variants: Vec<Value> = Vec::new();
    let rows = store.variant_counts(account_id).await?;
    let mut keys: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.workflow.clone(), r.step.clone()))
        .collect();
    keys.dedup();
    for (workflow, step) in keys {
        let counts: Vec<VariantCounts> = rows
            .iter()
            .filter(|r| r.workflow == workflow && r.step == step)
            .map(|r| VariantCounts {
                name: r.variant.clone(),
                sent: r.sent.max(0) as u64,
                delivered: r.delivered.max(0) as u64,
                replied: r.replied.max(0) as u64,
            })
            .collect();
        variants.push(json!({"workflow": workflow, "step": step, "comparison": compare(&counts)}));
    }
    Ok(Some(json!({
        "account": account.slug,
        "time_zone": account.time_zone,
        "days": days,
        "funnel": report.totals,
        "by_day": report.days,
        "median_seconds_to_text": report.median_seconds_to_text,
        "median_seconds_to_call_back": report.median_seconds_to_call_back,
        "variants": variants,
    })))
}

/// The account's funnel over the last `days` days, without the variant comparison (which
/// counts every text the account ever sent with a variant): what the Today page shows.
pub async fn funnel_of(
    store: &Store,
    account: &AccountRecord,
    days: i64,
    now_ms: i64,
) -> Result<Report, StoreError> {
    let tz = TimeZone::get(&account.time_zone).unwrap_or(TimeZone::UTC);
    let since = now_ms - days * 24 * 3600 * 1000;
    let calls: Vec<CallFacts> = store
        .funnel_rows(account.id, since)
        .await?
        .into_iter()
        .map(|r| CallFacts {
            started_at_ms: r.started_at_ms,
            missed: r.missed,
            texted_at_ms: r.texted_at_ms,
            delivered: r.delivered,
            replied_at_ms: r.replied_at_ms,
            called_back_at_ms: r.called_back_at_ms,
        })
        .collect();
    Ok(funnel(&calls, &tz))
}
