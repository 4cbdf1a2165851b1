//! Telnyx messaging webhooks (JSON): an inbound text, or a status change of one we sent.

use serde::Deserialize;

/// What a messaging webhook tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagingEvent {
    /// `message.received`: a text to one of our numbers.
    Received {
        id: String,
        from: String,
        to: String,
        text: String,
        media: Vec<String>,
    },
    /// `message.sent` / `message.finalized`: where a text we sent stands. `status` is the
    /// recipient's (`queued`, `sending`, `sent`, `delivered`, `sending_failed`,
    /// `delivery_failed`, `delivery_unconfirmed`).
    Status {
        id: String,
        status: String,
        error_code: Option<i64>,
        error: Option<String>,
    },
    /// Any other event type: acknowledged and ignored.
    Other(String),
}

#[derive(Deserialize)]
struct Webhook {
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    event_type: String,
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    id: String,
    from: Option<Party>,
    #[serde(default)]
    to: Vec<Party>,
    text: Option<String>,
    #[serde(default)]
    media: Vec<Media>,
    #[serde(default)]
    errors: Vec<PayloadError>,
}

#[derive(Deserialize)]
struct Party {
    phone_number: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Media {
    url: Option<String>,
}

#[derive(Deserialize)]
struct PayloadError {
    code: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

/// Reads a messaging webhook body; an error names what is missing.
pub fn parse_messaging_event(body: &[u8]) -> Result<MessagingEvent, String> {
    let w: Webhook =
        serde_json::from_slice(body).map_err(|e| format!("not a Telnyx messaging webhook: {e}"))?;
    let p = w.data.payload;
    Ok(match w.data.event_type.as_str() {
        "message.received" => MessagingEvent::Received {
            id: p.id,
            from: p
                .from
                .map(|f| f.phone_number)
                .ok_or("message.received without payload.from")?,
            to: p
                .to
                .into_iter()
                .next()
                .map(|t| t.phone_number)
                .ok_or("message.received without payload.to")?,
            text: p.text.unwrap_or_default(),
            media: p.media.into_iter().filter_map(|m| m.url).collect(),
        },
        "message.sent" | "message.finalized" => {
            let error = p.errors.into_iter().next();
            MessagingEvent::Status {
                id: p.id,
                status: p
                    .to
                    .into_iter()
                    .find_map(|t| t.status)
                    .ok_or("a status event without payload.to[].status")?,
                error_code: error
                    .as_ref()
                    .and_then(|e| e.code.as_deref())
                    .and_then(|c| c.trim().parse().ok()),
                error: error.and_then(|e| e.detail.or(e.title)),
            }
        }
        other => MessagingEvent::Other(other.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inbound_text_is_read() {
        let body = br#"{"data":{"record_type":"event","id":"bf6307bd","event_type":"message.received",
          "occurred_at":"2019-01-23T18:10:02.574Z","payload":{"record_type":"message","direction":"inbound",
          "id":"7ee4241c","type":"MMS","from":{"phone_number":"+15125550123","carrier":"T-MOBILE USA, INC.","line_type":"Wireless"},
          "to":[{"phone_number":"+15125550100","status":"delivered"}],"text":"STOP",
          "media":[{"url":"https://media.telnyx.example/1.jpg","content_type":"image/jpeg"}],"parts":1}}}"#;
        assert_eq!(
            parse_messaging_event(body),
            Ok(MessagingEvent::Received {
                id: "7ee4241c".into(),
                from: "+15125550123".into(),
                to: "+15125550100".into(),
                text: "STOP".into(),
                media: vec!["https://media.telnyx.example/1.jpg".into()],
            })
        );
    }

    #[test]
    fn a_failed_delivery_carries_its_error_code() {
        let body = br#"{"data":{"event_type":"message.finalized","id":"4ee8c3a6","occurred_at":"2019-12-09T21:32:14.148+00:00",
          "payload":{"id":"40385f64","to":[{"phone_number":"+15125550123","status":"delivery_failed"}],
          "errors":[{"code":"40300","title":"Blocked due to STOP message","detail":"The recipient replied STOP"}]}}}"#;
        assert_eq!(
            parse_messaging_event(body),
            Ok(MessagingEvent::Status {
                id: "40385f64".into(),
                status: "delivery_failed".into(),
                error_code: Some(40300),
                error: Some("The recipient replied STOP".into()),
            })
        );
    }

    #[test]
    fn other_events_and_garbage() {
        let body = br#"{"data":{"event_type":"number.updated","payload":{"id":"x"}}}"#;
        assert_eq!(
            parse_messaging_event(body),
            Ok(MessagingEvent::Other("number.updated".into()))
        );
        assert!(parse_messaging_event(b"Body=hi").is_err());
        let no_from = br#"{"data":{"event_type":"message.received","payload":{"id":"x","to":[{"phone_number":"+15125550100"}]}}}"#;
        assert!(
            parse_messaging_event(no_from)
                .unwrap_err()
                .contains("payload.from")
        );
    }
}
