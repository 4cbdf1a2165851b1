//! The texting rules of SPEC §5 for the text back after a missed call, as one pure function.
//! The worker gathers the facts from storage, this decides, the worker records the result
//! with its reason on the call.

use std::fmt;

use jiff::Timestamp;

use crate::phone::CallerId;

#[derive(Debug, Clone)]
pub struct TextBackFacts<'a> {
    pub caller: &'a CallerId,
    pub text_back_enabled: bool,
    pub number_active: bool,
    pub caller_is_team_phone: bool,
    pub caller_on_do_not_text_list: bool,
    pub contact_opted_out: bool,
    /// The number failed at the carrier before as unable to receive texts.
    pub contact_not_textable: bool,
    /// A line-type lookup said landline.
    pub caller_is_landline: bool,
    /// When this caller was last texted back by this account, if ever.
    pub last_text_back_at: Option<Timestamp>,
    pub cooldown: std::time::Duration,
    pub now: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    Disabled,
    NumberInactive,
    AnonymousCaller,
    ShortCode,
    UnparseableCaller,
    TeamPhone,
    DoNotText,
    OptedOut,
    NotTextable,
    Landline,
    Cooldown,
}

impl SkipReason {
    /// Stable machine-readable code, stored on the call and shown by the API.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::Disabled => "text_back_disabled",
            SkipReason::NumberInactive => "number_inactive",
            SkipReason::AnonymousCaller => "anonymous_caller",
            SkipReason::ShortCode => "short_code",
            SkipReason::UnparseableCaller => "unparseable_caller_id",
            SkipReason::TeamPhone => "team_phone",
            SkipReason::DoNotText => "do_not_text_list",
            SkipReason::OptedOut => "opted_out",
            SkipReason::NotTextable => "not_textable",
            SkipReason::Landline => "landline",
            SkipReason::Cooldown => "cooldown",
        }
    }

    pub fn from_code(code: &str) -> Option<SkipReason> {
        use SkipReason::*;
        [
            Disabled,
            NumberInactive,
            AnonymousCaller,
            ShortCode,
            UnparseableCaller,
            TeamPhone,
            DoNotText,
            OptedOut,
            NotTextable,
            Landline,
            Cooldown,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    pub fn explain(self) -> &'static str {
        match self {
            SkipReason::Disabled => "text back is turned off for this account",
            SkipReason::NumberInactive => "the number is not active",
            SkipReason::AnonymousCaller => "the caller withheld their number",
            SkipReason::ShortCode => "the caller id is a short code, which cannot receive texts",
            SkipReason::UnparseableCaller => "the caller id is not a phone number",
            SkipReason::TeamPhone => "the call came from one of the team's own phones",
            SkipReason::DoNotText => "the caller is on the account's do-not-text list",
            SkipReason::OptedOut => "the contact has opted out of texts",
            SkipReason::NotTextable => "the carrier reported this number cannot receive texts",
            SkipReason::Landline => "the caller's number is a landline",
            SkipReason::Cooldown => {
                "this caller was already texted back within the cooldown window"
            }
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextBackDecision {
    Send,
    Skip(SkipReason),
}

/// Applies the rules in a fixed order, so the recorded reason is the most fundamental one
/// (a withheld number is reported as such even when text back is also off).
pub fn decide(f: &TextBackFacts<'_>) -> TextBackDecision {
    use TextBackDecision::Skip;
    match f.caller {
        CallerId::Anonymous => return Skip(SkipReason::AnonymousCaller),
        CallerId::ShortCode(_) => return Skip(SkipReason::ShortCode),
        CallerId::Unparseable(_) => return Skip(SkipReason::UnparseableCaller),
        CallerId::Number(_) => {}
    }
    if f.caller_is_team_phone {
        return Skip(SkipReason::TeamPhone);
    }
    if !f.number_active {
        return Skip(SkipReason::NumberInactive);
    }
    if !f.text_back_enabled {
        return Skip(SkipReason::Disabled);
    }
    if f.contact_opted_out {
        return Skip(SkipReason::OptedOut);
    }
    if f.caller_on_do_not_text_list {
        return Skip(SkipReason::DoNotText);
    }
    if f.contact_not_textable {
        return Skip(SkipReason::NotTextable);
    }
    if f.caller_is_landline {
        return Skip(SkipReason::Landline);
    }
    if let Some(last) = f.last_text_back_at {
        let elapsed = f.now.as_millisecond().saturating_sub(last.as_millisecond());
        if elapsed >= 0 && (elapsed as u128) < f.cooldown.as_millis() {
            return Skip(SkipReason::Cooldown);
        }
    }
    TextBackDecision::Send
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::Phone;
    use std::time::Duration;

    fn base(caller: &CallerId) -> TextBackFacts<'_> {
        TextBackFacts {
            caller,
            text_back_enabled: true,
            number_active: true,
            caller_is_team_phone: false,
            caller_on_do_not_text_list: false,
            contact_opted_out: false,
            contact_not_textable: false,
            caller_is_landline: false,
            last_text_back_at: None,
            cooldown: Duration::from_secs(900),
            now: "2026-11-27T12:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_plain_missed_call_is_texted() {
        let c = CallerId::Number(Phone::parse("+15125550123").unwrap());
        assert_eq!(decide(&base(&c)), TextBackDecision::Send);
    }

    #[test]
    fn each_rule_skips_with_its_reason() {
        let c = CallerId::Number(Phone::parse("+15125550123").unwrap());
        let cases: Vec<(TextBackFacts<'_>, SkipReason)> = vec![
            (
                TextBackFacts {
                    text_back_enabled: false,
                    ..base(&c)
                },
                SkipReason::Disabled,
            ),
            (
                TextBackFacts {
                    number_active: false,
                    ..base(&c)
                },
                SkipReason::NumberInactive,
            ),
            (
                TextBackFacts {
                    caller_is_team_phone: true,
                    ..base(&c)
                },
                SkipReason::TeamPhone,
            ),
            (
                TextBackFacts {
                    caller_on_do_not_text_list: true,
                    ..base(&c)
                },
                SkipReason::DoNotText,
            ),
            (
                TextBackFacts {
                    contact_opted_out: true,
                    ..base(&c)
                },
                SkipReason::OptedOut,
            ),
        ];
        for (facts, reason) in cases {
            assert_eq!(decide(&facts), TextBackDecision::Skip(reason));
        }
        let anon = CallerId::Anonymous;
        assert_eq!(
            decide(&base(&anon)),
            TextBackDecision::Skip(SkipReason::AnonymousCaller)
        );
        let short = CallerId::ShortCode("12345".into());
        assert_eq!(
            decide(&base(&short)),
            TextBackDecision::Skip(SkipReason::ShortCode)
        );
    }

    #[test]
    fn cooldown_window_is_per_caller_and_ends() {
        let c = CallerId::Number(Phone::parse("+15125550123").unwrap());
        let now: Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let recent = TextBackFacts {
            last_text_back_at: Some("2026-11-27T11:50:00Z".parse().unwrap()),
            now,
            ..base(&c)
        };
        assert_eq!(
            decide(&recent),
            TextBackDecision::Skip(SkipReason::Cooldown)
        );
        let old = TextBackFacts {
            last_text_back_at: Some("2026-11-27T11:45:00Z".parse().unwrap()),
            now,
            ..base(&c)
        };
        assert_eq!(decide(&old), TextBackDecision::Send);
    }
}
