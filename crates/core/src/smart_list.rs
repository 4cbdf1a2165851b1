//! Smart lists: saved contact filters over tags, replies, consent and the last call.

use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Contacts with every one of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Contacts with none of these tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub without_tags: Vec<String>,
    /// `true`: contacts who ever texted; `false`: who never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_out: Option<bool>,
    /// Contacts whose last call is within this duration (`7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_call_within: Option<HumanDuration>,
}

/// The facts a filter looks at, for one contact.
pub struct Candidate<'a> {
    pub tags: &'a [String],
    pub replied: bool,
    pub opted_out: bool,
    pub last_call_at_ms: Option<i64>,
}

impl Filter {
    pub fn matches(&self, c: &Candidate<'_>, now_ms: i64) -> bool {
        let has = |t: &String| c.tags.iter().any(|x| x.eq_ignore_ascii_case(t));
        self.tags.iter().all(has)
            && !self.without_tags.iter().any(has)
            && self.replied.is_none_or(|r| r == c.replied)
            && self.opted_out.is_none_or(|o| o == c.opted_out)
            && self.last_call_within.is_none_or(|d| {
                c.last_call_at_ms
                    .is_some_and(|t| now_ms - t <= d.as_secs() as i64 * 1000)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_call_not_replied_last_week() {
        let f: Filter = serde_json::from_str(
            r#"{"tags": ["Missed Call"], "replied": false, "last_call_within": "7d"}"#,
        )
        .unwrap();
        let tags = vec!["missed call".to_owned()];
        let now = 10 * 86_400_000;
        let c = |replied, last| Candidate {
            tags: &tags,
            replied,
            opted_out: false,
            last_call_at_ms: last,
        };
        assert!(f.matches(&c(false, Some(now - 86_400_000)), now));
        assert!(!f.matches(&c(true, Some(now - 86_400_000)), now));
        assert!(!f.matches(&c(false, Some(now - 8 * 86_400_000)), now));
        assert!(!f.matches(&c(false, None), now));
        assert!(serde_json::from_str::<Filter>(r#"{"colour": "red"}"#).is_err());
    }
}
