//! How a business number rings the team before a call counts as missed: the team phones
//! and the ring time, checked the same way wherever they are edited (account files, the
//! settings page).

use crate::phone::Phone;

/// The ring time when none is given: about four rings.
pub const DEFAULT_RING_SECS: u64 = 20;
/// Under 5 s nobody can pick up; past 10 minutes the caller has long hung up.
pub const RING_SECS: std::ops::RangeInclusive<u64> = 5..=600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    #[error("team phone {}: {why}", .index + 1)]
    BadPhone { index: usize, why: String },
    #[error("team phone {}: a number cannot ring itself", .index + 1)]
    RingsItself { index: usize },
    #[error("ring time must be between 5s and 600s (10m)")]
    RingTime,
}

/// The team phones as stored (E.164), checked against the business number itself.
pub fn team_phones(number: &str, ring: &[String]) -> Result<Vec<String>, RingError> {
    let mut out = Vec::with_capacity(ring.len());
    for (index, raw) in ring.iter().enumerate() {
        let p = Phone::parse(raw)
            .map_err(|e| RingError::BadPhone {
                index,
                why: e.to_string(),
            })?
            .to_string();
        if p == number {
            return Err(RingError::RingsItself { index });
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

pub fn ring_seconds(secs: u64) -> Result<u64, RingError> {
    if RING_SECS.contains(&secs) {
        Ok(secs)
    } else {
        Err(RingError::RingTime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_phones_are_normalised_and_never_the_number_itself() {
        assert_eq!(
            team_phones(
                "+15005550006",
                &["+1 512 555 0199".into(), "+15125550199".into()]
            ),
            Ok(vec!["+15125550199".to_owned()])
        );
        assert_eq!(
            team_phones("+15005550006", &["+1 500 555 0006".into()]),
            Err(RingError::RingsItself { index: 0 })
        );
        assert!(matches!(
            team_phones("+15005550006", &["+15125550199".into(), "call me".into()]),
            Err(RingError::BadPhone { index: 1, .. })
        ));
    }

    #[test]
    fn ring_time_is_bounded() {
        assert_eq!(ring_seconds(20), Ok(20));
        assert_eq!(ring_seconds(4), Err(RingError::RingTime));
        assert_eq!(ring_seconds(601), Err(RingError::RingTime));
    }
}
