//! The Twilio client against the local stand-in: registration status reads.

use std::time::Duration;

use textback_carriers::twilio::{TwilioClient, TwilioCredentials};
use textback_testkit::FakeTwilio;
use textback_testkit::fake_twilio::{ACCOUNT_SID, AUTH_TOKEN};

fn client(fake: &FakeTwilio) -> TwilioClient {
    let creds = TwilioCredentials {
        account_sid: ACCOUNT_SID.into(),
        auth_token: AUTH_TOKEN.into(),
    };
    TwilioClient::new(
        &fake.base_url,
        &fake.base_url,
        creds,
        Duration::from_secs(5),
    )
    .unwrap()
    .with_messaging_base(&fake.base_url)
}

#[tokio::test]
async fn a2p_and_toll_free_statuses_are_mapped() {
    let fake = FakeTwilio::start().await;
    let c = client(&fake);
    assert_eq!(
        c.registration("+15125550100", false).await.unwrap().status,
        "unregistered"
    );
    fake.set_a2p("+15125550100", "IN_PROGRESS");
    fake.set_a2p("+15125550101", "FAILED");
    fake.set_a2p("+15125550102", "VERIFIED");
    assert_eq!(
        c.registration("+15125550100", false).await.unwrap().status,
        "pending"
    );
    assert_eq!(
        c.registration("+15125550101", false).await.unwrap().status,
        "rejected"
    );
    let ok = c.registration("+15125550102", false).await.unwrap();
    assert_eq!(ok.status, "approved");
    assert!(ok.detail.contains("VERIFIED"));

    // Toll-free: the number must be owned; its verification decides.
    assert!(c.registration("+18885550100", true).await.is_err());
    fake.own_number("+18885550100", "", "", "");
    assert_eq!(
        c.registration("+18885550100", true).await.unwrap().status,
        "unregistered"
    );
    fake.set_tollfree("+18885550100", "PENDING_REVIEW");
    assert_eq!(
        c.registration("+18885550100", true).await.unwrap().status,
        "pending"
    );
    fake.stop();
}

#[tokio::test]
async fn wrong_credentials_are_reported() {
    let fake = FakeTwilio::start().await;
    let creds = TwilioCredentials {
        account_sid: ACCOUNT_SID.into(),
        auth_token: "wrong".into(),
    };
    let c = TwilioClient::new(
        &fake.base_url,
        &fake.base_url,
        creds,
        Duration::from_secs(5),
    )
    .unwrap()
    .with_messaging_base(&fake.base_url);
    let err = c.registration("+15125550100", false).await.unwrap_err();
    assert!(err.contains("401") && err.contains("20003"), "{err}");
    fake.stop();
}
