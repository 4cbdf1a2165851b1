//! What an inbound text says about consent: a carrier keyword (STOP, START, HELP, …) or a
//! free-text request to stop ("please stop texting me"). US rules since April 2025 let
//! people opt out "by any reasonable means", and carriers only act on the one-word keywords,
//! so the free-text requests are ours to catch.
//!
//! The classifier is deliberately conservative: a false opt-out silences a customer who
//! wanted to hear back, so only phrases that plainly ask for no more messages count, and
//! negated ones ("don't stop texting me") do not.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// A one-word opt-out keyword.
    OptOutKeyword,
    /// A free-text request to stop; carries the phrase that matched, kept as evidence.
    OptOutRequest(&'static str),
    OptIn,
    Help,
}

impl Intent {
    pub fn is_opt_out(self) -> bool {
        matches!(self, Intent::OptOutKeyword | Intent::OptOutRequest(_))
    }
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

/// Phrases that ask for no more messages, matched on whole words of the lower-cased text.
const STOP_PHRASES: &[&str] = &[
    "stop texting",
    "stop txting",
    "stop text",
    "stop the texts",
    "stop these texts",
    "stop messaging",
    "stop sending",
    "stop contacting",
    "stop msging",
    "quit texting",
    "quit messaging",
    "cease texting",
    "dont text",
    "do not text",
    "dont message",
    "do not message",
    "dont contact me",
    "do not contact me",
    "dont send me",
    "do not send me",
    "never text me",
    "never contact me",
    "no more texts",
    "no more text",
    "no more messages",
    "remove me",
    "remove my number",
    "take me off",
    "delete my number",
    "lose my number",
    "unsubscribe me",
    "opt me out",
    "opt out",
    "leave me alone",
];

/// Words that may surround a bare "stop" without changing its meaning ("stop please").
const POLITE: &[&str] = &[
    "please", "pls", "plz", "now", "thanks", "thank", "you", "it", "just", "ok", "okay",
];

const NEGATIONS: &[&str] = &["dont", "not", "never", "wont", "cant", "didnt", "shouldnt"];

fn words(body: &str) -> Vec<String> {
    body.to_lowercase()
        .replace(['\u{2019}', '\''], "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn classify(body: &str) -> Option<Intent> {
    let keyword = body
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .trim()
        .to_ascii_uppercase();
    if OPT_OUT.contains(&keyword.as_str()) {
        return Some(Intent::OptOutKeyword);
    }
    if OPT_IN.contains(&keyword.as_str()) {
        return Some(Intent::OptIn);
    }
    if HELP.contains(&keyword.as_str()) {
        return Some(Intent::Help);
    }
    let w = words(body);
    if w.is_empty() || w.len() > 40 {
        // Long messages are conversations, not requests to stop; a person reads them.
        return None;
    }
    if w.iter().any(|x| x == "stop")
        && w.iter()
            .all(|x| x == "stop" || POLITE.contains(&x.as_str()))
    {
        return Some(Intent::OptOutRequest("stop"));
    }
    for phrase in STOP_PHRASES {
        let p: Vec<&str> = phrase.split(' ').collect();
        for start in 0..w.len() {
            if w.len() - start < p.len()
                || !w[start..start + p.len()]
                    .iter()
                    .zip(&p)
                    .all(|(a, b)| a == b)
            {
                continue;
            }
            // "don't stop texting me", "I did not say remove me": negated, not a request.
            let before = &w[start.saturating_sub(2)..start];
            let negated = !phrase.starts_with("dont")
                && !phrase.starts_with("do not")
                && !phrase.starts_with("never")
                && before.iter().any(|b| NEGATIONS.contains(&b.as_str()));
            if !negated {
                return Some(Intent::OptOutRequest(phrase));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_alone_any_case_and_punctuation() {
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
            assert_eq!(classify(w), Some(Intent::OptOutKeyword), "{w}");
        }
        for w in ["start", "UNSTOP", "yes", "Yes!"] {
            assert_eq!(classify(w), Some(Intent::OptIn), "{w}");
        }
        assert_eq!(classify("help"), Some(Intent::Help));
        assert_eq!(classify("INFO?"), Some(Intent::Help));
    }

    /// Phrases a reasonable person would read as "stop texting me".
    #[test]
    fn free_text_requests_opt_out() {
        let must = [
            "please stop texting me",
            "Stop texting me!!",
            "stop please",
            "Please stop.",
            "remove me from your list",
            "Don't text me again",
            "dont text this number",
            "Do not message me",
            "take me off your list",
            "No more texts please",
            "unsubscribe me",
            "I want to opt out",
            "Stop sending me these messages",
            "leave me alone",
            "wrong number, please remove my number",
            "Never text me again",
            "Please STOP contacting me",
            "Quit texting me",
        ];
        for m in must {
            assert!(
                classify(m).is_some_and(Intent::is_opt_out),
                "{m:?} must opt out"
            );
        }
    }

    /// Messages that mention stopping but are not requests to stop texting.
    #[test]
    fn ordinary_replies_do_not_opt_out() {
        let must_not = [
            "stop by tomorrow?",
            "Can you stop by at 5?",
            "The leak won't stop",
            "don't stop texting me updates",
            "When do you stop taking appointments?",
            "My water heater stopped working",
            "Yes please come tomorrow",
            "Thanks! Can someone call me back?",
            "I can't remove the old faucet myself",
            "We need to stop the water, pipe burst",
            "stopp",
            "",
            "ok",
        ];
        for m in must_not {
            assert!(
                !classify(m).is_some_and(Intent::is_opt_out),
                "{m:?} must not opt out"
            );
        }
    }

    #[test]
    fn plain_yes_in_a_sentence_is_not_an_opt_in() {
        assert_eq!(classify("yes please come tomorrow"), None);
    }
}
