//! Facts `textback doctor` checks.

use crate::calls::{CALL_VIEW, CallView, call_view_from_row};
use textback_core::phone::TEST_CALLER;

use crate::{Result, Store, on_pool};

/// How often one carrier error code hit an account's texts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorCount {
    /// The carrier whose code this is: the same number means different things at each.
    pub carrier: String,
    pub code: i64,
    pub count: i64,
    pub last_at_ms: i64,
}

impl Store {
    pub async fn carrier_errors_since(
        &self,
        account_id: i64,
        since_ms: i64,
    ) -> Result<Vec<ErrorCount>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT carrier, error_code, COUNT(*) AS n, MAX(updated_at) AS last_at FROM messages \
                 WHERE account_id = $1 AND error_code IS NOT NULL AND updated_at >= $2 \
                 GROUP BY carrier, error_code ORDER BY carrier, error_code",
            )
            .bind(account_id)
            .bind(since_ms)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ErrorCount {
                    carrier: r.try_get("carrier")?,
                    code: r.try_get("error_code")?,
                    count: r.try_get("n")?,
                    last_at_ms: r.try_get("last_at")?,
                });
            }
            Ok(out)
        })
    }

    pub async fn last_missed_call(&self, account_id: i64) -> Result<Option<CallView>> {
        let sql = format!(
            "{CALL_VIEW} WHERE c.account_id = $1 AND c.outcome IN ('missed', 'voicemail') \
             ORDER BY c.started_at DESC, c.id DESC LIMIT 1"
        );
        on_pool!(self, pool => {
            let row = crate::sql::query(sql).bind(account_id).fetch_optional(pool).await?;
            Ok(match row { Some(r) => Some(call_view_from_row!(r)), None => None })
        })
    }

    /// Recent missed calls that were not texted, with the reason recorded on each.
    pub async fn recent_calls_not_texted(&self, limit: i64) -> Result<Vec<CallView>> {
        let sql = format!(
            "{CALL_VIEW} WHERE c.outcome IN ('missed', 'voicemail') \
             AND (c.text_back_status IS NULL OR c.text_back_status NOT IN ('queued', 'sent', 'delivered')) \
             ORDER BY c.started_at DESC, c.id DESC LIMIT $1"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(call_view_from_row!(r)); }
            Ok(out)
        })
    }
}

/// Sends of one variant of one workflow step, with deliveries and replies within 24 hours.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VariantRow {
    pub workflow: String,
    pub step: String,
    pub variant: String,
    pub sent: i64,
    pub delivered: i64,
    pub replied: i64,
}

impl Store {
    /// Per workflow step and variant: texts sent, delivered, replied to. Texts to the test
    /// caller are left out.
    pub async fn variant_counts(&self, account_id: i64) -> Result<Vec<VariantRow>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT w.name AS workflow, m.step, m.variant, COUNT(*) AS sent, \
                 SUM(CASE WHEN m.status IN ('delivered', 'read') THEN 1 ELSE 0 END) AS delivered, \
                 SUM(CASE WHEN EXISTS (SELECT 1 FROM messages r WHERE r.contact_id = m.contact_id \
                   AND r.direction = 'inbound' AND r.created_at > m.created_at \
                   AND r.created_at <= m.created_at + 86400000) THEN 1 ELSE 0 END) AS replied \
                 FROM messages m JOIN workflow_runs ru ON ru.id = m.run_id JOIN workflows w ON w.id = ru.workflow_id \
                 WHERE m.account_id = $1 AND m.variant IS NOT NULL AND m.to_phone <> $2 \
                 AND m.status NOT IN ('pending', 'submitting', 'canceled', 'failed') \
                 GROUP BY w.name, m.step, m.variant ORDER BY w.name, m.step, m.variant",
            )
            .bind(account_id)
            .bind(TEST_CALLER)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(VariantRow {
                    workflow: r.try_get("workflow")?,
                    step: r.try_get("step")?,
                    variant: r.try_get("variant")?,
                    sent: r.try_get("sent")?,
                    delivered: r.try_get("delivered")?,
                    replied: r.try_get("replied")?,
                });
            }
            Ok(out)
        })
    }
}

/// One call's path through the funnel, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelRow {
    pub started_at_ms: i64,
    pub missed: bool,
    pub texted_at_ms: Option<i64>,
    pub delivered: bool,
    pub replied_at_ms: Option<i64>,
    pub called_back_at_ms: Option<i64>,
}

impl Store {
    /// Every call of the account since `since_ms`, with its text back, delivery, reply
    /// (within 24 hours of the text) and callback. Test calls are left out.
    pub async fn funnel_rows(&self, account_id: i64, since_ms: i64) -> Result<Vec<FunnelRow>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT c.started_at, c.outcome, m.sent_at, m.status AS text_status, \
                 (SELECT MIN(r.created_at) FROM messages r WHERE r.contact_id = c.contact_id AND r.direction = 'inbound' \
                    AND m.created_at IS NOT NULL AND r.created_at > m.created_at AND r.created_at <= m.created_at + 86400000) AS replied_at, \
                 (SELECT MIN(t.completed_at) FROM tasks t WHERE t.call_id = c.id AND t.status = 'done') AS called_back_at \
                 FROM calls c LEFT JOIN messages m ON m.call_id = c.id AND m.kind = 'text_back' \
                 WHERE c.account_id = $1 AND c.started_at >= $2 AND c.caller <> $3 ORDER BY c.started_at",
            )
            .bind(account_id)
            .bind(since_ms)
            .bind(TEST_CALLER)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let outcome: Option<String> = r.try_get("outcome")?;
                let text_status: Option<String> = r.try_get("text_status")?;
                out.push(FunnelRow {
                    started_at_ms: r.try_get("started_at")?,
                    missed: matches!(outcome.as_deref(), Some("missed" | "voicemail")),
                    texted_at_ms: r.try_get("sent_at")?,
                    delivered: matches!(text_status.as_deref(), Some("delivered" | "read")),
                    replied_at_ms: r.try_get("replied_at")?,
                    called_back_at_ms: r.try_get("called_back_at")?,
                });
            }
            Ok(out)
        })
    }
}
