//! TwiML responses, built as escaped XML strings.

use std::fmt::Write;

/// XML-escapes text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn wrap(inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{inner}</Response>")
}

/// Rings the team's phones at once; Twilio requests `action` with `DialCallStatus` when the
/// dial ends. With `screen_url`, each answered leg first hears a whisper asking for a key.
pub fn dial(
    numbers: &[String],
    timeout_secs: i64,
    action: &str,
    caller_id: Option<&str>,
    screen_url: Option<&str>,
) -> String {
    let mut inner = format!(
        "<Dial timeout=\"{timeout_secs}\" action=\"{}\" method=\"POST\"",
        escape(action)
    );
    if let Some(cid) = caller_id {
        let _ = write!(inner, " callerId=\"{}\"", escape(cid));
    }
    inner.push('>');
    for n in numbers {
        match screen_url {
            Some(url) => {
                let _ = write!(
                    inner,
                    "<Number url=\"{}\" method=\"POST\">{}</Number>",
                    escape(url),
                    escape(n)
                );
            }
            None => {
                let _ = write!(inner, "<Number>{}</Number>", escape(n));
            }
        }
    }
    inner.push_str("</Dial>");
    wrap(&inner)
}

/// The whisper a team member hears with call screening on: only a key press connects.
pub fn screen_prompt(business: &str, action: &str) -> String {
    wrap(&format!(
        "<Gather numDigits=\"1\" timeout=\"6\" action=\"{}\" method=\"POST\"><Say>Call for {}. Press 1 to take this call.</Say></Gather><Hangup/>",
        escape(action),
        escape(business)
    ))
}

/// An empty response: the screened leg is connected to the caller.
pub fn connect() -> String {
    wrap("")
}

pub fn hangup() -> String {
    wrap("<Hangup/>")
}

/// Who transcribes a voicemail, and the callback that gets the words some time after the
/// call. The two carriers name `<Record>`'s attributes differently, and post the same form
/// fields (`CallSid`, `TranscriptionStatus`, `TranscriptionText`) to the callback.
#[derive(Debug, Clone, Copy)]
pub enum Transcribe<'a> {
    /// Twilio transcribes recordings of up to two minutes (English).
    Twilio(&'a str),
    /// TeXML: Telnyx transcribes the recording once it is complete.
    Telnyx(&'a str),
}

/// After a miss: a greeting, then a voicemail recording, transcribed to `transcribe`'s
/// callback when given.
pub fn voicemail(
    business: &str,
    recording_action: &str,
    transcribe: Option<Transcribe<'_>>,
) -> String {
    let transcribe = match transcribe {
        Some(Transcribe::Twilio(cb)) => {
            format!(" transcribe=\"true\" transcribeCallback=\"{}\"", escape(cb))
        }
        Some(Transcribe::Telnyx(cb)) => format!(
            " transcription=\"true\" transcriptionCallback=\"{}\"",
            escape(cb)
        ),
        None => String::new(),
    };
    wrap(&format!(
        "<Say>Sorry, nobody at {} can take your call right now. We will text you shortly. You can also leave a message after the tone.</Say><Record maxLength=\"120\" playBeep=\"true\" action=\"{}\" method=\"POST\"{transcribe}/><Hangup/>",
        escape(business),
        escape(recording_action),
    ))
}

/// A messaging response: one text back to the sender.
pub fn message(body: &str) -> String {
    wrap(&format!("<Message>{}</Message>", escape(body)))
}

/// The team member answered the call-back: say so, then dial the contact with the business
/// number as caller id.
pub fn call_back(contact: &str, business_number: &str, action: &str) -> String {
    wrap(&format!(
        "<Say>Calling back your missed caller now.</Say><Dial callerId=\"{}\" action=\"{}\" method=\"POST\"><Number>{}</Number></Dial>",
        escape(business_number),
        escape(action),
        escape(contact)
    ))
}

/// A short spoken message, then hang up.
pub fn say(text: &str) -> String {
    wrap(&format!("<Say>{}</Say><Hangup/>", escape(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_lists_every_number_and_escapes() {
        let x = dial(
            &["+15125550199".into(), "+15125550198".into()],
            20,
            "https://tb.example.com/webhooks/twilio/voice/dial-status?a=1&b=2",
            None,
            None,
        );
        assert!(x.contains("<Dial timeout=\"20\" action=\"https://tb.example.com/webhooks/twilio/voice/dial-status?a=1&amp;b=2\""));
        assert!(x.contains("<Number>+15125550199</Number><Number>+15125550198</Number>"));
    }

    #[test]
    fn voicemail_is_recorded_and_transcribed_to_our_callbacks() {
        let x = voicemail(
            "Acme & Sons",
            "https://tb.example.com/webhooks/twilio/voice/recording",
            Some(Transcribe::Twilio(
                "https://tb.example.com/webhooks/twilio/voice/transcription",
            )),
        );
        assert!(x.contains("nobody at Acme &amp; Sons"));
        assert!(x.contains("action=\"https://tb.example.com/webhooks/twilio/voice/recording\""));
        assert!(x.contains("transcribe=\"true\" transcribeCallback=\"https://tb.example.com/webhooks/twilio/voice/transcription\""));
    }

    #[test]
    fn texml_names_the_transcription_attributes_its_own_way() {
        let x = voicemail(
            "Acme",
            "https://tb.example.com/webhooks/telnyx/voice/recording",
            Some(Transcribe::Telnyx(
                "https://tb.example.com/webhooks/telnyx/voice/transcription?a=1&b=2",
            )),
        );
        assert!(x.contains("transcription=\"true\" transcriptionCallback=\"https://tb.example.com/webhooks/telnyx/voice/transcription?a=1&amp;b=2\""), "{x}");
        assert!(!x.contains("transcribe="), "{x}");
        let untranscribed = voicemail("Acme", "https://tb.example.com/r", None);
        assert!(!untranscribed.contains("transcri"), "{untranscribed}");
    }

    #[test]
    fn screening_uses_number_url() {
        let x = dial(
            &["+15125550199".into()],
            20,
            "/a",
            None,
            Some("https://x/screen?parent=CA1"),
        );
        assert!(x.contains(
            "<Number url=\"https://x/screen?parent=CA1\" method=\"POST\">+15125550199</Number>"
        ));
        let w = screen_prompt("A&B", "https://x/screen-result?parent=CA1");
        assert!(w.contains("<Gather numDigits=\"1\""));
        assert!(w.contains("A&amp;B"));
    }
}
