//! Account identity: slugs and time zones that are known to be valid.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountSlug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid account slug: use 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit"
)]
pub struct SlugError(pub String);

impl AccountSlug {
    pub fn parse(input: &str) -> Result<AccountSlug, SlugError> {
        let ok = !input.is_empty()
            && input.len() <= 63
            && !input.starts_with('-')
            && input
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(AccountSlug(input.to_owned()))
        } else {
            Err(SlugError(input.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone name that the bundled time zone database knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName {
    name: String,
    tz: jiff::tz::TimeZone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a known IANA time zone (for example America/Chicago or Europe/Berlin)")]
pub struct TimeZoneError(pub String);

impl TimeZoneName {
    pub fn parse(input: &str) -> Result<TimeZoneName, TimeZoneError> {
        let tz = jiff::tz::TimeZone::get(input).map_err(|_| TimeZoneError(input.to_owned()))?;
        Ok(TimeZoneName {
            name: input.to_owned(),
            tz,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn tz(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }
}

impl fmt::Display for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// An account as stored: what an account file or the web UI sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub booking_link: Option<String>,
    pub business_hours: BTreeMap<String, String>,
    pub text_back_enabled: bool,
    pub text_back_template: String,
    pub cooldown_secs: i64,
    pub do_not_text: Vec<String>,
    /// Look up each new caller's line type (Twilio Lookup) and skip landlines.
    pub landline_lookup: bool,
    /// Local times follow-ups are not sent, like `21:00-08:00`.
    pub quiet_hours: String,
}

/// A number customers call, as stored: which account it belongs to, its carrier, and the
/// team phones it rings before a call counts as missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRecord {
    pub id: i64,
    pub account_id: i64,
    pub e164: String,
    pub carrier: String,
    pub ring_to: Vec<String>,
    pub ring_seconds: i64,
    pub call_screening: bool,
    pub active: bool,
    /// A2P 10DLC or toll-free verification: unregistered, pending, approved, rejected.
    pub registration: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(AccountSlug::parse("acme-plumbing").is_ok());
        assert!(AccountSlug::parse("Acme").is_err());
        assert!(AccountSlug::parse("").is_err());
        assert!(AccountSlug::parse("-x").is_err());
        assert!(AccountSlug::parse("a b").is_err());
    }

    #[test]
    fn time_zones() {
        assert_eq!(
            TimeZoneName::parse("America/Chicago").unwrap().as_str(),
            "America/Chicago"
        );
        assert!(TimeZoneName::parse("America/Springfield").is_err());
    }
}
