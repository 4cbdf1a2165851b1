//! Reports: the funnel of SPEC §8 over 7, 30 or 90 days, a server-drawn SVG chart by day,
//! median times, reply rates by message variant with their confidence, and a CSV download.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::Value;

use super::pages::{account_of, frame};
use super::session::SignedIn;
use super::{WebError, render};
use crate::AppState;

#[derive(Deserialize)]
pub struct PeriodQuery {
    days: Option<String>,
}

fn period(q: &PeriodQuery) -> i64 {
    match q.days.as_deref() {
        Some("30") => 30,
        Some("90") => 90,
        _ => 7,
    }
}

/// The funnel's steps with their share of missed calls, for Today and Reports.
pub(super) fn funnel_cards(totals: &Value) -> Vec<minijinja::Value> {
    let step = |key: &str| totals[key].as_u64().unwrap_or(0);
    let missed = step("missed");
    [
        ("Missed", "missed"),
        ("Texted back", "texted"),
        ("Delivered", "delivered"),
        ("Replied", "replied"),
        ("Called back", "called_back"),
    ]
    .into_iter()
    .map(|(label, key)| {
        let n = step(key);
        context! {
            label => label,
            count => n,
            percent => (missed > 0 && key != "missed").then(|| n * 100 / missed),
        }
    })
    .collect()
}

/// "40 s", "4 min", "2 h 5 min", or a dash when there is nothing to measure.
fn duration_words(seconds: Option<f64>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "—".into();
    };
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

async fn report(state: &AppState, account_id: i64, days: i64) -> Result<Value, WebError> {
    crate::reports::build(&state.store, account_id, days, state.now_ms())
        .await?
        .ok_or(WebError::NotFound("account"))
}

pub async fn page(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let days = period(&q);
    let r = report(&state, account.id, days).await?;
    let by_day: Vec<&Value> = r["by_day"].as_array().into_iter().flatten().collect();
    let n = |d: &Value, k: &str| d[k].as_u64().unwrap_or(0);
    let top = by_day
        .iter()
        .map(|d| n(d, "missed").max(n(d, "texted")).max(n(d, "replied")))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |v: u64| v * 120 / top;
    let bars: Vec<minijinja::Value> = by_day
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let date = d["date"].as_str().unwrap_or_default();
            context! {
                x => i * 34 + 4,
                date => date,
                label => date.get(5..).unwrap_or(date),
                missed => n(d, "missed"),
                texted => n(d, "texted"),
                delivered => n(d, "delivered"),
                replied => n(d, "replied"),
                called_back => n(d, "called_back"),
                missed_h => height(n(d, "missed")),
                texted_h => height(n(d, "texted")),
                replied_h => height(n(d, "replied")),
            }
        })
        .collect();
    let variants: Vec<minijinja::Value> = r["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let c = &v["comparison"];
            let rows: Vec<minijinja::Value> = c["variants"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|row| {
                    let pct = |k: &str| (row[k].as_f64().unwrap_or(0.0) * 100.0).round();
                    context! {
                        name => row["name"].as_str().unwrap_or_default(),
                        sent => row["sent"].as_u64().unwrap_or(0),
                        replied => row["replied"].as_u64().unwrap_or(0),
                        rate => format!("{}% ({}–{}%)", pct("reply_rate"), pct("ci_low"), pct("ci_high")),
                    }
                })
                .collect();
            let leader = c["leader"].as_str().map(|l| {
                let confidence = (c["confidence"].as_f64().unwrap_or(0.0) * 100.0).round();
                format!("“{l}” leads; {confidence}% likely to truly get more replies.")
            });
            context! {
                workflow => v["workflow"].as_str().unwrap_or_default(),
                step => v["step"].as_str().unwrap_or_default(),
                rows => rows,
                leader => leader,
            }
        })
        .collect();
    Ok(render(
        "reports.html",
        context! {
            days => days,
            funnel => funnel_cards(&r["funnel"]),
            median_text => duration_words(r["median_seconds_to_text"].as_f64()),
            median_call => duration_words(r["median_seconds_to_call_back"].as_f64()),
            width => (bars.len() * 34 + 8).max(100),
            bars => bars,
            variants => variants,
            ..frame(&signed_in, &account, "reports", "Reports")
        },
    )?
    .into_response())
}

/// The by-day funnel as CSV, one row per day.
pub async fn csv(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(q): Query<PeriodQuery>,
) -> Result<Response, WebError> {
    let account = account_of(&state, &signed_in).await?;
    let days = period(&q);
    let r = report(&state, account.id, days).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let columns = [
        "date",
        "calls",
        "missed",
        "texted",
        "delivered",
        "replied",
        "called_back",
    ];
    let write = |out: &mut csv::Writer<Vec<u8>>, row: Vec<String>| {
        out.write_record(row)
            .map_err(|e| WebError::Template(format!("CSV: {e}")))
    };
    write(&mut out, columns.iter().map(|c| (*c).to_owned()).collect())?;
    for d in r["by_day"].as_array().into_iter().flatten() {
        let row = columns
            .iter()
            .map(|c| match &d[*c] {
                Value::String(s) => s.clone(),
                other => other.as_u64().unwrap_or(0).to_string(),
            })
            .collect();
        write(&mut out, row)?;
    }
    let body = out
        .into_inner()
        .map_err(|e| WebError::Template(format!("CSV: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"textback-{}-{days}-days.csv\"",
                    account.slug
                ),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::duration_words;

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(None), "—");
        assert_eq!(duration_words(Some(1.4)), "1 s");
        assert_eq!(duration_words(Some(240.0)), "4 min");
        assert_eq!(duration_words(Some(7500.0)), "2 h 5 min");
    }
}
