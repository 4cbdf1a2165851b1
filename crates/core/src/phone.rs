//! Phone numbers in E.164, validated with libphonenumber's metadata.

use std::fmt;

/// The caller id of the setup page's test call: in the 555-0100–0199 range set aside for
/// fiction, so no real person owns it. Its calls are real (same webhooks, same rules), but
/// reports leave them out: a business's figures are about its customers.
pub const TEST_CALLER: &str = "+12025550100";

/// Countries numbers without a `+` are read in.
pub use phonenumber::country::Id as Country;

/// A phone number that is known to be valid, always held in E.164 form (`+15125550100`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("a phone number is required")]
    Empty,
    #[error("{0:?} is not a phone number: only digits, spaces, +, -, ( ) and . are allowed")]
    BadCharacters(String),
    #[error("{0:?} must be in international form, starting with + and the country code")]
    NotInternational(String),
    #[error("{0:?} is not a valid phone number")]
    Invalid(String),
}

impl Phone {
    /// Parses a number written in international form. Letters (vanity numbers, `sip:` URIs,
    /// e-mail addresses) are rejected before libphonenumber sees them, because its parser
    /// would otherwise translate letters to keypad digits.
    pub fn parse(input: &str) -> Result<Phone, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        {
            return Err(PhoneError::BadCharacters(trimmed.to_owned()));
        }
        if !trimmed.starts_with('+') || trimmed[1..].contains('+') {
            return Err(PhoneError::NotInternational(trimmed.to_owned()));
        }
        let parsed = phonenumber::parse(None, trimmed)
            .map_err(|_| PhoneError::Invalid(trimmed.to_owned()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid(trimmed.to_owned()));
        }
        Ok(Phone(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// A number read back from Textback's own store, where only `parse`'s output is kept:
    /// checked for E.164's shape (`+`, no leading zero, 7 to 15 digits) instead of parsed
    /// again, which costs libphonenumber's regular expressions on every step of every run.
    /// Anything not of that shape is parsed in full.
    pub fn from_stored(stored: &str) -> Result<Phone, PhoneError> {
        let digits = stored.strip_prefix('+').unwrap_or("");
        if (7..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Ok(Phone(stored.to_owned()));
        }
        Phone::parse(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a number as people type it: international (`+1 512 555 0123`) or, without a
    /// `+`, national in the default country (`(512) 555-0123` for the US).
    pub fn parse_in(
        input: &str,
        default_country: phonenumber::country::Id,
    ) -> Result<Phone, PhoneError> {
        let trimmed = input.trim();
        if trimmed.starts_with('+') {
            return Phone::parse(trimmed);
        }
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
        {
            return Err(PhoneError::BadCharacters(trimmed.to_owned()));
        }
        let parsed = phonenumber::parse(Some(default_country), trimmed)
            .map_err(|_| PhoneError::Invalid(trimmed.to_owned()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid(trimmed.to_owned()));
        }
        Ok(Phone(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Toll-free numbers register through toll-free verification, not A2P 10DLC.
    pub fn is_toll_free(&self) -> bool {
        phonenumber::parse(None, &self.0)
            .map(|p| p.number_type(&phonenumber::metadata::DATABASE) == phonenumber::Type::TollFree)
            .unwrap_or(false)
    }

    /// The number with all but the last four digits hidden, for logs: full numbers never
    /// go into a log line.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

/// Loads libphonenumber's metadata and compiles the patterns of the regions of `numbers`
/// (a business's own numbers: its callers are mostly from the same country). The first
/// parse does this otherwise, ~150 ms on the first caller's webhook after every start, and
/// ~10 ms on the first number of each further region.
pub fn warm_up<'a>(numbers: impl IntoIterator<Item = &'a str>) {
    let _ = &*phonenumber::metadata::DATABASE;
    for number in numbers {
        let _ = Phone::parse(number);
    }
}

/// Hides all but the last four characters of a caller id or number.
pub fn redact(raw: &str) -> String {
    let n = raw.chars().count();
    if n <= 4 {
        return "****".to_owned();
    }
    let tail: String = raw.chars().skip(n - 4).collect();
    format!("***{tail}")
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.redacted())
    }
}

impl std::str::FromStr for Phone {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phone::parse(s)
    }
}

/// What a carrier reports as the caller. Only a `Number` can be texted back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerId {
    Number(Phone),
    /// Five- or six-digit short codes: they cannot receive a text back.
    ShortCode(String),
    /// Withheld, blocked or "anonymous" caller ids.
    Anonymous,
    /// Something we could not read as a phone number; kept as received.
    Unparseable(String),
}

impl CallerId {
    pub fn from_carrier(raw: &str) -> CallerId {
        let trimmed = raw.trim();
        let lower = trimmed.to_ascii_lowercase();
        if trimmed.is_empty()
            || matches!(
                lower.as_str(),
                "anonymous" | "restricted" | "unknown" | "private" | "blocked" | "unavailable"
            )
            || trimmed == "+266696687"
            || trimmed == "+7378742833"
        {
            // Twilio reports withheld caller ids as "+266696687" ("ANONYMOUS" on a keypad)
            // and "+7378742833" ("RESTRICTED"), besides the plain words.
            return CallerId::Anonymous;
        }
        let digits = trimmed.trim_start_matches('+');
        if (3..=6).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            return CallerId::ShortCode(digits.to_owned());
        }
        match Phone::parse(trimmed) {
            Ok(phone) => CallerId::Number(phone),
            Err(_) => CallerId::Unparseable(trimmed.to_owned()),
        }
    }

    pub fn phone(&self) -> Option<&Phone> {
        match self {
            CallerId::Number(p) => Some(p),
            _ => None,
        }
    }

    /// The caller id as stored on the call record.
    pub fn raw(&self) -> String {
        match self {
            CallerId::Number(p) => p.to_string(),
            CallerId::ShortCode(s) => s.clone(),
            CallerId::Anonymous => "anonymous".to_owned(),
            CallerId::Unparseable(s) => s.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_numbers_read_back_as_they_were_parsed() {
        for typed in ["+1 (512) 555-0142", "+44 20 7946 0958", "+61 2 9374 4000"] {
            let parsed = Phone::parse(typed).unwrap();
            assert_eq!(Phone::from_stored(parsed.as_str()).unwrap(), parsed);
        }
        // Not E.164's shape: parsed in full, so the same errors as `parse`.
        assert_eq!(
            Phone::from_stored("+1 512 555 0142").unwrap().as_str(),
            "+15125550142"
        );
        assert!(Phone::from_stored("anonymous").is_err());
        assert!(Phone::from_stored("+0123456789").is_err());
        assert!(Phone::from_stored("").is_err());
    }

    #[test]
    fn accepts_international_numbers_in_any_punctuation() {
        let p = Phone::parse("+1 (512) 555-0100").unwrap();
        assert_eq!(p.as_str(), "+15125550100");
        assert_eq!(
            Phone::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn rejects_letters_and_addresses() {
        assert!(matches!(
            Phone::parse("+1-800-FLOWERS"),
            Err(PhoneError::BadCharacters(_))
        ));
        assert!(matches!(
            Phone::parse("bob@example.com"),
            Err(PhoneError::BadCharacters(_))
        ));
    }

    #[test]
    fn rejects_numbers_without_country_code_or_invalid() {
        assert!(matches!(
            Phone::parse("5125550100"),
            Err(PhoneError::NotInternational(_))
        ));
        assert!(matches!(
            Phone::parse("+1 123"),
            Err(PhoneError::Invalid(_))
        ));
        assert!(matches!(Phone::parse("  "), Err(PhoneError::Empty)));
    }

    #[test]
    fn caller_ids_classify() {
        assert!(matches!(
            CallerId::from_carrier("+15125550123"),
            CallerId::Number(_)
        ));
        assert_eq!(CallerId::from_carrier("anonymous"), CallerId::Anonymous);
        assert_eq!(CallerId::from_carrier("+266696687"), CallerId::Anonymous);
        assert_eq!(CallerId::from_carrier(""), CallerId::Anonymous);
        assert!(matches!(
            CallerId::from_carrier("+1 22"),
            CallerId::Unparseable(_)
        ));
        assert!(matches!(
            CallerId::from_carrier("12345"),
            CallerId::ShortCode(_)
        ));
        assert!(matches!(
            CallerId::from_carrier("sip:someone@example.com"),
            CallerId::Unparseable(_)
        ));
    }

    #[test]
    fn national_formats_in_a_default_country() {
        use phonenumber::country::Id::US;
        for s in [
            "(512) 555-0123",
            "512-555-0123",
            "512.555.0123",
            "5125550123",
            "+1 512 555 0123",
        ] {
            assert_eq!(
                Phone::parse_in(s, US).unwrap().as_str(),
                "+15125550123",
                "{s}"
            );
        }
        assert!(Phone::parse_in("555-0123", US).is_err());
        assert!(Phone::parse_in("512-CALL-NOW", US).is_err());
    }

    #[test]
    fn toll_free_numbers() {
        assert!(Phone::parse("+18005550100").unwrap().is_toll_free());
        assert!(Phone::parse("+18885550123").unwrap().is_toll_free());
        assert!(!Phone::parse("+15125550100").unwrap().is_toll_free());
    }

    #[test]
    fn redaction_keeps_only_last_four() {
        assert_eq!(Phone::parse("+15125550100").unwrap().redacted(), "***0100");
        assert!(!format!("{:?}", Phone::parse("+15125550100").unwrap()).contains("512555"));
    }
}
