//! Cached line-type lookups: a number's line type rarely changes, so one lookup serves for
//! months and a lookup failure never holds up a text.

use crate::{Result, Store, in_write_tx, on_pool};

impl Store {
    /// The run's contact number when the account wants line types and none is cached
    /// within `max_age_ms`.
    pub async fn lookup_needed(
        &self,
        run_id: i64,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<Option<String>> {
        on_pool!(self, pool => {
            let row = crate::sql::query(
                "SELECT a.landline_lookup, c.phone AS caller_phone, l.looked_up_at FROM workflow_runs r \
                 JOIN accounts a ON a.id = r.account_id JOIN contacts c ON c.id = r.contact_id \
                 LEFT JOIN phone_lookups l ON l.phone = c.phone WHERE r.id = $1",
            )
            .bind(run_id)
            .fetch_optional(pool.by_key())
            .await?;
            let Some(row) = row else { return Ok(None) };
            let wanted: bool = row.try_get("landline_lookup")?;
            let phone: Option<String> = row.try_get("caller_phone")?;
            let at: Option<i64> = row.try_get("looked_up_at")?;
            let fresh = at.is_some_and(|t| now_ms - t < max_age_ms);
            Ok(phone.filter(|_| wanted && !fresh))
        })
    }

    pub async fn save_lookup(
        &self,
        phone: &str,
        line_type: Option<&str>,
        carrier_name: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        in_write_tx!(background self, tx => {
            crate::sql::query(
                "INSERT INTO phone_lookups (phone, line_type, carrier_name, looked_up_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (phone) DO UPDATE SET line_type = excluded.line_type, \
                 carrier_name = excluded.carrier_name, looked_up_at = excluded.looked_up_at",
            )
            .bind(phone)
            .bind(line_type)
            .bind(carrier_name)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }
}
