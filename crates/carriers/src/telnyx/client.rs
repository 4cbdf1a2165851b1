//! The Telnyx Messaging API v2: `POST /v2/messages` with a bearer API key and a JSON body.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::SendResult;

pub const DEFAULT_BASE: &str = "https://api.telnyx.com";

#[derive(Clone)]
pub struct TelnyxClient {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl std::fmt::Debug for TelnyxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelnyxClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Envelope {
    data: MessageResource,
}

#[derive(Deserialize)]
struct MessageResource {
    id: String,
    #[serde(default)]
    to: Vec<Recipient>,
    parts: Option<i64>,
}

#[derive(Deserialize)]
struct Recipient {
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorList {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    /// Telnyx sends codes as strings (`"40310"`).
    code: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

impl TelnyxClient {
    pub fn new(
        base: &str,
        api_key: &str,
        timeout: Duration,
    ) -> Result<TelnyxClient, reqwest::Error> {
        Ok(TelnyxClient {
            http: crate::http_client(timeout)?,
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        })
    }

    /// Sends one text; `webhook_url` receives its `message.sent` / `message.finalized`
    /// events. Does not retry: the job queue owns retries.
    pub async fn send_message(
        &self,
        from: &str,
        to: &str,
        text: &str,
        webhook_url: Option<&str>,
    ) -> SendResult {
        let mut body = json!({ "from": from, "to": to, "text": text });
        if let Some(url) = webhook_url {
            body["webhook_url"] = json!(url);
        }
        let response = match self
            .http
            .post(format!("{}/v2/messages", self.base))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return crate::classify_transport_error(&e, "Telnyx"),
        };
        let status = response.status();
        let retry_after = crate::retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) if status.is_success() => {
                return SendResult::Ambiguous {
                    message: format!("reading Telnyx's answer failed: {e}"),
                };
            }
            Err(e) => {
                return SendResult::Retryable {
                    message: format!("reading Telnyx's answer failed: {e}"),
                    retry_after,
                };
            }
        };
        if status.is_success() {
            return match serde_json::from_slice::<Envelope>(&bytes) {
                Ok(Envelope { data }) => SendResult::Accepted {
                    carrier_message_id: data.id,
                    status: data
                        .to
                        .into_iter()
                        .find_map(|r| r.status)
                        .unwrap_or_else(|| "queued".to_owned()),
                    segments: data.parts,
                },
                Err(e) => SendResult::Ambiguous {
                    message: format!("Telnyx answered {status} with an unreadable body: {e}"),
                },
            };
        }
        let first = serde_json::from_slice::<ErrorList>(&bytes)
            .ok()
            .and_then(|l| l.errors.into_iter().next());
        let code = first
            .as_ref()
            .and_then(|e| e.code.as_deref())
            .and_then(|c| c.trim().parse::<i64>().ok());
        let message = first
            .map(|e| match (e.title, e.detail) {
                (Some(t), Some(d)) if t != d => format!("{t}: {d}"),
                (Some(t), _) => t,
                (None, Some(d)) => d,
                (None, None) => format!("HTTP {status}"),
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        if status.as_u16() == 429 || status.is_server_error() {
            SendResult::Retryable {
                message: format!("Telnyx answered {}: {message}", status.as_u16()),
                retry_after,
            }
        } else {
            SendResult::Rejected { code, message }
        }
    }
}
