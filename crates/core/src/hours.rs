//! Business hours: one opening window per weekday, in the account's own time zone.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    open: Time,
    close: Time,
}

/// Opening windows per weekday; a day without a window is closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BusinessHours {
    days: [Option<Window>; 7],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("{0:?} is not a weekday: use mon, tue, wed, thu, fri, sat or sun")]
    UnknownDay(String),
    #[error(
        "business hours for {day} are {value:?}: write them as HH:MM-HH:MM (like 08:00-17:00) or \"closed\""
    )]
    BadWindow { day: String, value: String },
    #[error("business hours for {day} close ({close}) before they open ({open})")]
    ClosesBeforeOpening {
        day: String,
        open: String,
        close: String,
    },
}

impl BusinessHours {
    /// Parses `{"mon": "08:00-17:00", "sat": "closed"}`; days left out are closed.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<BusinessHours, HoursError> {
        let mut hours = BusinessHours::default();
        for (day, value) in map {
            let index = DAYS
                .iter()
                .position(|(name, _)| name == &day.to_ascii_lowercase())
                .ok_or_else(|| HoursError::UnknownDay(day.clone()))?;
            hours.days[index] = parse_window(day, value)?;
        }
        Ok(hours)
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        DAYS.iter()
            .zip(self.days.iter())
            .filter_map(|((name, _), w)| {
                w.map(|w| {
                    (
                        (*name).to_owned(),
                        format!("{}-{}", w.open.strftime("%H:%M"), w.close.strftime("%H:%M")),
                    )
                })
            })
            .collect()
    }

    /// Weekdays 08:00–17:00, the usual default for a trade business.
    pub fn weekdays_nine_to_five() -> BusinessHours {
        let w = Window {
            open: Time::constant(9, 0, 0, 0),
            close: Time::constant(17, 0, 0, 0),
        };
        BusinessHours {
            days: [Some(w), Some(w), Some(w), Some(w), Some(w), None, None],
        }
    }

    pub fn is_open(&self, at: Timestamp, tz: &TimeZone) -> bool {
        let local = tz.to_datetime(at);
        let index = DAYS
            .iter()
            .position(|(_, wd)| *wd == local.weekday())
            .unwrap_or(0);
        match self.days[index] {
            Some(w) => {
                let t = local.time();
                t >= w.open && t < w.close
            }
            None => false,
        }
    }
}

impl BusinessHours {
    fn window(&self, wd: Weekday) -> Option<Window> {
        DAYS.iter()
            .position(|(_, d)| *d == wd)
            .and_then(|i| self.days[i])
    }

    pub fn is_empty(&self) -> bool {
        self.days.iter().all(Option::is_none)
    }

    /// `at` when the business is open then, else when it next opens (within a week);
    /// `None` when it never opens.
    pub fn next_open(&self, at: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.is_open(at, tz) {
            return Some(at);
        }
        let local = tz.to_datetime(at);
        let mut date = local.date();
        for day in 0..8 {
            if let Some(w) = self.window(date.weekday())
                && (day > 0 || local.time() < w.open)
            {
                return tz
                    .to_ambiguous_timestamp(date.to_datetime(w.open))
                    .later()
                    .ok();
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Today's closing time if it is still ahead, else the last minute of the local day:
    /// "due by the end of today".
    pub fn end_of_day(&self, at: Timestamp, tz: &TimeZone) -> Timestamp {
        let local = tz.to_datetime(at);
        let date = local.date();
        if let Some(w) = self.window(date.weekday())
            && local.time() < w.close
            && let Ok(t) = tz.to_ambiguous_timestamp(date.to_datetime(w.close)).later()
        {
            return t;
        }
        tz.to_ambiguous_timestamp(date.to_datetime(Time::constant(23, 59, 0, 0)))
            .later()
            .unwrap_or(at)
    }
}

fn parse_window(day: &str, value: &str) -> Result<Option<Window>, HoursError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("closed") {
        return Ok(None);
    }
    let bad = || HoursError::BadWindow {
        day: day.to_owned(),
        value: value.to_owned(),
    };
    let (open, close) = v.split_once('-').ok_or_else(bad)?;
    let open = parse_hhmm(open.trim()).ok_or_else(bad)?;
    let close = parse_hhmm(close.trim()).ok_or_else(bad)?;
    if close <= open {
        return Err(HoursError::ClosesBeforeOpening {
            day: day.to_owned(),
            open: open.strftime("%H:%M").to_string(),
            close: close.strftime("%H:%M").to_string(),
        });
    }
    Ok(Some(Window { open, close }))
}

fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: i8 = h.parse().ok()?;
    let m: i8 = m.parse().ok()?;
    if h == 24 && m == 0 {
        return Some(Time::constant(23, 59, 59, 999_999_999));
    }
    Time::new(h, m, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(pairs: &[(&str, &str)]) -> Result<BusinessHours, HoursError> {
        BusinessHours::from_map(
            &pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn open_and_closed_in_the_accounts_zone() {
        let h = hours(&[("mon", "08:00-17:00")]).unwrap();
        let chicago = TimeZone::get("America/Chicago").unwrap();
        // Monday 2026-11-30 09:00 in Chicago is 15:00 UTC.
        let open: Timestamp = "2026-11-30T15:00:00Z".parse().unwrap();
        assert!(h.is_open(open, &chicago));
        // Monday 07:59 Chicago.
        let early: Timestamp = "2026-11-30T13:59:00Z".parse().unwrap();
        assert!(!h.is_open(early, &chicago));
        // Tuesday is closed.
        let tue: Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
        assert!(!h.is_open(tue, &chicago));
    }

    #[test]
    fn daylight_saving_shift_keeps_local_hours() {
        let h = hours(&[("mon", "08:00-17:00")]).unwrap();
        let chicago = TimeZone::get("America/Chicago").unwrap();
        // Summer (CDT, UTC-5): Monday 2026-07-06 08:30 local = 13:30 UTC.
        assert!(h.is_open("2026-07-06T13:30:00Z".parse().unwrap(), &chicago));
        // Winter (CST, UTC-6): the same UTC instant is 07:30 local, before opening.
        assert!(!h.is_open("2026-11-30T13:30:00Z".parse().unwrap(), &chicago));
    }

    #[test]
    fn bad_input_names_the_day() {
        assert!(matches!(
            hours(&[("funday", "08:00-17:00")]),
            Err(HoursError::UnknownDay(_))
        ));
        assert!(matches!(
            hours(&[("mon", "8am-5pm")]),
            Err(HoursError::BadWindow { .. })
        ));
        assert!(matches!(
            hours(&[("mon", "17:00-08:00")]),
            Err(HoursError::ClosesBeforeOpening { .. })
        ));
    }

    #[test]
    fn next_open_and_end_of_day() {
        let h = hours(&[("mon", "08:00-17:00"), ("tue", "08:00-17:00")]).unwrap();
        let chicago = TimeZone::get("America/Chicago").unwrap();
        // Monday 2026-11-30 18:00 Chicago (00:00 UTC Tue): next open is Tuesday 08:00 (14:00 UTC).
        let evening: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            h.next_open(evening, &chicago),
            Some("2026-12-01T14:00:00Z".parse().unwrap())
        );
        // Tuesday evening: next open is the following Monday.
        let tue_evening: Timestamp = "2026-12-02T00:30:00Z".parse().unwrap();
        assert_eq!(
            h.next_open(tue_evening, &chicago),
            Some("2026-12-07T14:00:00Z".parse().unwrap())
        );
        // Open now: now.
        let open: Timestamp = "2026-11-30T15:00:00Z".parse().unwrap();
        assert_eq!(h.next_open(open, &chicago), Some(open));
        // End of day: closing time while open, 23:59 after closing.
        assert_eq!(
            h.end_of_day(open, &chicago),
            "2026-11-30T23:00:00Z".parse().unwrap()
        );
        assert_eq!(
            h.end_of_day(evening, &chicago),
            "2026-12-01T05:59:00Z".parse().unwrap()
        );
        assert_eq!(BusinessHours::default().next_open(open, &chicago), None);
    }

    #[test]
    fn map_round_trip() {
        let h = hours(&[
            ("mon", "08:00-17:00"),
            ("sat", "closed"),
            ("fri", "09:30-24:00"),
        ])
        .unwrap();
        let again = BusinessHours::from_map(&h.to_map()).unwrap();
        assert_eq!(h.to_map().len(), 2);
        assert_eq!(again.to_map()["mon"], "08:00-17:00");
    }
}
