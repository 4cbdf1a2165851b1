//! Delivers workflow webhooks: signed per the Standard Webhooks spec, retried through the
//! job queue, and never sent to private or loopback addresses unless the operator allows it
//! (a workflow author must not be able to reach the server's own network).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use textback_store::{Delivery, Job};

use crate::AppState;
use crate::worker::JobFailure;

/// Whether an address is one a webhook must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// The `webhook-signature` value for one attempt: `v1,<base64 HMAC-SHA256 of
/// "{id}.{timestamp}.{body}">` under the account's `whsec_` secret.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    standardwebhooks::Webhook::new(secret)
        .and_then(|wh| wh.sign(id, timestamp, body.as_bytes()))
        .map_err(|e| format!("signing the webhook: {e}"))
}

/// What is wrong with a subscription to `events` at `url`, as (field, why); `None` if
/// nothing. The API and the settings page both ask this.
pub fn subscription_problem(url: &str, events: &[String]) -> Option<(&'static str, String)> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Some(("url", "not a URL".into()));
    };
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Some(("url", "use an http(s) URL with a host".into()));
    }
    if events.is_empty() {
        return Some(("events", "subscribe to at least one event".into()));
    }
    events
        .iter()
        .find(|e| *e != "*" && !textback_store::EVENT_TYPES.contains(&e.as_str()))
        .map(|bad| {
            (
                "events",
                format!(
                    "{bad:?} is not an event type: {}",
                    textback_store::EVENT_TYPES.join(", ")
                ),
            )
        })
}

/// The account's signing secret, made on first use.
pub async fn account_secret(
    store: &textback_store::Store,
    account_id: i64,
) -> Result<String, textback_store::StoreError> {
    store
        .setting_or_insert(&format!("webhook_secret:{account_id}"), || {
            format!(
                "whsec_{}",
                STANDARD.encode(textback_core::secret::random_bytes(24))
            )
        })
        .await
}

pub(crate) async fn deliver(state: &AppState, job: &Job) -> Result<(), JobFailure> {
    let Some(d) = state.store.delivery(job.subject_id).await? else {
        state.store.complete_job(job.id).await?;
        return Ok(());
    };
    if d.status == "delivered" || d.status == "refused" {
        state.store.complete_job(job.id).await?;
        return Ok(());
    }
    let now = state.now_ms();
    let last = job.attempts >= job.max_attempts;
    match attempt(state, &d).await {
        Attempt::Delivered(code) => {
            state
                .store
                .record_delivery_attempt(d.id, "delivered", Some(code), None, Some(job.id), now)
                .await?;
            Ok(())
        }
        Attempt::Refused(why) => {
            tracing::warn!(delivery = d.id, reason = %why, "webhook refused");
            state
                .store
                .record_delivery_attempt(d.id, "refused", None, Some(&why), Some(job.id), now)
                .await?;
            Ok(())
        }
        Attempt::Rejected(code) => {
            let why = format!("the receiver answered {code}");
            state
                .store
                .record_delivery_attempt(d.id, "failed", Some(code), Some(&why), Some(job.id), now)
                .await?;
            Ok(())
        }
        Attempt::Retry(code, why) => {
            let status = if last { "failed" } else { "retrying" };
            let done = last.then_some(job.id);
            state
                .store
                .record_delivery_attempt(d.id, status, code, Some(&why), done, now)
                .await?;
            if last {
                Ok(())
            } else {
                Err(JobFailure {
                    message: why,
                    retry_after: None,
                })
            }
        }
    }
}

enum Attempt {
    Delivered(i64),
    /// Never sent: the target is not allowed.
    Refused(String),
    /// A 4xx answer: the receiver does not want it; not retried.
    Rejected(i64),
    Retry(Option<i64>, String),
}

async fn attempt(state: &AppState, d: &Delivery) -> Attempt {
    let Ok(url) = reqwest::Url::parse(&d.url) else {
        return Attempt::Refused(format!("{:?} is not a URL", d.url));
    };
    let Some(host) = url.host_str().map(str::to_owned) else {
        return Attempt::Refused("the URL has no host".into());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> =
        match tokio::net::lookup_host((host.trim_matches(['[', ']']), port)).await {
            Ok(a) => a.collect(),
            Err(e) => return Attempt::Retry(None, format!("cannot resolve {host}: {e}")),
        };
    let Some(addr) = addrs.first().copied() else {
        return Attempt::Retry(None, format!("{host} has no address"));
    };
    if !state.allow_private_webhooks && addrs.iter().any(|a| is_internal(a.ip())) {
        return Attempt::Refused(format!(
            "{host} resolves to a private or loopback address; set TEXTBACK_ALLOW_PRIVATE_WEBHOOKS=true to allow it"
        ));
    }
    let secret = match account_secret(&state.store, d.account_id).await {
        Ok(s) => s,
        Err(e) => return Attempt::Retry(None, e.to_string()),
    };
    // The id stays the same on every retry (receivers drop duplicates by it); the timestamp is
    // this attempt's wall-clock time, because receivers refuse signatures older than five
    // minutes and a retry can come days after the event.
    let id = format!("msg_{}", d.id);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let signature = match sign(&secret, &id, ts, &d.payload) {
        Ok(s) => s,
        Err(e) => return Attempt::Retry(None, e),
    };
    // The address checked above is the one connected to (no second lookup to rebind).
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .build()
    {
        Ok(c) => c,
        Err(e) => return Attempt::Retry(None, format!("HTTP client: {e}")),
    };
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(d.payload.clone())
        .send()
        .await;
    match response {
        Ok(r) => {
            let code = i64::from(r.status().as_u16());
            if r.status().is_success() {
                Attempt::Delivered(code)
            } else if r.status().is_client_error() && code != 408 && code != 429 {
                Attempt::Rejected(code)
            } else {
                Attempt::Retry(Some(code), format!("the receiver answered {code}"))
            }
        }
        Err(e) => Attempt::Retry(None, format!("delivery failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
