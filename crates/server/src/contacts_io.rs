//! Contacts in and out as CSV: `phone,first_name,last_name,tags` (tags separated by `;`).
//! Every row is checked before anything is written; a row with an error is reported with
//! its line number and skipped, the others are imported.

use textback_core::Phone;
use textback_core::phone::Country;
use textback_store::{ContactView, ImportRow};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// The line in the file (the header is line 1).
    pub line: u64,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("the file is not CSV: {0}")]
    Unreadable(String),
    #[error(
        "the header must have a phone column (and may have first_name, last_name, tags); found {0:?}"
    )]
    Header(Vec<String>),
}

fn cell(record: &csv::StringRecord, at: Option<usize>) -> Option<String> {
    at.and_then(|i| record.get(i))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Parses and checks a CSV file of contacts.
pub fn parse(data: &[u8]) -> Result<(Vec<ImportRow>, Vec<RowError>), CsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(data);
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| CsvError::Unreadable(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_lowercase().replace([' ', '-'], "_"))
        .collect();
    let col = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let phone_at = col(&["phone", "phone_number", "mobile", "number"])
        .ok_or_else(|| CsvError::Header(headers.clone()))?;
    let first_at = col(&["first_name", "firstname", "first"]);
    let last_at = col(&["last_name", "lastname", "last", "surname"]);
    let tags_at = col(&["tags", "tag"]);
    let (mut rows, mut errors) = (Vec::new(), Vec::new());
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    error: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let Some(raw) = cell(&record, Some(phone_at)) else {
            errors.push(RowError {
                line,
                error: "no phone number".into(),
            });
            continue;
        };
        let phone = match Phone::parse_in(&raw, Country::US) {
            Ok(p) => p.to_string(),
            Err(e) => {
                errors.push(RowError {
                    line,
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !seen.insert(phone.clone()) {
            errors.push(RowError {
                line,
                error: format!("{phone} appears earlier in the file"),
            });
            continue;
        }
        let name = |v: Option<String>| -> Result<Option<String>, String> {
            match v {
                Some(n) if n.chars().count() > 100 => {
                    Err("a name is at most 100 characters".into())
                }
                Some(n) if n.contains(['{', '}']) => Err("names cannot contain { or }".into()),
                other => Ok(other),
            }
        };
        let (first, last) = match (name(cell(&record, first_at)), name(cell(&record, last_at))) {
            (Ok(f), Ok(l)) => (f, l),
            (Err(e), _) | (_, Err(e)) => {
                errors.push(RowError { line, error: e });
                continue;
            }
        };
        let tags: Vec<String> = cell(&record, tags_at)
            .map(|t| {
                t.split(';')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if tags.iter().any(|t| t.chars().count() > 64) {
            errors.push(RowError {
                line,
                error: "a tag is at most 64 characters".into(),
            });
            continue;
        }
        rows.push(ImportRow {
            phone,
            first_name: first,
            last_name: last,
            tags,
        });
    }
    Ok((rows, errors))
}

/// Contacts as CSV, with a header.
pub fn to_csv(contacts: &[ContactView]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "phone",
        "first_name",
        "last_name",
        "tags",
        "opted_out",
        "created_at",
    ]);
    for c in contacts {
        let created = jiff::Timestamp::from_millisecond(c.created_at_ms)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let _ = w.write_record([
            c.phone.as_str(),
            c.first_name.as_deref().unwrap_or(""),
            c.last_name.as_deref().unwrap_or(""),
            &c.tags.join(";"),
            if c.opted_out { "true" } else { "false" },
            &created,
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_one_by_one() {
        let file = "Phone,First Name,Last Name,Tags\n(512) 555-0123,Sam,Rivera,VIP; Lead\n512-CALL-NOW,Bad,Row,\n+15125550124,,,\n5125550123,Dup,,\n,No,Phone,\n";
        let (rows, errors) = parse(file.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            ImportRow {
                phone: "+15125550123".into(),
                first_name: Some("Sam".into()),
                last_name: Some("Rivera".into()),
                tags: vec!["VIP".into(), "Lead".into()]
            }
        );
        assert_eq!(rows[1].first_name, None);
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![3, 5, 6]
        );
        assert!(errors[1].error.contains("earlier"));
        assert!(matches!(
            parse(b"name,email\nx,y\n"),
            Err(CsvError::Header(_))
        ));
    }
}
