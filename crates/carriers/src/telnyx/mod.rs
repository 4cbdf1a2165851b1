//! Telnyx: Ed25519 webhook signatures, the Messaging API v2 client, and its webhook events.
//! Voice uses TeXML, Telnyx's TwiML-compatible markup, so a Telnyx number rings the team
//! and settles missed calls the same way a Twilio one does (see docs/CARRIERS.md).

pub mod client;
pub mod events;
pub mod signature;

pub use client::TelnyxClient;
pub use events::{MessagingEvent, parse_messaging_event};
pub use signature::{TelnyxPublicKey, TelnyxSignatureError};
