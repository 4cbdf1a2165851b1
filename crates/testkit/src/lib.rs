//! Test and benchmark support. `FakeTwilio` is a local HTTP server that speaks Twilio's
//! Messages API wire contract (Basic auth, form fields, the 201 resource, the error body,
//! 429 with Retry-After, the message list); `TestDb` gives each test its own SQLite file or
//! PostgreSQL database; `TestApp` runs the real server on port 0.

pub mod bench;
pub mod browser;
pub mod db;
pub mod fake_telnyx;
pub mod fake_twilio;
pub mod receiver;
pub mod test_app;

pub use db::{Backend, TestDb};
pub use fake_telnyx::{FakeTelnyx, TelnyxFault, TelnyxSent};
pub use fake_twilio::{FakeTwilio, Fault, SentMessage};
pub use receiver::{Received, Receiver};
pub use test_app::{TestApp, TestAppOptions};

/// Runs each named `async fn test(url: &str)` as two tests, on a fresh SQLite file and on a
/// fresh PostgreSQL database (skipped, saying so, when `TEXTBACK_TEST_POSTGRES_URL` is unset).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::TestDb::create($crate::Backend::Sqlite).await.expect("sqlite");
                super::$name(&db.url).await;
                db.drop_db().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::TestDb::create($crate::Backend::Postgres).await else {
                    eprintln!("skipped: TEXTBACK_TEST_POSTGRES_URL is not set");
                    return;
                };
                super::$name(&db.url).await;
                db.drop_db().await;
            }
        }
    )*};
}
