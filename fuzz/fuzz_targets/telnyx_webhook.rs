//! A Telnyx webhook as an attacker could send it: reading the event and checking the
//! Ed25519 signature never panics, and nothing unsigned is ever accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use textback_carriers::telnyx::{TelnyxPublicKey, parse_messaging_event};

fuzz_target!(|data: &[u8]| {
    let _ = parse_messaging_event(data);
    let key = TelnyxPublicKey::parse("kf1pmzM9IRGGF9fXu9L0fGiXGtBWEkCvWwE+YZ9Nqgg=").expect("key");
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let (sig, ts, body) = (lines.next(), lines.next(), lines.next().unwrap_or(""));
    // Random bytes are never a valid signature over the body under this key.
    assert!(key.verify(sig, ts, body.as_bytes(), 1_700_000_000).is_err());
});
