//! Twilio: webhook signature checks, TwiML, and the Programmable Messaging REST client.

pub mod client;
pub mod signature;
pub mod twiml;

pub use client::{TwilioClient, TwilioCredentials};
pub use signature::{SignatureCheck, SignatureError, sign};
