//! Telnyx webhook signatures (API v2, and TeXML voice callbacks alike).
//!
//! Telnyx signs `"{timestamp}|{raw body}"` with Ed25519; the request carries the base64
//! signature in `telnyx-signature-ed25519` and the Unix time in `telnyx-timestamp`. The
//! account's public key (base64, from the portal) verifies it. A timestamp more than five
//! minutes away from now is refused, so a captured request cannot be replayed later.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, UnparsedPublicKey};

pub const SIGNATURE_HEADER: &str = "telnyx-signature-ed25519";
pub const TIMESTAMP_HEADER: &str = "telnyx-timestamp";
/// How far a request's timestamp may be from now, either way.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelnyxSignatureError {
    #[error("missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")]
    Missing,
    #[error("{TIMESTAMP_HEADER} is not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "the request was signed {0} s away from now (more than 5 minutes): refused as a replay"
    )]
    Stale(i64),
    #[error("{SIGNATURE_HEADER} is not base64")]
    BadEncoding,
    #[error("TELNYX_PUBLIC_KEY is not a base64 Ed25519 public key (32 bytes)")]
    BadKey,
    #[error("{SIGNATURE_HEADER} does not match the request")]
    Mismatch,
}

/// The account's Ed25519 public key, checked once.
#[derive(Clone)]
pub struct TelnyxPublicKey(Vec<u8>);

impl std::fmt::Debug for TelnyxPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelnyxPublicKey(…)")
    }
}

impl TelnyxPublicKey {
    pub fn parse(base64_key: &str) -> Result<TelnyxPublicKey, TelnyxSignatureError> {
        let bytes = STANDARD
            .decode(base64_key.trim())
            .map_err(|_| TelnyxSignatureError::BadKey)?;
        if bytes.len() != 32 {
            return Err(TelnyxSignatureError::BadKey);
        }
        Ok(TelnyxPublicKey(bytes))
    }

    /// Checks one request: its two headers (as received), its raw body, and now.
    pub fn verify(
        &self,
        signature: Option<&str>,
        timestamp: Option<&str>,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), TelnyxSignatureError> {
        let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
            return Err(TelnyxSignatureError::Missing);
        };
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| TelnyxSignatureError::BadTimestamp)?;
        let skew = now_secs - ts;
        if skew.abs() > TOLERANCE_SECS {
            return Err(TelnyxSignatureError::Stale(skew));
        }
        let sig = STANDARD
            .decode(signature.trim())
            .map_err(|_| TelnyxSignatureError::BadEncoding)?;
        let mut signed = Vec::with_capacity(timestamp.len() + 1 + body.len());
        signed.extend_from_slice(timestamp.trim().as_bytes());
        signed.push(b'|');
        signed.extend_from_slice(body);
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&signed, &sig)
            .map_err(|_| TelnyxSignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn keys() -> (Ed25519KeyPair, TelnyxPublicKey) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = TelnyxPublicKey::parse(&STANDARD.encode(pair.public_key().as_ref())).unwrap();
        (pair, public)
    }

    fn sign(pair: &Ed25519KeyPair, ts: &str, body: &[u8]) -> String {
        let mut m = format!("{ts}|").into_bytes();
        m.extend_from_slice(body);
        STANDARD.encode(pair.sign(&m).as_ref())
    }

    const BODY: &[u8] = br#"{"data":{"event_type":"message.received"}}"#;

    #[test]
    fn a_signed_request_within_five_minutes_passes() {
        let (pair, key) = keys();
        let sig = sign(&pair, "1700000000", BODY);
        assert_eq!(
            key.verify(Some(&sig), Some("1700000000"), BODY, 1_700_000_299),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_and_tampered_requests_are_refused() {
        let (pair, key) = keys();
        let sig = sign(&pair, "1700000000", BODY);
        // Stale, either way.
        assert_eq!(
            key.verify(Some(&sig), Some("1700000000"), BODY, 1_700_000_301),
            Err(TelnyxSignatureError::Stale(301))
        );
        assert_eq!(
            key.verify(Some(&sig), Some("1700000000"), BODY, 1_699_999_000),
            Err(TelnyxSignatureError::Stale(-1000))
        );
        // The body or the timestamp changed after signing.
        let tampered = br#"{"data":{"event_type":"message.sent"}}"#;
        assert_eq!(
            key.verify(Some(&sig), Some("1700000000"), tampered, 1_700_000_000),
            Err(TelnyxSignatureError::Mismatch)
        );
        assert_eq!(
            key.verify(Some(&sig), Some("1700000001"), BODY, 1_700_000_000),
            Err(TelnyxSignatureError::Mismatch)
        );
        // Signed with another key.
        let (other, _) = keys();
        let forged = sign(&other, "1700000000", BODY);
        assert_eq!(
            key.verify(Some(&forged), Some("1700000000"), BODY, 1_700_000_000),
            Err(TelnyxSignatureError::Mismatch)
        );
        assert_eq!(
            key.verify(None, Some("1700000000"), BODY, 1_700_000_000),
            Err(TelnyxSignatureError::Missing)
        );
        assert_eq!(
            key.verify(Some("%%%"), Some("1700000000"), BODY, 1_700_000_000),
            Err(TelnyxSignatureError::BadEncoding)
        );
        assert_eq!(
            key.verify(Some(&sig), Some("soon"), BODY, 1_700_000_000),
            Err(TelnyxSignatureError::BadTimestamp)
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            TelnyxPublicKey::parse("not base64!").unwrap_err(),
            TelnyxSignatureError::BadKey
        );
        assert_eq!(
            TelnyxPublicKey::parse(&STANDARD.encode([1u8; 31])).unwrap_err(),
            TelnyxSignatureError::BadKey
        );
    }
}
