//! Queries behind the REST API: API keys, idempotency, and account-scoped pages of
//! contacts, calls, conversations. Every query takes the caller's account id, so an id of
//! another account simply finds nothing.

use crate::AccountRecord;
use crate::calls::{CALL_VIEW, CallView, call_view_from_row};
use crate::events_out::emit_event;
use crate::messages::{MESSAGE_VIEW, MessageView, message_view_from_row};
use crate::{Result, Store, in_write_tx, on_pool};

#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyView {
    pub id: i64,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ContactView {
    pub id: i64,
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<String>,
    pub opted_out: bool,
    pub textable: bool,
    pub created_at_ms: i64,
    pub last_replied_at_ms: Option<i64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConversationView {
    pub id: i64,
    pub number: String,
    pub contact_id: i64,
    pub contact_phone: String,
    pub last_message_at_ms: i64,
    pub last_inbound_at_ms: Option<i64>,
}

/// A stored answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

const CONTACT_COLUMNS: &str =
    "id, phone, first_name, last_name, opted_out, textable, created_at, last_replied_at";

macro_rules! contact_from_row {
    ($row:expr, $tags:expr) => {{
        let r = $row;
        ContactView {
            id: r.try_get("id")?,
            phone: r.try_get("phone")?,
            first_name: r.try_get("first_name")?,
            last_name: r.try_get("last_name")?,
            tags: $tags,
            opted_out: r.try_get("opted_out")?,
            textable: r.try_get("textable")?,
            created_at_ms: r.try_get("created_at")?,
            last_replied_at_ms: r.try_get("last_replied_at")?,
        }
    }};
}

/// Contact rows with each contact's tags.
/// Contacts with their tags: one query for the tags of the whole page, not one per contact.
async fn contacts_with_tags(
    db: &crate::Db,
    rows: Vec<crate::sql::Row>,
) -> Result<Vec<ContactView>> {
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        ids.push(r.try_get::<i64, _>("id")?);
    }
    let mut tags: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    if !ids.is_empty() {
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let mut q = crate::sql::query(format!(
            "SELECT contact_id, tag FROM contact_tags WHERE contact_id IN ({}) ORDER BY contact_id, tag_key",
            placeholders.join(", ")
        ));
        for id in &ids {
            q = q.bind(*id);
        }
        for r in q.fetch_all(db).await? {
            tags.entry(r.try_get("contact_id")?)
                .or_default()
                .push(r.try_get("tag")?);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (r, id) in rows.iter().zip(ids) {
        out.push(contact_from_row!(r, tags.remove(&id).unwrap_or_default()));
    }
    Ok(out)
}

impl Store {
    pub async fn create_api_key(
        &self,
        account_id: i64,
        name: &str,
        prefix: &str,
        hash: &str,
        now_ms: i64,
    ) -> Result<i64> {
        in_write_tx!(self, tx => {
            let id: i64 = crate::sql::query_scalar(
                "INSERT INTO api_keys (account_id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(account_id)
            .bind(name)
            .bind(prefix)
            .bind(hash)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            Ok(id)
        })
    }

    /// The account a key hash belongs to, unless revoked. Records the use (at most once a
    /// minute per key, so reads stay reads).
    pub async fn api_key_account(&self, hash: &str, now_ms: i64) -> Result<Option<i64>> {
        let row = on_pool!(self, pool => {
            let r = crate::sql::query("SELECT id, account_id, last_used_at FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
                .bind(hash)
                .fetch_optional(pool)
                .await?;
            match r {
                Some(r) => Some((r.try_get::<i64, _>("id")?, r.try_get::<i64, _>("account_id")?, r.try_get::<Option<i64>, _>("last_used_at")?)),
                None => None,
            }
        });
        let Some((id, account_id, last)) = row else {
            return Ok(None);
        };
        if last.is_none_or(|t| now_ms - t > 60_000) {
            in_write_tx!(self, tx => {
                crate::sql::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1").bind(id).bind(now_ms).execute(&mut *tx).await?;
            });
        }
        Ok(Some(account_id))
    }

    pub async fn api_keys(&self, account_id: i64) -> Result<Vec<ApiKeyView>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query("SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE account_id = $1 ORDER BY id")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ApiKeyView {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    prefix: r.try_get("prefix")?,
                    created_at_ms: r.try_get("created_at")?,
                    last_used_at_ms: r.try_get("last_used_at")?,
                    revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                });
            }
            Ok(out)
        })
    }

    pub async fn revoke_api_key(&self, account_id: i64, id: i64, now_ms: i64) -> Result<bool> {
        let n = in_write_tx!(self, tx => {
            crate::sql::query("UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL")
                .bind(id)
                .bind(account_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Claims an idempotency key for a request about to run. `Ok(None)`: go ahead;
    /// `Ok(Some(answer))`: the first request's answer; `Err(())`: the first is still running.
    pub async fn reserve_idempotency_key(
        &self,
        account_id: i64,
        key: &str,
        now_ms: i64,
    ) -> Result<std::result::Result<Option<StoredResponse>, ()>> {
        in_write_tx!(self, tx => {
            let inserted = crate::sql::query(
                "INSERT INTO idempotency_keys (account_id, key, status, body, created_at) VALUES ($1, $2, 0, '', $3) \
                 ON CONFLICT (account_id, key) DO NOTHING",
            )
            .bind(account_id)
            .bind(key)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted {
                Ok(Ok(None))
            } else {
                let r = crate::sql::query("SELECT status, body, created_at FROM idempotency_keys WHERE account_id = $1 AND key = $2")
                    .bind(account_id)
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?;
                let status: i64 = r.try_get("status")?;
                let taken_at: i64 = r.try_get("created_at")?;
                let expired = taken_at < now_ms - crate::IDEMPOTENCY_WINDOW_MS;
                let abandoned = status == 0 && taken_at < now_ms - crate::STALE_RESERVATION_MS;
                if expired || abandoned {
                    // Past its window, or left "in progress" by an instance that died: the
                    // key is this request's now.
                    crate::sql::query("UPDATE idempotency_keys SET status = 0, body = '', created_at = $3 WHERE account_id = $1 AND key = $2")
                        .bind(account_id)
                        .bind(key)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    Ok(Ok(None))
                } else if status == 0 {
                    Ok(Err(()))
                } else {
                    Ok(Ok(Some(StoredResponse { status: status as u16, body: r.try_get("body")? })))
                }
            }
        })
    }

    /// Keeps the answer for a reserved key, or (`None`) frees the key so the request can be
    /// retried.
    pub async fn finish_idempotency_key(
        &self,
        account_id: i64,
        key: &str,
        answer: Option<&StoredResponse>,
    ) -> Result<()> {
        in_write_tx!(self, tx => {
            match answer {
                Some(a) => {
                    crate::sql::query("UPDATE idempotency_keys SET status = $3, body = $4 WHERE account_id = $1 AND key = $2")
                        .bind(account_id)
                        .bind(key)
                        .bind(i64::from(a.status))
                        .bind(&a.body)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    crate::sql::query("DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2")
                        .bind(account_id)
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        });
        Ok(())
    }

    /// A page of contacts, newest first, before the id `before` when given.
    pub async fn contacts_page(
        &self,
        account_id: i64,
        phone: Option<&str>,
        tag: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ContactView>> {
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.account_id = $1 AND ($2 IS NULL OR c.phone = $2) \
             AND ($3 IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag_key = $3)) \
             AND ($4 IS NULL OR c.id < $4) ORDER BY c.id DESC LIMIT $5"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql)
                .bind(account_id)
                .bind(phone)
                .bind(tag.map(str::to_lowercase))
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            contacts_with_tags(pool, rows).await
        })
    }

    /// Contacts whose name contains `query` (any case) or whose phone contains its digits.
    pub async fn search_contacts(
        &self,
        account_id: i64,
        query: &str,
        limit: i64,
    ) -> Result<Vec<ContactView>> {
        let escape = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        };
        let name = format!("%{}%", escape(&query.trim().to_lowercase()));
        let digits: String = query.chars().filter(char::is_ascii_digit).collect();
        // No digits: match no phone (an empty pattern would match every one).
        let phone = if digits.is_empty() {
            None
        } else {
            Some(format!("%{digits}%"))
        };
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.account_id = $1 AND \
             (LOWER(COALESCE(c.first_name, '') || ' ' || COALESCE(c.last_name, '')) LIKE $2 ESCAPE '\\' \
              OR ($3 IS NOT NULL AND c.phone LIKE $3)) ORDER BY c.id DESC LIMIT $4"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql)
                .bind(account_id)
                .bind(&name)
                .bind(&phone)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            contacts_with_tags(pool, rows).await
        })
    }

    pub async fn contact(&self, account_id: i64, id: i64) -> Result<Option<ContactView>> {
        let sql =
            format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND id = $2");
        on_pool!(self, pool => {
            let r = crate::sql::query(sql).bind(account_id).bind(id).fetch_optional(pool).await?;
            Ok(match r {
                Some(r) => {
                    let tags: Vec<String> = crate::sql::query_scalar("SELECT tag FROM contact_tags WHERE contact_id = $1 ORDER BY tag_key")
                        .bind(id)
                        .fetch_all(pool)
                        .await?;
                    Some(contact_from_row!(r, tags))
                }
                None => None,
            })
        })
    }

    /// Creates a contact; `None` when the account already has one with this number.
    pub async fn create_contact(
        &self,
        account_id: i64,
        phone: &str,
        first: Option<&str>,
        last: Option<&str>,
        tags: &[String],
        now_ms: i64,
    ) -> Result<Option<i64>> {
        in_write_tx!(self, tx => {
            let id: Option<i64> = crate::sql::query_scalar(
                "INSERT INTO contacts (account_id, phone, first_name, last_name, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (account_id, phone) DO NOTHING RETURNING id",
            )
            .bind(account_id)
            .bind(phone)
            .bind(first)
            .bind(last)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                for t in tags {
                    crate::sql::query("INSERT INTO contact_tags (contact_id, tag, tag_key, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(t)
                        .bind(t.to_lowercase())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            Ok(id)
        })
    }

    /// Sets a contact's names; `Some(None)` clears one. False when there is no such contact.
    pub async fn update_contact(
        &self,
        account_id: i64,
        id: i64,
        first: Option<Option<&str>>,
        last: Option<Option<&str>>,
        now_ms: i64,
    ) -> Result<bool> {
        let n = in_write_tx!(self, tx => {
            crate::sql::query(
                "UPDATE contacts SET first_name = CASE WHEN $3 THEN $4 ELSE first_name END, \
                 last_name = CASE WHEN $5 THEN $6 ELSE last_name END, updated_at = $7 WHERE account_id = $1 AND id = $2",
            )
            .bind(account_id)
            .bind(id)
            .bind(first.is_some())
            .bind(first.flatten())
            .bind(last.is_some())
            .bind(last.flatten())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }

    /// Adds (`add`) or removes a tag; false when there is no such contact.
    pub async fn tag_contact(
        &self,
        account_id: i64,
        id: i64,
        tag: &str,
        add: bool,
        now_ms: i64,
    ) -> Result<bool> {
        let found = in_write_tx!(self, tx => {
            let exists: Option<i64> = crate::sql::query_scalar("SELECT id FROM contacts WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                if add {
                    crate::sql::query("INSERT INTO contact_tags (contact_id, tag, tag_key, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(tag)
                        .bind(tag.to_lowercase())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    crate::sql::query("DELETE FROM contact_tags WHERE contact_id = $1 AND tag_key = $2")
                        .bind(id)
                        .bind(tag.to_lowercase())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            exists.is_some()
        });
        Ok(found)
    }

    /// Records consent given or withdrawn outside a text (the business's own records),
    /// with its source. False when there is no such contact.
    pub async fn set_consent(
        &self,
        account_id: i64,
        id: i64,
        opted_out: bool,
        source: &str,
        detail: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let found = in_write_tx!(self, tx => {
            let current: Option<bool> = crate::sql::query_scalar("SELECT opted_out FROM contacts WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(current) = current
                && current != opted_out
            {
                crate::sql::query("UPDATE contacts SET opted_out = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(opted_out)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                if opted_out {
                    emit_event!(tx, account_id, "contact.opted_out", serde_json::json!({
                        "contact_id": id, "source": source, "detail": detail,
                    }), now_ms);
                }
                crate::sql::query(
                    "INSERT INTO consent_events (account_id, contact_id, opted_out, source, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(account_id)
                .bind(id)
                .bind(opted_out)
                .bind(source)
                .bind(detail)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            current.is_some()
        });
        Ok(found)
    }

    pub async fn calls_page(
        &self,
        account_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<CallView>> {
        let sql = format!(
            "{CALL_VIEW} WHERE c.account_id = $1 AND ($2 IS NULL OR c.id < $2) ORDER BY c.id DESC LIMIT $3"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(account_id).bind(before).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(call_view_from_row!(r)); }
            Ok(out)
        })
    }

    /// The account's latest missed calls (voicemail included) since an instant, newest first.
    pub async fn missed_calls_since(
        &self,
        account_id: i64,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<CallView>> {
        let sql = format!(
            "{CALL_VIEW} WHERE c.account_id = $1 AND c.started_at >= $2 \
             AND c.outcome IN ('missed', 'voicemail') ORDER BY c.id DESC LIMIT $3"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(account_id).bind(since_ms).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(call_view_from_row!(r)); }
            Ok(out)
        })
    }

    /// How many missed calls (voicemail included) the account has had since an instant.
    pub async fn count_missed_calls_since(&self, account_id: i64, since_ms: i64) -> Result<i64> {
        Ok(on_pool!(self, pool => {
            crate::sql::query_scalar::<i64>(
                "SELECT COUNT(*) FROM calls c WHERE c.account_id = $1 AND c.started_at >= $2 \
                 AND c.outcome IN ('missed', 'voicemail')",
            )
            .bind(account_id)
            .bind(since_ms)
            .fetch_one(pool)
            .await?
        }))
    }

    pub async fn call(&self, account_id: i64, id: i64) -> Result<Option<CallView>> {
        let sql = format!("{CALL_VIEW} WHERE c.account_id = $1 AND c.id = $2");
        on_pool!(self, pool => {
            let r = crate::sql::query(sql).bind(account_id).bind(id).fetch_optional(pool).await?;
            Ok(match r { Some(r) => Some(call_view_from_row!(r)), None => None })
        })
    }

    pub async fn conversations_page(
        &self,
        account_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ConversationView>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT v.id, n.e164, v.contact_id, c.phone, v.last_message_at, v.last_inbound_at FROM conversations v \
                 JOIN numbers n ON n.id = v.number_id JOIN contacts c ON c.id = v.contact_id \
                 WHERE v.account_id = $1 AND ($2 IS NULL OR v.id < $2) ORDER BY v.id DESC LIMIT $3",
            )
            .bind(account_id)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(ConversationView {
                    id: r.try_get("id")?,
                    number: r.try_get("e164")?,
                    contact_id: r.try_get("contact_id")?,
                    contact_phone: r.try_get("phone")?,
                    last_message_at_ms: r.try_get("last_message_at")?,
                    last_inbound_at_ms: r.try_get("last_inbound_at")?,
                });
            }
            Ok(out)
        })
    }

    /// The conversation's (account slug, number, contact phone), when the account has it.
    pub async fn conversation_parties(
        &self,
        account_id: i64,
        id: i64,
    ) -> Result<Option<(String, String, String)>> {
        on_pool!(self, pool => {
            let r = crate::sql::query(
                "SELECT a.slug, n.e164, c.phone FROM conversations v JOIN accounts a ON a.id = v.account_id \
                 JOIN numbers n ON n.id = v.number_id JOIN contacts c ON c.id = v.contact_id \
                 WHERE v.account_id = $1 AND v.id = $2",
            )
            .bind(account_id)
            .bind(id)
            .fetch_optional(pool)
            .await?;
            Ok(match r {
                Some(r) => Some((r.try_get("slug")?, r.try_get("e164")?, r.try_get("phone")?)),
                None => None,
            })
        })
    }

    pub async fn conversation_messages(
        &self,
        account_id: i64,
        id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<MessageView>> {
        let sql = format!(
            "{MESSAGE_VIEW} WHERE m.account_id = $1 AND m.conversation_id = $2 AND ($3 IS NULL OR m.id < $3) \
             ORDER BY m.id DESC LIMIT $4"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql).bind(account_id).bind(id).bind(before).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows { out.push(message_view_from_row!(r)); }
            Ok(out)
        })
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<AccountRecord>> {
        let sql = format!(
            "SELECT {} FROM accounts WHERE id = $1",
            crate::accounts::ACCOUNT_COLUMNS
        );
        on_pool!(self, pool => {
            let row = crate::sql::query(sql).bind(id).fetch_optional(pool).await?;
            Ok(match row { Some(r) => Some(crate::accounts::account_from_row!(r)), None => None })
        })
    }
}

/// One contact of an import, already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<String>,
}

impl Store {
    /// Creates or updates contacts in one transaction: names given replace the stored ones
    /// (blank cells keep them), tags are added. Returns (created, updated).
    pub async fn import_contacts(
        &self,
        account_id: i64,
        rows: &[ImportRow],
        now_ms: i64,
    ) -> Result<(u64, u64)> {
        in_write_tx!(self, tx => {
            let (mut created, mut updated) = (0u64, 0u64);
            for row in rows {
                let existed: Option<i64> = crate::sql::query_scalar("SELECT id FROM contacts WHERE account_id = $1 AND phone = $2")
                    .bind(account_id)
                    .bind(&row.phone)
                    .fetch_optional(&mut *tx)
                    .await?;
                let r = crate::sql::query(
                    "INSERT INTO contacts (account_id, phone, first_name, last_name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (account_id, phone) DO UPDATE SET \
                     first_name = COALESCE(excluded.first_name, contacts.first_name), \
                     last_name = COALESCE(excluded.last_name, contacts.last_name), updated_at = excluded.updated_at \
                     RETURNING id",
                )
                .bind(account_id)
                .bind(&row.phone)
                .bind(&row.first_name)
                .bind(&row.last_name)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await?;
                let id: i64 = r.try_get("id")?;
                if existed.is_some() { updated += 1 } else { created += 1 }
                for t in &row.tags {
                    crate::sql::query("INSERT INTO contact_tags (contact_id, tag, tag_key, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(t)
                        .bind(t.to_lowercase())
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            Ok((created, updated))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SmartListRecord {
    pub id: i64,
    pub name: String,
    /// The filter, as JSON (checked by the caller).
    pub filter: String,
}

impl Store {
    /// Creates or replaces the account's smart list with this name; returns its id.
    pub async fn save_smart_list(
        &self,
        account_id: i64,
        name: &str,
        filter_json: &str,
        now_ms: i64,
    ) -> Result<i64> {
        in_write_tx!(self, tx => {
            let id: i64 = crate::sql::query_scalar(
                "INSERT INTO smart_lists (account_id, name, filter, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, name) DO UPDATE SET filter = excluded.filter RETURNING id",
            )
            .bind(account_id)
            .bind(name)
            .bind(filter_json)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            Ok(id)
        })
    }

    pub async fn smart_lists(&self, account_id: i64) -> Result<Vec<SmartListRecord>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query("SELECT id, name, filter FROM smart_lists WHERE account_id = $1 ORDER BY name")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(SmartListRecord { id: r.try_get("id")?, name: r.try_get("name")?, filter: r.try_get("filter")? });
            }
            Ok(out)
        })
    }

    pub async fn delete_smart_list(&self, account_id: i64, id: i64) -> Result<bool> {
        let n = in_write_tx!(self, tx => {
            crate::sql::query("DELETE FROM smart_lists WHERE account_id = $1 AND id = $2")
                .bind(account_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// When each of the account's contacts last called (ms), for list filters.
    pub async fn last_calls(&self, account_id: i64) -> Result<std::collections::HashMap<i64, i64>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query("SELECT contact_id, MAX(started_at) AS last FROM calls WHERE account_id = $1 AND contact_id IS NOT NULL GROUP BY contact_id")
                .bind(account_id)
                .fetch_all(pool)
                .await?;
            let mut out = std::collections::HashMap::with_capacity(rows.len());
            for r in rows {
                out.insert(r.try_get::<i64, _>("contact_id")?, r.try_get::<i64, _>("last")?);
            }
            Ok(out)
        })
    }
}
