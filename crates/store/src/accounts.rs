//! Accounts and their phone numbers.

use crate::{Result, Store, in_write_tx, on_pool, to_json};

pub use textback_core::account::{AccountRecord, NumberRecord};

/// What the voice webhook needs to route a call to a number.
#[derive(Debug, Clone)]
pub struct NumberRoute {
    pub number: NumberRecord,
    pub account_slug: String,
    pub account_name: String,
    pub time_zone: String,
}

pub(crate) const ACCOUNT_COLUMNS: &str = "id, slug, name, time_zone, booking_link, business_hours, \
    text_back_enabled, text_back_template, cooldown_secs, do_not_text, landline_lookup, quiet_hours";
pub(crate) const NUMBER_COLUMNS: &str = "n.id, n.account_id, n.e164, n.carrier, n.ring_to, n.ring_seconds, n.call_screening, n.active, \
     n.registration";
/// `NUMBER_COLUMNS` named `n_…`, to read beside an account's columns (from a subquery,
/// so that the account's own `id` stays unambiguous).
pub(crate) const NUMBER_COLUMNS_PREFIXED_N: &str = "n.id AS n_id, n.account_id AS n_account_id, n.e164 AS n_e164, \
     n.carrier AS n_carrier, n.ring_to AS n_ring_to, n.ring_seconds AS n_ring_seconds, \
     n.call_screening AS n_call_screening, n.active AS n_active, n.registration AS n_registration";

macro_rules! account_from_row {
    ($row:expr) => {{
        let row = $row;
        AccountRecord {
            id: row.try_get("id")?,
            slug: row.try_get("slug")?,
            name: row.try_get("name")?,
            time_zone: row.try_get("time_zone")?,
            booking_link: row.try_get("booking_link")?,
            business_hours: $crate::from_json(
                "business_hours",
                &row.try_get::<String, _>("business_hours")?,
            )?,
            text_back_enabled: row.try_get("text_back_enabled")?,
            text_back_template: row.try_get("text_back_template")?,
            cooldown_secs: row.try_get("cooldown_secs")?,
            do_not_text: $crate::from_json(
                "do_not_text",
                &row.try_get::<String, _>("do_not_text")?,
            )?,
            landline_lookup: row.try_get("landline_lookup")?,
            quiet_hours: row.try_get("quiet_hours")?,
        }
    }};
}

/// A number from a row of `NUMBER_COLUMNS`, or of columns named with a prefix (as
/// `NUMBER_COLUMNS_PREFIXED_N` names them).
macro_rules! number_from_row {
    ($row:expr) => {
        $crate::accounts::number_from_row!($row, prefix "")
    };
    ($row:expr, prefix $p:literal) => {{
        let row = $row;
        NumberRecord {
            id: row.try_get(concat!($p, "id"))?,
            account_id: row.try_get(concat!($p, "account_id"))?,
            e164: row.try_get(concat!($p, "e164"))?,
            carrier: row.try_get(concat!($p, "carrier"))?,
            ring_to: $crate::from_json("ring_to", &row.try_get::<String, _>(concat!($p, "ring_to"))?)?,
            ring_seconds: row.try_get(concat!($p, "ring_seconds"))?,
            call_screening: row.try_get(concat!($p, "call_screening"))?,
            active: row.try_get(concat!($p, "active"))?,
            registration: row.try_get(concat!($p, "registration"))?,
        }
    }};
}

pub(crate) use {account_from_row, number_from_row};

impl Store {
    pub async fn account_by_slug(&self, slug: &str) -> Result<Option<AccountRecord>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE slug = $1");
        on_pool!(self, pool => {
            let row = crate::sql::query(sql).bind(slug).fetch_optional(pool).await?;
            Ok(match row { Some(r) => Some(account_from_row!(r)), None => None })
        })
    }

    pub async fn accounts(&self) -> Result<Vec<AccountRecord>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY slug");
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(account_from_row!(r)); }
            Ok(out)
        })
    }

    /// Inserts the account, or updates the one with the same slug; returns its id.
    pub async fn save_account(&self, a: &AccountRecord, now_ms: i64) -> Result<i64> {
        let sql = "INSERT INTO accounts (slug, name, time_zone, booking_link, business_hours, \
            text_back_enabled, text_back_template, cooldown_secs, do_not_text, landline_lookup, quiet_hours, created_at, updated_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $10, $10) \
            ON CONFLICT (slug) DO UPDATE SET name = excluded.name, time_zone = excluded.time_zone, \
            booking_link = excluded.booking_link, business_hours = excluded.business_hours, \
            text_back_enabled = excluded.text_back_enabled, text_back_template = excluded.text_back_template, \
            cooldown_secs = excluded.cooldown_secs, do_not_text = excluded.do_not_text, \
            landline_lookup = excluded.landline_lookup, quiet_hours = excluded.quiet_hours, \
            updated_at = excluded.updated_at RETURNING id";
        let id = in_write_tx!(self, tx => {
            let id: i64 = crate::sql::query_scalar(sql)
                .bind(&a.slug)
                .bind(&a.name)
                .bind(&a.time_zone)
                .bind(&a.booking_link)
                .bind(to_json(&a.business_hours))
                .bind(a.text_back_enabled)
                .bind(&a.text_back_template)
                .bind(a.cooldown_secs)
                .bind(to_json(&a.do_not_text))
                .bind(now_ms)
                .bind(a.landline_lookup)
                .bind(&a.quiet_hours)
                .fetch_one(&mut *tx)
                .await?;
            id
        });
        // This process's kept routes, at once; other instances' by the trigger's NOTIFY.
        self.routes.forget_all();
        Ok(id)
    }

    pub async fn number_by_e164(&self, e164: &str) -> Result<Option<NumberRecord>> {
        let sql = format!("SELECT {NUMBER_COLUMNS} FROM numbers n WHERE n.e164 = $1");
        on_pool!(self, pool => {
            let row = crate::sql::query(sql).bind(e164).fetch_optional(pool.by_key()).await?;
            Ok(match row { Some(r) => Some(number_from_row!(r)), None => None })
        })
    }

    pub async fn numbers_of_account(&self, account_id: i64) -> Result<Vec<NumberRecord>> {
        let sql = format!(
            "SELECT {NUMBER_COLUMNS} FROM numbers n WHERE n.account_id = $1 ORDER BY n.e164"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(account_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(number_from_row!(r)); }
            Ok(out)
        })
    }

    /// Inserts the number, or updates the one with the same E.164 (which may move it to
    /// another account); returns its id.
    pub async fn save_number(&self, n: &NumberRecord, now_ms: i64) -> Result<i64> {
        let sql = "INSERT INTO numbers (account_id, e164, carrier, ring_to, ring_seconds, call_screening, \
            active, registration, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8) \
            ON CONFLICT (e164) DO UPDATE SET account_id = excluded.account_id, carrier = excluded.carrier, \
            ring_to = excluded.ring_to, ring_seconds = excluded.ring_seconds, \
            call_screening = excluded.call_screening, active = excluded.active, \
            registration = excluded.registration, \
            updated_at = excluded.updated_at RETURNING id";
        let id = in_write_tx!(self, tx => {
            let id: i64 = crate::sql::query_scalar(sql)
                .bind(n.account_id)
                .bind(&n.e164)
                .bind(&n.carrier)
                .bind(to_json(&n.ring_to))
                .bind(n.ring_seconds)
                .bind(n.call_screening)
                .bind(n.active)
                .bind(now_ms)
                .bind(&n.registration)
                .fetch_one(&mut *tx)
                .await?;
            id
        });
        self.routes.forget_all();
        Ok(id)
    }

    /// Every number's routing, to warm the in-memory cache at start-up.
    pub async fn all_routes(&self) -> Result<Vec<NumberRoute>> {
        let sql = format!(
            "SELECT {NUMBER_COLUMNS}, a.slug AS account_slug, a.name AS account_name, a.time_zone \
             FROM numbers n JOIN accounts a ON a.id = n.account_id"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(NumberRoute {
                    number: number_from_row!(&r),
                    account_slug: r.try_get("account_slug")?,
                    account_name: r.try_get("account_name")?,
                    time_zone: r.try_get("time_zone")?,
                });
            }
            Ok(out)
        })
    }

    /// Who owns number `e164`, for a webhook: on PostgreSQL from memory while this process
    /// hears of changes to numbers and accounts (`route_cache`).
    pub async fn route_for_number(&self, e164: &str) -> Result<Option<NumberRoute>> {
        if let Some(route) = self.routes.get(e164) {
            return Ok(Some(route));
        }
        let generation = self.routes.generation();
        let sql = format!(
            "SELECT {NUMBER_COLUMNS}, a.slug AS account_slug, a.name AS account_name, a.time_zone \
             FROM numbers n JOIN accounts a ON a.id = n.account_id WHERE n.e164 = $1"
        );
        let route = on_pool!(self, pool => {
            let row = crate::sql::query(sql).bind(e164).fetch_optional(pool.by_key()).await?;
            match row {
                Some(r) => Some(NumberRoute {
                    number: number_from_row!(&r),
                    account_slug: r.try_get("account_slug")?,
                    account_name: r.try_get("account_name")?,
                    time_zone: r.try_get("time_zone")?,
                }),
                None => None,
            }
        });
        if let Some(route) = &route {
            self.routes.keep(generation, route);
        }
        Ok(route)
    }
}
