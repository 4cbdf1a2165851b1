//! Temporary SQLite files for this crate's own tests.

use std::path::{Path, PathBuf};

/// A fresh path in the temporary directory; nothing is created.
pub(crate) fn temp_db_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "textback-{name}-{}-{:016x}.db",
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// Removes the database file and SQLite's `-wal` and `-shm` beside it.
pub(crate) fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A migrated SQLite store in a fresh temporary file, and the file's path.
pub(crate) async fn migrated_store(name: &str) -> (crate::Store, PathBuf) {
    let path = temp_db_path(name);
    let store = crate::Store::connect(&format!("sqlite:{}", path.display()))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    (store, path)
}
