//! Twilio request signatures.
//!
//! Twilio signs `URL + each POST parameter name and value, names sorted` with HMAC-SHA1 and
//! the auth token (or, when `X-Twilio-Webhooks-Signature-Settings` announces it, with
//! HMAC-SHA256 and a shared key), base64-encoded in `X-Twilio-Signature`. The URL is the
//! public one Twilio called, query included; validators try it with and without the
//! default port because Twilio may or may not have included it. JSON bodies are signed over
//! the URL alone, which carries `bodySHA256` of the raw body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Twilio-Signature header")]
    Missing,
    #[error("X-Twilio-Signature does not match the request")]
    Mismatch,
    #[error("X-Twilio-Webhooks-Signature-Settings names an unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error(
        "the request is signed with a shared key, but no TWILIO_WEBHOOK_SHARED_KEY is configured"
    )]
    NoSharedKey,
    #[error("bodySHA256 does not match the JSON body")]
    BodyHashMismatch,
}

/// Computes the signature Twilio would send for `url` and form `params`.
pub fn sign(key: &str, url: &str, params: &[(String, String)]) -> String {
    sign_with(Algorithm::HmacSha1, key, url, params)
}

pub fn sign_with(alg: Algorithm, key: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Sorted by name, then value, so repeated names sign the way Twilio's libraries do.
    sorted.sort();
    let mut data = String::with_capacity(url.len() + 64 * params.len());
    data.push_str(url);
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mac = match alg {
        Algorithm::HmacSha1 => {
            let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes())
                .expect("HMAC accepts keys of any length");
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Algorithm::HmacSha256 => {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes())
                .expect("HMAC accepts keys of any length");
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    STANDARD.encode(mac)
}

/// The keys a server checks webhooks with.
#[derive(Clone)]
pub struct SignatureCheck {
    pub auth_token: String,
    pub shared_key: Option<String>,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignatureCheck(..)")
    }
}

impl SignatureCheck {
    /// Verifies a form-encoded webhook. `url` is the public URL with its query, exactly as
    /// Twilio requested it; `params` every parameter received.
    pub fn verify_form(
        &self,
        url: &str,
        params: &[(String, String)],
        signature: Option<&str>,
        settings_header: Option<&str>,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Missing)?;
        let (alg, key) = self.algorithm_and_key(settings_header)?;
        let ok = url_variants(url).iter().any(|u| {
            constant_time_eq(
                sign_with(alg, key, u, params).as_bytes(),
                signature.as_bytes(),
            )
        });
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Verifies a JSON webhook: the URL (with `bodySHA256`) is signed, and the body must
    /// hash to that value.
    pub fn verify_json(
        &self,
        url: &str,
        body: &[u8],
        signature: Option<&str>,
        settings_header: Option<&str>,
    ) -> Result<(), SignatureError> {
        self.verify_form(url, &[], signature, settings_header)?;
        let expected = url
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k == "bodySHA256")
            .map(|(_, v)| v.into_owned())
            .ok_or(SignatureError::BodyHashMismatch)?;
        let actual = hex(&Sha256::digest(body));
        if constant_time_eq(actual.as_bytes(), expected.to_ascii_lowercase().as_bytes()) {
            Ok(())
        } else {
            Err(SignatureError::BodyHashMismatch)
        }
    }

    fn algorithm_and_key(
        &self,
        settings_header: Option<&str>,
    ) -> Result<(Algorithm, &str), SignatureError> {
        let Some(header) = settings_header else {
            return Ok((Algorithm::HmacSha1, &self.auth_token));
        };
        let algorithm = header
            .split(',')
            .filter_map(|part| part.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("algorithm"))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "HMAC_SHA1".to_owned());
        let alg = match algorithm.to_ascii_uppercase().as_str() {
            "HMAC_SHA256" | "HMAC-SHA256" => Algorithm::HmacSha256,
            "HMAC_SHA1" | "HMAC-SHA1" => Algorithm::HmacSha1,
            _ => return Err(SignatureError::UnsupportedAlgorithm(algorithm)),
        };
        let key = self
            .shared_key
            .as_deref()
            .ok_or(SignatureError::NoSharedKey)?;
        Ok((alg, key))
    }
}

/// The URL as given, plus the same URL with the scheme's default port added or removed.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(host_end);
    let suffix = format!(":{default_port}");
    if let Some(host) = authority.strip_suffix(&suffix) {
        out.push(format!("{scheme}://{host}{tail}"));
    } else if !authority.contains(':') || authority.ends_with(']') {
        out.push(format!("{scheme}://{authority}{suffix}{tail}"));
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// The worked example from Twilio's security documentation.
    #[test]
    fn matches_twilios_documented_example() {
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let sig = sign(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
        );
        assert_eq!(sig, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    }

    fn check() -> SignatureCheck {
        SignatureCheck {
            auth_token: "token".into(),
            shared_key: Some("shared".into()),
        }
    }

    #[test]
    fn verifies_with_or_without_default_port() {
        let params = p(&[("From", "+15125550123")]);
        let sig = sign(
            "token",
            "https://tb.example.com:443/webhooks/twilio/voice",
            &params,
        );
        assert!(
            check()
                .verify_form(
                    "https://tb.example.com/webhooks/twilio/voice",
                    &params,
                    Some(&sig),
                    None
                )
                .is_ok()
        );
        let sig2 = sign(
            "token",
            "https://tb.example.com/webhooks/twilio/voice",
            &params,
        );
        assert!(
            check()
                .verify_form(
                    "https://tb.example.com:443/webhooks/twilio/voice",
                    &params,
                    Some(&sig2),
                    None
                )
                .is_ok()
        );
    }

    #[test]
    fn rejects_forged_missing_and_tampered() {
        let params = p(&[("From", "+15125550123"), ("To", "+15125550100")]);
        let url = "https://tb.example.com/webhooks/twilio/voice";
        let sig = sign("token", url, &params);
        assert_eq!(
            check().verify_form(url, &params, None, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check().verify_form(url, &params, Some("bm9wZQ=="), None),
            Err(SignatureError::Mismatch)
        );
        let mut extra = params.clone();
        extra.push(("Injected".into(), "1".into()));
        assert_eq!(
            check().verify_form(url, &extra, Some(&sig), None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check().verify_form(
                "https://other.example.com/webhooks/twilio/voice",
                &params,
                Some(&sig),
                None
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn shared_key_sha256_variant() {
        let params = p(&[("From", "+15125550123")]);
        let url = "https://tb.example.com/webhooks/twilio/voice";
        let header = "key=KS123,algorithm=HMAC_SHA256";
        let sig = sign_with(Algorithm::HmacSha256, "shared", url, &params);
        assert!(
            check()
                .verify_form(url, &params, Some(&sig), Some(header))
                .is_ok()
        );
        // The auth token does not validate a request that announces a shared key.
        let sig1 = sign("token", url, &params);
        assert!(
            check()
                .verify_form(url, &params, Some(&sig1), Some(header))
                .is_err()
        );
        let no_key = SignatureCheck {
            auth_token: "token".into(),
            shared_key: None,
        };
        assert_eq!(
            no_key.verify_form(url, &params, Some(&sig), Some(header)),
            Err(SignatureError::NoSharedKey)
        );
        assert!(matches!(
            check().verify_form(url, &params, Some(&sig), Some("key=K,algorithm=MD5")),
            Err(SignatureError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn json_body_hash() {
        let body = br#"{"a":1}"#;
        let digest = hex(&Sha256::digest(body));
        let url = format!("https://tb.example.com/hook?bodySHA256={digest}");
        let sig = sign("token", &url, &[]);
        assert!(check().verify_json(&url, body, Some(&sig), None).is_ok());
        assert_eq!(
            check().verify_json(&url, br#"{"a":2}"#, Some(&sig), None),
            Err(SignatureError::BodyHashMismatch)
        );
    }
}
