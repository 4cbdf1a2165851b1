//! The sandbox carrier: texts are recorded in the database and shown in the inbox and CLI,
//! and never leave the machine.

use crate::SendResult;

/// Accepts every text with a fresh sandbox message id.
pub fn send() -> SendResult {
    SendResult::Accepted {
        carrier_message_id: format!("SB{:032x}", fastrand::u128(..)),
        status: "sandbox".to_owned(),
        segments: None,
    }
}
