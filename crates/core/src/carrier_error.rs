//! Carrier error codes, understood: what each means for the contact, and what to do.
//! Twilio's (`describe`) and Telnyx's (`describe_telnyx`) differ, so each has its table.

/// What an error code says about the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The recipient opted out at the carrier: mark the contact opted out.
    OptedOut,
    /// The number cannot receive texts (invalid, landline, not a mobile): stop texting it.
    NotTextable,
    /// Temporarily unreachable or unknown: nothing to change on the contact.
    Unreachable,
    /// The carrier filtered the message: a sending-side problem for `doctor`.
    Filtered,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CarrierError {
    pub code: i64,
    pub effect: Effect,
    /// Short, readable reason shown on the message and the call.
    pub reason: &'static str,
    /// What the business should do about it (shown by `doctor`).
    pub fix: &'static str,
}

pub fn describe(code: i64) -> CarrierError {
    let (effect, reason, fix) = match code {
        21610 => (
            Effect::OptedOut,
            "the recipient has opted out of messages from this number (replied STOP)",
            "nothing: the contact is marked opted out; they can text START to opt back in",
        ),
        21211 => (
            Effect::NotTextable,
            "the phone number is not valid",
            "check the caller's number; it will not be texted again",
        ),
        21614 => (
            Effect::NotTextable,
            "the number is not a mobile number and cannot receive texts",
            "call the contact back instead",
        ),
        21612 => (
            Effect::NotTextable,
            "the carrier cannot route texts between these two numbers",
            "call the contact back instead",
        ),
        30006 => (
            Effect::NotTextable,
            "landline or unreachable carrier",
            "call the contact back instead",
        ),
        30003 => (
            Effect::Unreachable,
            "the handset is unreachable (off or out of coverage)",
            "nothing: later texts may arrive",
        ),
        30005 => (
            Effect::Unreachable,
            "unknown destination handset (the number may no longer exist)",
            "call the contact back to confirm the number",
        ),
        30007 => (
            Effect::Filtered,
            "the carrier filtered the message as spam",
            "register the number for A2P 10DLC (or verify the toll-free number), avoid link shorteners, and make the text read less automated",
        ),
        30034 => (
            Effect::Filtered,
            "message from an unregistered 10DLC number was blocked",
            "register the number's brand and campaign for A2P 10DLC in the Twilio console; US carriers block unregistered traffic",
        ),
        30032 => (
            Effect::Filtered,
            "toll-free number has not been verified",
            "complete toll-free verification for this number in the Twilio console",
        ),
        30008 => (
            Effect::Unreachable,
            "unknown delivery error at the carrier",
            "nothing: retry later or call the contact",
        ),
        _ => (
            Effect::Other,
            "carrier error",
            "see https://www.twilio.com/docs/api/errors",
        ),
    };
    CarrierError {
        code,
        effect,
        reason,
        fix,
    }
}

/// A code as the carrier that sent it means it (`twilio`, `telnyx`).
pub fn describe_for(carrier: &str, code: i64) -> CarrierError {
    match carrier {
        "telnyx" => describe_telnyx(code),
        _ => describe(code),
    }
}

/// Telnyx's codes: API refusals (`1xxxx`, `40300`) and delivery errors (`40xxx`, from the
/// `message.finalized` webhook).
pub fn describe_telnyx(code: i64) -> CarrierError {
    let (effect, reason, fix) = match code {
        40300 => (
            Effect::OptedOut,
            "the recipient has opted out of messages from this number (replied STOP)",
            "nothing: the contact is marked opted out; they can text START to opt back in",
        ),
        10002 | 40012 => (
            Effect::NotTextable,
            "the phone number is not valid",
            "check the caller's number; it will not be texted again",
        ),
        40001 => (
            Effect::NotTextable,
            "landline or a number that cannot receive texts",
            "call the contact back instead",
        ),
        40002 | 40003 | 40015 => (
            Effect::Filtered,
            "the carrier filtered the message as spam",
            "register the number for 10DLC (or verify the toll-free number) in the Telnyx portal, and make the text read less automated",
        ),
        40004 | 40005 | 40006 | 40008 | 40014 => (
            Effect::Unreachable,
            "the carrier could not deliver the message",
            "nothing: later texts may arrive; call the contact if it matters",
        ),
        40013 => (
            Effect::Other,
            "the carrier refused the sending number",
            "check in the Telnyx portal that the number is active and in a messaging profile",
        ),
        _ => (
            Effect::Other,
            "carrier error",
            "see https://developers.telnyx.com/docs/messaging/messages/error-codes",
        ),
    };
    CarrierError {
        code,
        effect,
        reason,
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnyx_codes_map_to_effects() {
        assert_eq!(describe_telnyx(40300).effect, Effect::OptedOut);
        assert_eq!(describe_telnyx(40001).effect, Effect::NotTextable);
        assert_eq!(describe_telnyx(40003).effect, Effect::Filtered);
        assert_eq!(describe_telnyx(40006).effect, Effect::Unreachable);
        // The same number means different things at each carrier.
        assert_ne!(describe_telnyx(21610).effect, describe(21610).effect);
        assert_eq!(describe_telnyx(12345).effect, Effect::Other);
    }

    #[test]
    fn codes_map_to_effects() {
        assert_eq!(describe(21610).effect, Effect::OptedOut);
        for c in [21211, 21614, 30006] {
            assert_eq!(describe(c).effect, Effect::NotTextable, "{c}");
        }
        for c in [30003, 30005] {
            assert_eq!(describe(c).effect, Effect::Unreachable, "{c}");
        }
        for c in [30007, 30034, 30032] {
            assert_eq!(describe(c).effect, Effect::Filtered, "{c}");
        }
        assert!(describe(30034).fix.contains("10DLC"));
        assert_eq!(describe(99999).effect, Effect::Other);
    }
}
