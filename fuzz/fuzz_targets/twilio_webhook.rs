//! A Twilio webhook body and signature headers, as an attacker could send them: parsing the
//! form and checking the signature never panics, and a signature we compute ourselves over
//! the same parameters is always accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use textback_carriers::twilio::SignatureCheck;
use textback_carriers::twilio::signature::sign;

fuzz_target!(|data: &[u8]| {
    let (body, headers) = data.split_at(data.len() / 2);
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let header = String::from_utf8_lossy(headers);
    let (signature, settings) = header.split_once('\n').unwrap_or((&header, ""));
    let check = SignatureCheck {
        auth_token: "fuzz_auth_token".into(),
        shared_key: Some("fuzz_shared_key".into()),
    };
    let url = "https://textback.example.com/webhooks/twilio/voice";
    let _ = check.verify_form(
        url,
        &params,
        Some(signature),
        Some(settings).filter(|s| !s.is_empty()),
    );
    let _ = check.verify_json(url, body, Some(signature), None);
    let good = sign("fuzz_auth_token", url, &params);
    assert!(check.verify_form(url, &params, Some(&good), None).is_ok());
});
