//! Phone numbers and SMS segment counting on any text: no panic; a parsed number is E.164
//! and parses again to itself; any non-empty text takes at least one segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use textback_core::phone::Phone;
use textback_core::segments::count;

fuzz_target!(|text: &str| {
    if let Ok(p) = Phone::parse(text) {
        let e164 = p.to_string();
        assert!(e164.starts_with('+'));
        assert_eq!(Phone::parse(&e164).map(|q| q.to_string()), Ok(e164));
    }
    let s = count(text);
    assert!(text.is_empty() || s.segments >= 1);
});
