//! Plans the text back for one missed call from the facts the store read: the texting
//! rules and the template, both pure code from `textback-core`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use textback_core::text_back::decide;
use textback_core::{
    CallerId, MessageTemplate, Phone, RenderContext, TextBackDecision, TextBackFacts,
};
use textback_store::{TextBackInput, TextBackPlan};

pub fn plan(input: &TextBackInput, now: Timestamp, carrier: &str) -> TextBackPlan {
    let caller = match &input.caller_phone {
        Some(p) => match Phone::parse(p) {
            Ok(phone) => CallerId::Number(phone),
            Err(_) => CallerId::Unparseable(p.clone()),
        },
        None => CallerId::from_carrier(&input.caller),
    };
    let same = |list: &[String]| {
        caller.phone().is_some_and(|p| {
            list.iter()
                .any(|n| Phone::parse(n).map(|n| &n == p).unwrap_or(false))
        })
    };
    let facts = TextBackFacts {
        caller: &caller,
        text_back_enabled: input.account.text_back_enabled,
        number_active: input.number.active,
        caller_is_team_phone: same(&input.number.ring_to),
        caller_on_do_not_text_list: same(&input.account.do_not_text),
        contact_opted_out: input.contact_opted_out,
        contact_not_textable: input.contact_not_textable,
        caller_is_landline: input.caller_line_type.as_deref() == Some("landline"),
        last_text_back_at: input
            .last_text_back_at_ms
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        cooldown: std::time::Duration::from_secs(input.account.cooldown_secs.max(0) as u64),
        now,
    };
    if let TextBackDecision::Skip(reason) = decide(&facts) {
        return TextBackPlan::Skip {
            reason: reason.code().to_owned(),
        };
    }
    let template = match MessageTemplate::parse(&input.account.text_back_template) {
        Ok(t) => t,
        Err(e) => {
            return TextBackPlan::Failed {
                reason: format!("the text back message is not valid: {e}"),
            };
        }
    };
    let tz = TimeZone::get(&input.account.time_zone).unwrap_or(TimeZone::UTC);
    let call_time = Timestamp::from_millisecond(input.started_at_ms)
        .map(|t| tz.to_datetime(t).strftime("%-I:%M %p").to_string())
        .unwrap_or_default();
    let ctx = RenderContext {
        contact_phone: caller.phone().map(|p| p.to_string()).unwrap_or_default(),
        contact_first_name: input.contact_first_name.clone(),
        contact_last_name: input.contact_last_name.clone(),
        business_name: input.account.name.clone(),
        business_phone: input.number.e164.clone(),
        business_booking_link: input.account.booking_link.clone(),
        call_time,
        user_first_name: None,
    };
    match template.render(&ctx) {
        Ok(body) => TextBackPlan::Send {
            body,
            carrier: carrier.to_owned(),
        },
        Err(e) => TextBackPlan::Failed {
            reason: format!("the text back message could not be rendered: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use textback_store::{AccountRecord, NumberRecord};

    fn input(template: &str, caller: Option<&str>) -> TextBackInput {
        TextBackInput {
            call_id: 1,
            caller: caller.unwrap_or("anonymous").to_owned(),
            caller_phone: caller.map(str::to_owned),
            // Monday 2026-11-30 15:00 UTC is 9:00 AM in Chicago.
            started_at_ms: "2026-11-30T15:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_millisecond(),
            account: AccountRecord {
                id: 1,
                slug: "acme".into(),
                name: "Acme Plumbing".into(),
                time_zone: "America/Chicago".into(),
                booking_link: None,
                business_hours: Default::default(),
                text_back_enabled: true,
                text_back_template: template.into(),
                cooldown_secs: 900,
                do_not_text: vec![],
                landline_lookup: false,
            },
            number: NumberRecord {
                id: 1,
                account_id: 1,
                e164: "+15125550100".into(),
                carrier: "twilio".into(),
                ring_to: vec!["+1 (512) 555-0199".into()],
                ring_seconds: 20,
                call_screening: false,
                active: true,
                registration: "approved".into(),
            },
            contact_first_name: Some("Sam".into()),
            contact_last_name: None,
            contact_opted_out: false,
            contact_not_textable: false,
            caller_line_type: None,
            last_text_back_at_ms: None,
        }
    }

    fn now() -> Timestamp {
        "2026-11-30T15:00:01Z".parse().unwrap()
    }

    #[test]
    fn renders_names_and_call_time_in_the_accounts_zone() {
        let plan = plan(
            &input(
                "Hi {{contact.first_name | default('there')}}, {{business.name}} missed you at {{call.time}}.",
                Some("+15125550123"),
            ),
            now(),
            "sandbox",
        );
        assert_eq!(
            plan,
            TextBackPlan::Send {
                body: "Hi Sam, Acme Plumbing missed you at 9:00 AM.".into(),
                carrier: "sandbox".into()
            }
        );
    }

    #[test]
    fn landlines_are_not_texted() {
        let mut i = input("{{business.name}} here.", Some("+15125550123"));
        i.caller_line_type = Some("landline".into());
        assert_eq!(
            plan(&i, now(), "sandbox"),
            TextBackPlan::Skip {
                reason: "landline".into()
            }
        );
        i.caller_line_type = Some("mobile".into());
        assert!(matches!(
            plan(&i, now(), "sandbox"),
            TextBackPlan::Send { .. }
        ));
    }

    #[test]
    fn team_phones_match_whatever_their_punctuation() {
        let plan = plan(
            &input("{{business.name}} here.", Some("+15125550199")),
            now(),
            "sandbox",
        );
        assert_eq!(
            plan,
            TextBackPlan::Skip {
                reason: "team_phone".into()
            }
        );
    }
}
