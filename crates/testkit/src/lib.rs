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
