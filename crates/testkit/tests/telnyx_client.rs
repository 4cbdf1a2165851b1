//! The Telnyx adapter against a local server speaking Telnyx's wire format: the Messaging
//! API v2 (bearer key, JSON, error bodies, 429 with Retry-After) and the webhooks it signs
//! with Ed25519.

use std::time::Duration;

use textback_carriers::SendResult;
use textback_carriers::telnyx::{
    MessagingEvent, TelnyxClient, TelnyxPublicKey, TelnyxSignatureError, parse_messaging_event,
};
use textback_testkit::fake_telnyx::API_KEY;
use textback_testkit::{FakeTelnyx, TelnyxFault};

fn client(fake: &FakeTelnyx, key: &str) -> TelnyxClient {
    TelnyxClient::new(&fake.base_url, key, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn a_text_is_sent_and_its_id_kept() {
    let fake = FakeTelnyx::start().await;
    let result = client(&fake, API_KEY)
        .send_message(
            "+15125550100",
            "+15125550123",
            "Hi, it's Acme Plumbing. Sorry we missed your call!",
            Some("https://textback.example.com/webhooks/telnyx/messaging"),
        )
        .await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        result,
        SendResult::Accepted {
            carrier_message_id: sent[0].id.clone(),
            status: "queued".into(),
            segments: Some(1),
        }
    );
    assert_eq!(
        sent[0].webhook_url.as_deref(),
        Some("https://textback.example.com/webhooks/telnyx/messaging")
    );
    fake.stop();
}

#[tokio::test]
async fn refusals_are_final_and_overload_is_retried() {
    let fake = FakeTelnyx::start().await;
    let c = client(&fake, API_KEY);
    // Telnyx refuses with 409 / 40300 when the recipient has texted STOP to this number.
    fake.push_fault(TelnyxFault::Reject {
        status: 409,
        code: 40300,
        title: "Blocked due to STOP message".into(),
    });
    assert_eq!(
        c.send_message("+15125550100", "+15125550123", "Hi", None)
            .await,
        SendResult::Rejected {
            code: Some(40300),
            message: "Blocked due to STOP message".into(),
        }
    );
    fake.push_fault(TelnyxFault::RateLimited {
        retry_after_secs: 7,
    });
    assert!(matches!(
        c.send_message("+15125550100", "+15125550123", "Hi", None).await,
        SendResult::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(7)
    ));
    fake.push_fault(TelnyxFault::ServerError);
    assert!(matches!(
        c.send_message("+15125550100", "+15125550123", "Hi", None)
            .await,
        SendResult::Retryable {
            retry_after: None,
            ..
        }
    ));
    assert!(fake.sent().is_empty(), "nothing went out");
    fake.stop();
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_with_telnyx_code() {
    let fake = FakeTelnyx::start().await;
    let r = client(&fake, "KEY_wrong")
        .send_message("+15125550100", "+15125550123", "Hi", None)
        .await;
    assert_eq!(
        r,
        SendResult::Rejected {
            code: Some(10009),
            message: "Authentication failed: The API key is missing or invalid.".into(),
        }
    );
    fake.stop();
}

#[tokio::test]
async fn an_unreachable_telnyx_is_retried_without_doubt() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = TelnyxClient::new(
        &format!("http://127.0.0.1:{port}"),
        API_KEY,
        Duration::from_secs(2),
    )
    .unwrap();
    assert!(matches!(
        c.send_message("+15125550100", "+15125550123", "Hi", None)
            .await,
        SendResult::Retryable { .. }
    ));
}

#[tokio::test]
async fn webhooks_signed_by_the_account_key_verify_and_read() {
    let fake = FakeTelnyx::start().await;
    let key = TelnyxPublicKey::parse(&fake.public_key()).unwrap();
    let body = br#"{"data":{"event_type":"message.received","id":"e1","occurred_at":"2026-11-27T20:00:00Z",
      "payload":{"id":"m1","from":{"phone_number":"+15125550123"},"to":[{"phone_number":"+15125550100","status":"webhook_delivered"}],
      "text":"Yes please call me","media":[]}}}"#;
    let now = 1_795_000_000;
    let [(_, sig), (_, ts)] = fake.sign(now, body);
    assert_eq!(key.verify(Some(&sig), Some(&ts), body, now + 10), Ok(()));
    assert!(matches!(
        parse_messaging_event(body),
        Ok(MessagingEvent::Received { ref text, .. }) if text == "Yes please call me"
    ));
    // Replayed ten minutes later, or signed by someone else: refused.
    assert_eq!(
        key.verify(Some(&sig), Some(&ts), body, now + 600),
        Err(TelnyxSignatureError::Stale(600))
    );
    let other = FakeTelnyx::start().await;
    let [(_, forged), (_, ts)] = other.sign(now, body);
    assert_eq!(
        key.verify(Some(&forged), Some(&ts), body, now),
        Err(TelnyxSignatureError::Mismatch)
    );
    other.stop();
    fake.stop();
}
