//! Outbound event webhooks: an event is written as deliveries (one per matching
//! subscription) in the same transaction as the fact it reports, so it is never lost and
//! never sent for something that did not happen.

use crate::{Result, Store, in_write_tx, on_pool};

/// The events an integrator can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "call.missed",
    "text_back.sent",
    "text_back.suppressed",
    "message.received",
    "message.status",
    "contact.opted_out",
    "task.created",
    "task.completed",
];

/// Whether account `$account` (an SQL expression) has an active webhook subscription, as a
/// column a statement the transaction runs anyway can return: `emit_event!`'s `subscribed`
/// form then skips its read of the subscriptions when there are none (most accounts; that
/// read was 3 of ~43 statements per missed call on PostgreSQL).
macro_rules! subscribed_sql {
    ($account:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.account_id = ",
            $account,
            " AND s.active) AS subscribed"
        )
    };
}

pub(crate) use subscribed_sql;

/// Queues `$payload` (a `serde_json::Value` for `data`) to every active subscription of the
/// account that wants `$event`. With `subscribed: $known` (read earlier in the same
/// transaction with `subscribed_sql!`), nothing is read or built when it is false.
macro_rules! emit_event {
    ($tx:expr, $account_id:expr, $event:expr, $payload:expr, $now:expr, subscribed: $known:expr) => {{
        let known: bool = $known;
        if known {
            $crate::events_out::emit_event!($tx, $account_id, $event, $payload, $now);
        }
    }};
    ($tx:expr, $account_id:expr, $event:expr, $payload:expr, $now:expr) => {{
        let account_id: i64 = $account_id;
        let event: &str = $event;
        let now: i64 = $now;
        let subs = crate::sql::query("SELECT id, url, events FROM webhook_subscriptions WHERE account_id = $1 AND active")
            .bind(account_id)
            .fetch_all(&mut *$tx)
            .await?;
        for s in subs {
            let events: Vec<String> = $crate::from_json("events", &s.try_get::<String, _>("events")?)?;
            if !events.iter().any(|e| e == event || e == "*") {
                continue;
            }
            let sub_id: i64 = s.try_get("id")?;
            let url: String = s.try_get("url")?;
            let body = serde_json::json!({
                "type": event,
                "timestamp": jiff::Timestamp::from_millisecond(now).map(|t| t.to_string()).unwrap_or_default(),
                "data": $payload,
            })
            .to_string();
            let id: i64 = crate::sql::query_scalar(
                "INSERT INTO webhook_deliveries (account_id, url, payload, created_at, event, subscription_id) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(account_id)
            .bind(&url)
            .bind(&body)
            .bind(now)
            .bind(event)
            .bind(sub_id)
            .fetch_one(&mut *$tx)
            .await?;
            let _q = $crate::jobs::enqueue!($tx, $crate::JobKind::Webhook, id, Some($crate::JobKind::Webhook.key(id)), now, now);
        }
    }};
}

pub(crate) use emit_event;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subscription {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
}

impl Store {
    /// Creates or updates the account's subscription for `url`.
    pub async fn save_subscription(
        &self,
        account_id: i64,
        url: &str,
        events: &[String],
        active: bool,
        now_ms: i64,
    ) -> Result<i64> {
        in_write_tx!(self, tx => {
            let id: i64 = crate::sql::query_scalar(
                "INSERT INTO webhook_subscriptions (account_id, url, events, active, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (account_id, url) DO UPDATE SET events = excluded.events, active = excluded.active RETURNING id",
            )
            .bind(account_id)
            .bind(url)
            .bind(crate::to_json(&events))
            .bind(active)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            Ok(id)
        })
    }

    pub async fn subscriptions(&self, account_id: i64) -> Result<Vec<Subscription>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query("SELECT id, url, events, active FROM webhook_subscriptions WHERE account_id = $1 ORDER BY id")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(Subscription {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    events: crate::from_json("events", &r.try_get::<String, _>("events")?)?,
                    active: r.try_get("active")?,
                });
            }
            Ok(out)
        })
    }

    pub async fn delete_subscription(&self, account_id: i64, id: i64) -> Result<bool> {
        let n = in_write_tx!(self, tx => {
            crate::sql::query("UPDATE webhook_subscriptions SET active = FALSE WHERE account_id = $1 AND id = $2 AND active")
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }
}
