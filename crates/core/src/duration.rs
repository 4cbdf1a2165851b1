//! Durations as people write them in account files: `45s`, `30m`, `2h`, `1d`.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a duration: write a whole number followed by s, m, h or d, like 45s, 30m, 2h or 1d"
)]
pub struct DurationError {
    pub input: String,
}

impl HumanDuration {
    pub fn parse(input: &str) -> Result<HumanDuration, DurationError> {
        let err = || DurationError {
            input: input.to_owned(),
        };
        let s = input.trim();
        let unit = s.chars().last().ok_or_else(err)?;
        let number = &s[..s.len() - unit.len_utf8()];
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        let n: u64 = number.parse().map_err(|_| err())?;
        let secs = match unit {
            's' => Some(n),
            'm' => n.checked_mul(60),
            'h' => n.checked_mul(3600),
            'd' => n.checked_mul(86_400),
            _ => None,
        }
        .ok_or_else(err)?;
        Ok(HumanDuration(Duration::from_secs(secs)))
    }

    pub fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that writes the duration exactly, so `parse(display(d)) == d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        if s != 0 && s.is_multiple_of(86_400) {
            write!(f, "{}d", s / 86_400)
        } else if s != 0 && s.is_multiple_of(3600) {
            write!(f, "{}h", s / 3600)
        } else if s != 0 && s.is_multiple_of(60) {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HumanDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(HumanDuration::parse("45s").unwrap().as_secs(), 45);
        assert_eq!(HumanDuration::parse("30m").unwrap().as_secs(), 1800);
        assert_eq!(HumanDuration::parse("2h").unwrap().as_secs(), 7200);
        assert_eq!(HumanDuration::parse("1d").unwrap().as_secs(), 86_400);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "m",
            "30",
            "3.5h",
            "-1m",
            "30 minutes",
            "1w",
            "99999999999999999999d",
            "5é",
        ] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in ["45s", "30m", "2h", "1d", "90s", "0s"] {
            assert_eq!(HumanDuration::parse(s).unwrap().to_string(), s);
        }
    }
}
