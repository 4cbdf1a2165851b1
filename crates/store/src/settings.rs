//! Installation-wide settings kept in the database (the sandbox signing token, …).

use crate::{Result, Store, in_write_tx, on_pool};

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        on_pool!(self, pool => {
            let v: Option<String> = crate::sql::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(pool)
                .await?;
            Ok(v)
        })
    }

    /// Returns the stored value, storing `make()` first when there is none. Concurrent
    /// callers all get the one value that won.
    pub async fn setting_or_insert(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String> {
        let value = make();
        in_write_tx!(self, tx => {
            crate::sql::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(&value)
                .execute(&mut *tx)
                .await?;
            let v: String = crate::sql::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            Ok(v)
        })
    }
}
