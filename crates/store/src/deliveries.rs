//! Outbound webhook deliveries (the workflow `webhook` step).

use crate::{Result, Store, in_write_tx, on_pool};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub account_id: i64,
    pub url: String,
    pub payload: String,
    pub status: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub url: String,
    pub status: String,
    pub attempts: i64,
    pub response_status: Option<i64>,
    pub last_error: Option<String>,
}

impl Store {
    pub async fn delivery(&self, id: i64) -> Result<Option<Delivery>> {
        on_pool!(self, pool => {
            let r = crate::sql::query("SELECT id, account_id, url, payload, status, created_at FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match r {
                Some(r) => Some(Delivery {
                    id: r.try_get("id")?,
                    account_id: r.try_get("account_id")?,
                    url: r.try_get("url")?,
                    payload: r.try_get("payload")?,
                    status: r.try_get("status")?,
                    created_at_ms: r.try_get("created_at")?,
                }),
                None => None,
            })
        })
    }

    /// Records one attempt; with `done_job`, a final outcome that completes the job in the
    /// same transaction.
    pub async fn record_delivery_attempt(
        &self,
        id: i64,
        status: &str,
        response_status: Option<i64>,
        error: Option<&str>,
        done_job: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        in_write_tx!(background self, tx => {
            crate::sql::query(
                "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, response_status = $3, last_error = $4, \
                 delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END WHERE id = $1",
            )
            .bind(id)
            .bind(status)
            .bind(response_status)
            .bind(error)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if let Some(job) = done_job {
                crate::sql::query("DELETE FROM jobs WHERE id = $1").bind(job).execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    pub async fn deliveries(&self, account_id: i64, limit: i64) -> Result<Vec<DeliveryView>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT id, url, status, attempts, response_status, last_error FROM webhook_deliveries \
                 WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(account_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(DeliveryView {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    status: r.try_get("status")?,
                    attempts: r.try_get("attempts")?,
                    response_status: r.try_get("response_status")?,
                    last_error: r.try_get("last_error")?,
                });
            }
            Ok(out)
        })
    }
}
