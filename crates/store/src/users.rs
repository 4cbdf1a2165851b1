//! People who sign in to the web UI, and their browser sessions. Passwords arrive here
//! already hashed (argon2, in the server) and session tokens as their SHA-256, so nothing
//! stored can be replayed.

use crate::{Result, Store, StoreError, in_write_tx, on_pool};

/// What a team member may do: owners change settings, team and keys; members work the
/// inbox, calls and tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// An email as users are stored and looked up: trimmed, lower-cased, with something on
/// both sides of one `@`; `None` if it is not one.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains('@')).then_some(email)
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub account_id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// What became of a change to the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamChange {
    Done,
    /// No such enabled member in the account.
    NotFound,
    /// It would leave the account without an owner.
    LastOwner,
}

/// A signed-in browser: who, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
}

const USER_COLUMNS: &str = "u.id, u.account_id, u.email, u.name, u.role, u.password_hash";

macro_rules! user_from_row {
    ($r:expr) => {{
        let r = $r;
        let role: String = r.try_get("role")?;
        User {
            id: r.try_get("id")?,
            account_id: r.try_get("account_id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            role: Role::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("user role {role:?}")))?,
            password_hash: r.try_get("password_hash")?,
        }
    }};
}

impl Store {
    /// Adds a team member. The email (lower-cased) must be new: `Ok(None)` if it is taken.
    /// Someone removed from this account earlier is added back (new name, role, password).
    pub async fn create_user(
        &self,
        account_id: i64,
        email: &str,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<Option<i64>> {
        let email = normalize_email(email).unwrap_or_else(|| email.trim().to_lowercase());
        in_write_tx!(self, tx => {
            let taken: Option<i64> = crate::sql::query_scalar("SELECT id FROM users WHERE email = $1")
                .bind(&email)
                .fetch_optional(&mut *tx)
                .await?;
            let taken: Option<(i64, i64, Option<i64>)> = match taken {
                Some(id) => crate::sql::query("SELECT id, account_id, disabled_at FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| -> Result<_> { Ok((r.try_get("id")?, r.try_get("account_id")?, r.try_get("disabled_at")?)) })
                    .transpose()?,
                None => None,
            };
            match taken {
                Some((id, owner_account, Some(_))) if owner_account == account_id => {
                    crate::sql::query("UPDATE users SET name = $2, role = $3, password_hash = $4, disabled_at = NULL WHERE id = $1")
                        .bind(id)
                        .bind(name.trim())
                        .bind(role.as_str())
                        .bind(password_hash)
                        .execute(&mut *tx)
                        .await?;
                    return Ok(Some(id));
                }
                Some(_) => return Ok(None),
                None => {}
            }
            let id: i64 = crate::sql::query_scalar(
                "INSERT INTO users (account_id, email, name, role, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(account_id)
            .bind(&email)
            .bind(name.trim())
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
            Ok(Some(id))
        })
    }

    /// An enabled user by email, any case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = normalize_email(email).unwrap_or_else(|| email.trim().to_lowercase());
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.email = $1 AND u.disabled_at IS NULL"
        );
        Ok(on_pool!(self, pool => {
            match crate::sql::query(sql.as_str()).bind(&email).fetch_optional(pool).await? {
                Some(r) => Some(user_from_row!(r)),
                None => None,
            }
        }))
    }

    /// The account's enabled team members, by name.
    pub async fn users_of_account(&self, account_id: i64) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.account_id = $1 AND u.disabled_at IS NULL \
             ORDER BY u.name, u.id"
        );
        on_pool!(self, pool => {
            let rows = crate::sql::query(sql.as_str()).bind(account_id).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(user_from_row!(r));
            }
            Ok(out)
        })
    }

    /// Records that `user_id` has read the conversation up to `message_id` (never backwards).
    pub async fn mark_read(
        &self,
        user_id: i64,
        conversation_id: i64,
        message_id: i64,
    ) -> Result<()> {
        in_write_tx!(self, tx => {
            crate::sql::query(
                "INSERT INTO conversation_reads (user_id, conversation_id, last_read_message_id) \
                 VALUES ($1, $2, $3) ON CONFLICT (user_id, conversation_id) DO UPDATE SET \
                 last_read_message_id = CASE WHEN excluded.last_read_message_id > conversation_reads.last_read_message_id \
                 THEN excluded.last_read_message_id ELSE conversation_reads.last_read_message_id END",
            )
            .bind(user_id)
            .bind(conversation_id)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    /// Per conversation of the account, how many customer messages `user_id` has not read.
    pub async fn unread_counts(
        &self,
        user_id: i64,
        account_id: i64,
    ) -> Result<std::collections::HashMap<i64, i64>> {
        on_pool!(self, pool => {
            let rows = crate::sql::query(
                "SELECT m.conversation_id, COUNT(*) AS unread FROM messages m \
                 LEFT JOIN conversation_reads r ON r.conversation_id = m.conversation_id AND r.user_id = $1 \
                 WHERE m.account_id = $2 AND m.direction = 'inbound' AND m.conversation_id IS NOT NULL \
                 AND m.id > COALESCE(r.last_read_message_id, 0) GROUP BY m.conversation_id",
            )
            .bind(user_id)
            .bind(account_id)
            .fetch_all(pool)
            .await?;
            let mut out = std::collections::HashMap::new();
            for r in rows {
                out.insert(r.try_get::<i64, _>("conversation_id")?, r.try_get::<i64, _>("unread")?);
            }
            Ok(out)
        })
    }

    /// Changes a team member's role. An account always keeps one owner: making its last
    /// owner a member is refused.
    pub async fn set_user_role(
        &self,
        account_id: i64,
        user_id: i64,
        role: Role,
    ) -> Result<TeamChange> {
        self.change_member(account_id, user_id, Some(role), 0).await
    }

    /// Removes a team member: they can no longer sign in and their sessions end. Their
    /// history (who read what, tasks assigned by email) stays. The last owner stays.
    pub async fn disable_user(
        &self,
        account_id: i64,
        user_id: i64,
        now_ms: i64,
    ) -> Result<TeamChange> {
        self.change_member(account_id, user_id, None, now_ms).await
    }

    /// Sets the role (`Some`) or removes the member (`None`, at `now_ms`).
    async fn change_member(
        &self,
        account_id: i64,
        user_id: i64,
        role: Option<Role>,
        now_ms: i64,
    ) -> Result<TeamChange> {
        in_write_tx!(self, tx => {
            let current: Option<String> = crate::sql::query_scalar(
                "SELECT role FROM users WHERE id = $1 AND account_id = $2 AND disabled_at IS NULL",
            )
            .bind(user_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current else {
                return Ok(TeamChange::NotFound);
            };
            let stays_owner = role == Some(Role::Owner);
            if current == Role::Owner.as_str() && !stays_owner {
                let owners: i64 = crate::sql::query_scalar(
                    "SELECT COUNT(*) FROM users WHERE account_id = $1 AND role = 'owner' AND disabled_at IS NULL",
                )
                .bind(account_id)
                .fetch_one(&mut *tx)
                .await?;
                if owners <= 1 {
                    return Ok(TeamChange::LastOwner);
                }
            }
            match role {
                Some(role) => {
                    crate::sql::query("UPDATE users SET role = $2 WHERE id = $1")
                        .bind(user_id)
                        .bind(role.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    crate::sql::query("UPDATE users SET disabled_at = $2 WHERE id = $1")
                        .bind(user_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    crate::sql::query("DELETE FROM sessions WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            Ok(TeamChange::Done)
        })
    }

    /// Sets a user's password (already hashed) and ends every other session of theirs: a
    /// new password is often a reaction to a lost phone or a shared one.
    pub async fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session_hash: &str,
    ) -> Result<()> {
        in_write_tx!(self, tx => {
            crate::sql::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user_id)
                .bind(password_hash)
                .execute(&mut *tx)
                .await?;
            crate::sql::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
                .bind(user_id)
                .bind(keep_session_hash)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(on_pool!(self, pool => {
            crate::sql::query_scalar::<i64>("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        }))
    }

    pub async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        csrf_token: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        in_write_tx!(self, tx => {
            crate::sql::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }

    /// The live session for a token hash: not expired, its user not disabled.
    pub async fn session(&self, token_hash: &str, now_ms: i64) -> Result<Option<Session>> {
        let sql = format!(
            "SELECT {USER_COLUMNS}, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
        );
        Ok(on_pool!(self, pool => {
            match crate::sql::query(sql.as_str()).bind(token_hash).bind(now_ms).fetch_optional(pool).await? {
                Some(r) => Some(Session {
                    csrf_token: r.try_get("csrf_token")?,
                    user: user_from_row!(r),
                }),
                None => None,
            }
        }))
    }

    /// Signs a browser out, and sweeps every expired session while here.
    pub async fn delete_session(&self, token_hash: &str, now_ms: i64) -> Result<()> {
        in_write_tx!(self, tx => {
            crate::sql::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
            crate::sql::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            normalize_email(" Pat@Example.COM ").as_deref(),
            Some("pat@example.com")
        );
        for bad in ["", "pat", "@example.com", "pat@", "a@b@c"] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }
}
