//! The funnel of SPEC §8 — calls → missed → texted → delivered → replied → called back —
//! with median times, by day in the account's time zone.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

/// What happened to one call, as the store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub started_at_ms: i64,
    pub missed: bool,
    /// When the text back was handed to the carrier (accepted), if it was.
    pub texted_at_ms: Option<i64>,
    pub delivered: bool,
    /// The contact's first text within 24 hours of the text back.
    pub replied_at_ms: Option<i64>,
    /// When the callback task was done.
    pub called_back_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Funnel {
    pub calls: u64,
    pub missed: u64,
    pub texted: u64,
    pub delivered: u64,
    pub replied: u64,
    pub called_back: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: String,
    #[serde(flatten)]
    pub funnel: Funnel,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub totals: Funnel,
    pub days: Vec<Day>,
    /// Median seconds from the call to the text back reaching the carrier.
    pub median_seconds_to_text: Option<f64>,
    /// Median seconds from the call to the callback.
    pub median_seconds_to_call_back: Option<f64>,
}

fn add(f: &mut Funnel, c: &CallFacts) {
    f.calls += 1;
    if c.missed {
        f.missed += 1;
        f.texted += u64::from(c.texted_at_ms.is_some());
        f.delivered += u64::from(c.delivered);
        f.replied += u64::from(c.replied_at_ms.is_some());
        f.called_back += u64::from(c.called_back_at_ms.is_some());
    }
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn funnel(calls: &[CallFacts], tz: &TimeZone) -> Report {
    let mut totals = Funnel::default();
    let mut days: Vec<Day> = Vec::new();
    for c in calls {
        add(&mut totals, c);
        let date = Timestamp::from_millisecond(c.started_at_ms)
            .map(|t| tz.to_datetime(t).date().to_string())
            .unwrap_or_default();
        match days.iter_mut().find(|d| d.date == date) {
            Some(d) => add(&mut d.funnel, c),
            None => {
                let mut f = Funnel::default();
                add(&mut f, c);
                days.push(Day { date, funnel: f });
            }
        }
    }
    days.sort_by(|a, b| a.date.cmp(&b.date));
    let secs = |pick: fn(&CallFacts) -> Option<i64>| {
        median(
            calls
                .iter()
                .filter(|c| c.missed)
                .filter_map(|c| pick(c).map(|t| (t - c.started_at_ms).max(0) as f64 / 1000.0))
                .collect(),
        )
    };
    Report {
        totals,
        days,
        median_seconds_to_text: secs(|c| c.texted_at_ms),
        median_seconds_to_call_back: secs(|c| c.called_back_at_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(
        start: &str,
        missed: bool,
        text_after: Option<i64>,
        delivered: bool,
        replied: bool,
        back_after: Option<i64>,
    ) -> CallFacts {
        let s = start.parse::<Timestamp>().unwrap().as_millisecond();
        CallFacts {
            started_at_ms: s,
            missed,
            texted_at_ms: text_after.map(|d| s + d),
            delivered,
            replied_at_ms: replied.then_some(s + 60_000),
            called_back_at_ms: back_after.map(|d| s + d),
        }
    }

    #[test]
    fn counts_by_day_in_the_accounts_zone_and_medians() {
        let tz = TimeZone::get("America/Chicago").unwrap();
        let calls = vec![
            call(
                "2026-11-30T15:00:00Z",
                true,
                Some(1_000),
                true,
                true,
                Some(600_000),
            ),
            call(
                "2026-11-30T16:00:00Z",
                true,
                Some(3_000),
                false,
                false,
                None,
            ),
            call("2026-11-30T17:00:00Z", false, None, false, false, None),
            // 23:30 Chicago on 11-30 is 05:30 UTC on 12-01: still the 30th locally.
            call(
                "2026-12-01T05:30:00Z",
                true,
                Some(2_000),
                true,
                false,
                Some(1_800_000),
            ),
            call("2026-12-01T15:00:00Z", true, None, false, false, None),
        ];
        let r = funnel(&calls, &tz);
        assert_eq!(
            r.totals,
            Funnel {
                calls: 5,
                missed: 4,
                texted: 3,
                delivered: 2,
                replied: 1,
                called_back: 2
            }
        );
        assert_eq!(
            r.days
                .iter()
                .map(|d| (d.date.as_str(), d.funnel.calls))
                .collect::<Vec<_>>(),
            vec![("2026-11-30", 4), ("2026-12-01", 1)]
        );
        assert_eq!(r.median_seconds_to_text, Some(2.0));
        assert_eq!(r.median_seconds_to_call_back, Some(1200.0));
        assert_eq!(funnel(&[], &tz).median_seconds_to_text, None);
    }
}
