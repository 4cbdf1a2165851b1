//! The missed-call rule of SPEC §4, as a pure function of what the carrier reported.

use std::fmt;

/// Twilio's `DialCallStatus` for the `<Dial>` action request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialStatus {
    Completed,
    Answered,
    NoAnswer,
    Busy,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a DialCallStatus Twilio sends")]
pub struct DialStatusError(pub String);

impl DialStatus {
    pub fn parse(raw: &str) -> Result<DialStatus, DialStatusError> {
        Ok(match raw {
            "completed" => DialStatus::Completed,
            "answered" => DialStatus::Answered,
            "no-answer" => DialStatus::NoAnswer,
            "busy" => DialStatus::Busy,
            "failed" => DialStatus::Failed,
            "canceled" => DialStatus::Canceled,
            other => return Err(DialStatusError(other.to_owned())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DialStatus::Completed => "completed",
            DialStatus::Answered => "answered",
            DialStatus::NoAnswer => "no-answer",
            DialStatus::Busy => "busy",
            DialStatus::Failed => "failed",
            DialStatus::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Answered,
    Missed,
    Voicemail,
}

impl CallOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Missed => "missed",
            CallOutcome::Voicemail => "voicemail",
        }
    }

    pub fn parse(s: &str) -> Option<CallOutcome> {
        match s {
            "answered" => Some(CallOutcome::Answered),
            "missed" => Some(CallOutcome::Missed),
            "voicemail" => Some(CallOutcome::Voicemail),
            _ => None,
        }
    }

    /// Missed calls and calls that went to voicemail are both texted back.
    pub fn is_missed(self) -> bool {
        !matches!(self, CallOutcome::Answered)
    }
}

impl fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides whether a human took the call.
///
/// `completed` only means *something* answered the dialled leg: a team member's own cell
/// voicemail answers too. With call screening on, only a key press (`screen_accepted`)
/// proves a person took it.
pub fn dial_outcome(status: DialStatus, screening: bool, screen_accepted: bool) -> CallOutcome {
    match status {
        DialStatus::Completed | DialStatus::Answered => {
            if !screening || screen_accepted {
                CallOutcome::Answered
            } else {
                CallOutcome::Missed
            }
        }
        DialStatus::NoAnswer | DialStatus::Busy | DialStatus::Failed | DialStatus::Canceled => {
            CallOutcome::Missed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dial_status() {
        for s in ["no-answer", "busy", "failed", "canceled"] {
            let st = DialStatus::parse(s).unwrap();
            assert_eq!(dial_outcome(st, false, false), CallOutcome::Missed, "{s}");
            assert_eq!(dial_outcome(st, true, true), CallOutcome::Missed, "{s}");
        }
        let c = DialStatus::parse("completed").unwrap();
        assert_eq!(dial_outcome(c, false, false), CallOutcome::Answered);
        assert_eq!(dial_outcome(c, true, true), CallOutcome::Answered);
        // Screening on, nobody pressed the key: the cell's voicemail picked up.
        assert_eq!(dial_outcome(c, true, false), CallOutcome::Missed);
    }

    #[test]
    fn unknown_status_is_an_error() {
        assert!(DialStatus::parse("ringing").is_err());
    }
}
