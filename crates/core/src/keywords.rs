//! Carrier opt-out and opt-in keywords: a message that is only the keyword (any case,
//! trailing punctuation ignored). Free-text requests ("please stop texting me") come with
//! the conversations work.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

const OPT_OUT: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
const OPT_IN: &[&str] = &["START", "UNSTOP", "YES"];
const HELP: &[&str] = &["HELP", "INFO"];

pub fn keyword(body: &str) -> Option<Keyword> {
    let word = body
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_ascii_uppercase();
    if OPT_OUT.contains(&word.as_str()) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&word.as_str()) {
        Some(Keyword::OptIn)
    } else if HELP.contains(&word.as_str()) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_alone_any_case() {
        for w in [
            "STOP",
            "stop",
            " Stop. ",
            "unsubscribe",
            "OptOut",
            "quit!",
            "STOPALL",
            "revoke",
            "end",
            "cancel",
        ] {
            assert_eq!(keyword(w), Some(Keyword::OptOut), "{w}");
        }
        for w in ["start", "UNSTOP", "yes"] {
            assert_eq!(keyword(w), Some(Keyword::OptIn), "{w}");
        }
        assert_eq!(keyword("help"), Some(Keyword::Help));
    }

    #[test]
    fn words_inside_a_sentence_are_not_keywords() {
        for w in [
            "don't stop",
            "Yes please come tomorrow",
            "stop by at 5?",
            "",
            "stopp",
        ] {
            assert_eq!(keyword(w), None, "{w}");
        }
    }
}
