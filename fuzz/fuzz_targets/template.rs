//! Message templates as people type them: parsing, linting and rendering never panic, and a
//! template that parses renders without error for a contact with no name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use textback_core::lint::{LintInput, MessageKind, lint};
use textback_core::template::{MessageTemplate, RenderContext};

fuzz_target!(|text: &str| {
    let _ = lint(&LintInput {
        text,
        kind: MessageKind::TextBack,
        business_name: Some("Acme Plumbing"),
        booking_link: None,
    });
    if let Ok(t) = MessageTemplate::parse(text) {
        let ctx = RenderContext {
            contact_phone: "+15125550123".into(),
            contact_first_name: None,
            contact_last_name: None,
            business_name: "Acme Plumbing".into(),
            business_phone: "+15125550100".into(),
            business_booking_link: None,
            call_time: "9:05 AM".into(),
            user_first_name: None,
        };
        let _ = t.render(&ctx);
    }
});
