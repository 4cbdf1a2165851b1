//! Quiet hours: follow-ups are not sent between these local times (default 21:00–08:00).

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: Time,
    pub end: Time,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start: Time::constant(21, 0, 0, 0),
            end: Time::constant(8, 0, 0, 0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quiet hours {0:?} are not valid: write them as HH:MM-HH:MM, like 21:00-08:00")]
pub struct QuietHoursError(pub String);

impl QuietHours {
    /// Parses `21:00-08:00`; the window may wrap past midnight.
    pub fn parse(s: &str) -> Result<QuietHours, QuietHoursError> {
        let bad = || QuietHoursError(s.to_owned());
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let time = |t: &str| -> Option<Time> {
            let (h, m) = t.trim().split_once(':')?;
            if m.len() != 2 {
                return None;
            }
            Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
        };
        let (start, end) = (time(a).ok_or_else(bad)?, time(b).ok_or_else(bad)?);
        if start == end {
            return Err(bad());
        }
        Ok(QuietHours { start, end })
    }

    pub fn to_string_hhmm(&self) -> String {
        format!(
            "{}-{}",
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M")
        )
    }

    fn contains(&self, t: Time) -> bool {
        if self.start <= self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// `at` itself when it is outside quiet hours, else the first minute after them, in
    /// the zone's local time (daylight-saving shifts included).
    pub fn next_allowed(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = tz.to_datetime(at);
        if !self.contains(local.time()) {
            return at;
        }
        let mut day = local.date();
        if local.time() >= self.start && self.start > self.end {
            day = day.tomorrow().unwrap_or(day);
        }
        let end = day.to_datetime(self.end);
        tz.to_ambiguous_timestamp(end).later().unwrap_or(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chicago() -> TimeZone {
        TimeZone::get("America/Chicago").unwrap()
    }

    #[test]
    fn late_evening_moves_to_eight_next_morning() {
        // 23:00 Chicago (CST) on 2026-12-01 is 05:00 UTC on 12-02.
        let at: Timestamp = "2026-12-02T05:00:00Z".parse().unwrap();
        let next = QuietHours::default().next_allowed(at, &chicago());
        assert_eq!(next, "2026-12-02T14:00:00Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn early_morning_waits_until_eight_same_day() {
        // 06:30 Chicago = 12:30 UTC.
        let at: Timestamp = "2026-12-02T12:30:00Z".parse().unwrap();
        assert_eq!(
            QuietHours::default().next_allowed(at, &chicago()),
            "2026-12-02T14:00:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn parse_and_print() {
        let q = QuietHours::parse("21:00-08:00").unwrap();
        assert_eq!(q, QuietHours::default());
        assert_eq!(q.to_string_hhmm(), "21:00-08:00");
        assert!(QuietHours::parse("9pm-8am").is_err());
        assert!(QuietHours::parse("08:00-08:00").is_err());
        assert!(QuietHours::parse("12:00-13:00").is_ok());
    }

    #[test]
    fn daytime_is_allowed_as_is() {
        let at: Timestamp = "2026-12-02T18:00:00Z".parse().unwrap();
        assert_eq!(QuietHours::default().next_allowed(at, &chicago()), at);
    }

    #[test]
    fn across_the_spring_forward_night() {
        // 2027-03-14 02:00 Chicago clocks jump to 03:00. 23:30 CST on 03-13 = 05:30 UTC 03-14.
        let at: Timestamp = "2027-03-14T05:30:00Z".parse().unwrap();
        // 08:00 CDT (UTC-5) on 03-14 = 13:00 UTC.
        assert_eq!(
            QuietHours::default().next_allowed(at, &chicago()),
            "2027-03-14T13:00:00Z".parse::<Timestamp>().unwrap()
        );
    }
}
