//! Account files as `textback apply` reads them (TOML): reading and checking never panic,
//! and a file that checks holds only what the store may keep — distinct accounts and
//! numbers, numbers and team phones in E.164 that parse again to themselves and never ring
//! themselves, a ring time in range, a carrier and registration state we know, a text back
//! template that parses, and workflows that compile.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use textback_core::account_file::{REGISTRATION_STATES, plan};
use textback_core::phone::Phone;
use textback_core::ringing::RING_SECS;
use textback_core::workflow::Workflow;
use textback_core::{AccountSlug, MessageTemplate};

fn is_e164(s: &str) -> bool {
    Phone::parse(s).map(|p| p.to_string()).as_deref() == Ok(s)
}

fuzz_target!(|text: &str| {
    let Ok(planned) = plan(text) else {
        return;
    };
    let mut slugs = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for p in &planned {
        let slug = &p.account.slug;
        assert_eq!(
            AccountSlug::parse(slug).map(|s| s.to_string()).as_deref(),
            Ok(slug.as_str())
        );
        assert!(slugs.insert(slug.clone()), "{slug} twice");
        assert!(!p.account.name.trim().is_empty());
        assert!(MessageTemplate::parse(&p.account.text_back_template).is_ok());
        assert!(p.account.do_not_text.iter().all(|n| is_e164(n)));
        for n in &p.numbers {
            assert!(is_e164(&n.e164), "{}", n.e164);
            assert!(numbers.insert(n.e164.clone()), "{} twice", n.e164);
            assert!(["twilio", "telnyx", "sandbox"].contains(&n.carrier.as_str()));
            assert!(REGISTRATION_STATES.contains(&n.registration.as_str()));
            assert!(RING_SECS.contains(&(n.ring_seconds as u64)));
            for t in &n.ring_to {
                assert!(is_e164(t) && *t != n.e164, "{t}");
            }
        }
        for (spec, _) in &p.workflows {
            assert!(Workflow::from_spec(spec).is_ok(), "{}", spec.name);
        }
    }
});
