//! Twilio's Messages API on reqwest (API 2010-04-01).
//!
//! Create answers `201` with the Message resource (`sid`, `status`, `num_segments` as a
//! string, `error_code`); errors come as `{code, message, more_info, status}`. A 429 (code
//! 20429) was never processed and is safe to retry after `Retry-After`; 5xx and time-outs
//! before the request left are retried; any other 4xx (21211 invalid number, 21610 the
//! recipient opted out, 21614 not a mobile…) is final. A time-out after the request left is
//! ambiguous: the message may exist, so the caller lists messages before sending again.

use std::time::Duration;

use serde::Deserialize;

use crate::SendResult;

pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
pub const DEFAULT_LOOKUP_BASE: &str = "https://lookups.twilio.com";
pub const DEFAULT_MESSAGING_BASE: &str = "https://messaging.twilio.com";

#[derive(Clone)]
pub struct TwilioCredentials {
    pub account_sid: String,
    pub auth_token: String,
}

impl std::fmt::Debug for TwilioCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TwilioCredentials({}, auth token hidden)",
            self.account_sid
        )
    }
}

#[derive(Debug, Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    base: String,
    lookup_base: String,
    messaging_base: String,
    creds: TwilioCredentials,
}

#[derive(Debug, Deserialize)]
struct MessageResource {
    sid: String,
    status: Option<String>,
    num_segments: Option<String>,
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<i64>,
    message: Option<String>,
    more_info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LookupResponse {
    line_type_intelligence: Option<LineTypeIntelligence>,
}

#[derive(Debug, Deserialize)]
struct LineTypeIntelligence {
    #[serde(rename = "type")]
    line_type: Option<String>,
    carrier_name: Option<String>,
    error_code: Option<i64>,
}

/// Line type intelligence for one number (Lookup v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineType {
    /// `mobile`, `landline`, `fixedVoip`, `nonFixedVoip`, `tollFree`, … or `None` when
    /// the carrier did not know.
    pub line_type: Option<String>,
    pub carrier_name: Option<String>,
}

/// How a number is configured at Twilio (IncomingPhoneNumbers).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IncomingNumber {
    pub sid: String,
    pub phone_number: String,
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub sms_url: Option<String>,
    pub sms_method: Option<String>,
    pub status_callback: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IncomingNumberList {
    incoming_phone_numbers: Vec<IncomingNumber>,
}

/// A number's A2P 10DLC campaign or toll-free verification status, as Twilio reports it,
/// mapped to `approved`, `pending`, `rejected` or `unregistered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub status: &'static str,
    /// What Twilio said, for the operator.
    pub detail: String,
}

#[derive(Debug, Deserialize)]
struct ServiceList {
    services: Vec<Sid>,
}

#[derive(Debug, Deserialize)]
struct Sid {
    sid: String,
}

#[derive(Debug, Deserialize)]
struct ServiceNumbers {
    phone_numbers: Vec<ServiceNumber>,
}

#[derive(Debug, Deserialize)]
struct ServiceNumber {
    phone_number: String,
}

#[derive(Debug, Deserialize)]
struct Usa2pList {
    compliance: Vec<Usa2p>,
}

#[derive(Debug, Deserialize)]
struct Usa2p {
    campaign_status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TollfreeList {
    verifications: Vec<TollfreeVerification>,
}

#[derive(Debug, Deserialize)]
struct TollfreeVerification {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MessageList {
    messages: Vec<MessageResource>,
}

/// A message found on the carrier while reconciling an ambiguous send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMessage {
    pub sid: String,
    pub status: String,
    pub segments: Option<i64>,
}

impl TwilioClient {
    pub fn new(
        base: &str,
        lookup_base: &str,
        creds: TwilioCredentials,
        timeout: Duration,
    ) -> Result<TwilioClient, reqwest::Error> {
        let http = crate::http_client(timeout)?;
        Ok(TwilioClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            lookup_base: lookup_base.trim_end_matches('/').to_owned(),
            messaging_base: DEFAULT_MESSAGING_BASE.to_owned(),
            creds,
        })
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.base, self.creds.account_sid
        )
    }

    /// Sends one text. Does not retry: the job queue owns retries, so they survive restarts.
    pub async fn send_message(
        &self,
        from: &str,
        to: &str,
        body: &str,
        status_callback: Option<&str>,
    ) -> SendResult {
        let mut form: Vec<(&str, &str)> = vec![("To", to), ("From", from), ("Body", body)];
        if let Some(cb) = status_callback {
            form.push(("StatusCallback", cb));
        }
        let response = self
            .http
            .post(self.messages_url())
            .basic_auth(&self.creds.account_sid, Some(&self.creds.auth_token))
            .form(&form)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return crate::classify_transport_error(&e, "Twilio"),
        };
        let status = response.status();
        let retry_after = crate::retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return if status.is_success() {
                    SendResult::Ambiguous {
                        message: format!("reading Twilio's answer failed: {e}"),
                    }
                } else {
                    SendResult::Retryable {
                        message: format!("reading Twilio's answer failed: {e}"),
                        retry_after,
                    }
                };
            }
        };
        if status.is_success() {
            return match serde_json::from_slice::<MessageResource>(&bytes) {
                Ok(m) => SendResult::Accepted {
                    carrier_message_id: m.sid,
                    status: m.status.unwrap_or_else(|| "queued".to_owned()),
                    segments: m.num_segments.and_then(|s| s.parse().ok()),
                },
                // Twilio said yes but we cannot read the sid: the message exists.
                Err(e) => SendResult::Ambiguous {
                    message: format!("Twilio answered {status} with an unreadable body: {e}"),
                },
            };
        }
        let err: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        let code = err.as_ref().and_then(|e| e.code);
        let message = err
            .as_ref()
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let more = err
            .and_then(|e| e.more_info)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        if status.as_u16() == 429 || status.is_server_error() {
            SendResult::Retryable {
                message: format!("Twilio answered {}: {message}{more}", status.as_u16()),
                retry_after,
            }
        } else {
            SendResult::Rejected {
                code,
                message: format!("{message}{more}"),
            }
        }
    }

    /// Looks for a message from `from` to `to` with exactly `body`, created on or after the
    /// UTC day of `since_date` (`YYYY-MM-DD`): the reconcile step before resending after
    /// an ambiguous attempt.
    pub async fn find_message(
        &self,
        from: &str,
        to: &str,
        body: &str,
        since_date: &str,
    ) -> Result<Option<FoundMessage>, String> {
        let response = self
            .http
            .get(self.messages_url())
            .basic_auth(&self.creds.account_sid, Some(&self.creds.auth_token))
            .query(&[
                ("To", to),
                ("From", from),
                ("DateSent>", since_date),
                ("PageSize", "50"),
            ])
            .send()
            .await
            .map_err(|e| format!("listing messages failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("listing messages answered {}", response.status()));
        }
        let list: MessageList = response
            .json()
            .await
            .map_err(|e| format!("listing messages returned an unreadable body: {e}"))?;
        Ok(list
            .messages
            .into_iter()
            .find(|m| m.body.as_deref() == Some(body))
            .map(|m| FoundMessage {
                sid: m.sid,
                status: m.status.unwrap_or_else(|| "queued".into()),
                segments: m.num_segments.and_then(|s| s.parse().ok()),
            }))
    }
}

impl TwilioClient {
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .basic_auth(&self.creds.account_sid, Some(&self.creds.auth_token))
            .query(query)
            .send()
            .await
            .map_err(|e| format!("{what} failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body: Option<ErrorBody> = response.json().await.ok();
            let detail = body
                .map(|b| {
                    format!(
                        "{} {}",
                        b.code.map(|c| c.to_string()).unwrap_or_default(),
                        b.message.unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            return Err(format!(
                "{what} answered {}: {}",
                status.as_u16(),
                detail.trim()
            ));
        }
        response
            .json()
            .await
            .map_err(|e| format!("{what} returned an unreadable body: {e}"))
    }

    /// Lookup v2 line type intelligence for an E.164 number.
    pub async fn line_type(&self, e164: &str) -> Result<LineType, String> {
        let encoded: String = form_urlencoded::byte_serialize(e164.as_bytes()).collect();
        let url = format!("{}/v2/PhoneNumbers/{encoded}", self.lookup_base);
        let r: LookupResponse = self
            .get_json(
                &url,
                &[("Fields", "line_type_intelligence")],
                "line type lookup",
            )
            .await?;
        let lti = r
            .line_type_intelligence
            .ok_or("line type lookup returned no line_type_intelligence")?;
        if let (None, Some(code)) = (&lti.line_type, lti.error_code) {
            return Err(format!("line type lookup error {code}"));
        }
        Ok(LineType {
            line_type: lti.line_type,
            carrier_name: lti.carrier_name,
        })
    }

    /// Places an outbound call (the team's call back): Twilio calls `to` from `from` and
    /// fetches TwiML from `url` when it answers. Returns the call's sid.
    pub async fn place_call(&self, to: &str, from: &str, url: &str) -> Result<String, String> {
        let response = self
            .http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Calls.json",
                self.base, self.creds.account_sid
            ))
            .basic_auth(&self.creds.account_sid, Some(&self.creds.auth_token))
            .form(&[("To", to), ("From", from), ("Url", url), ("Method", "POST")])
            .send()
            .await
            .map_err(|e| format!("placing the call failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let body: Option<ErrorBody> = response.json().await.ok();
            let detail = body
                .map(|b| {
                    format!(
                        "{} {}",
                        b.code.map(|c| c.to_string()).unwrap_or_default(),
                        b.message.unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            return Err(format!(
                "Twilio answered {}: {}",
                status.as_u16(),
                detail.trim()
            ));
        }
        let call: Sid = response
            .json()
            .await
            .map_err(|e| format!("unreadable call resource: {e}"))?;
        Ok(call.sid)
    }

    /// Points the A2P / toll-free status reads at another base URL (tests use a stand-in).
    pub fn with_messaging_base(mut self, base: &str) -> TwilioClient {
        self.messaging_base = base.trim_end_matches('/').to_owned();
        self
    }

    /// The number's registration: toll-free verification for toll-free numbers, else the
    /// A2P 10DLC campaign of the Messaging Service that holds the number.
    pub async fn registration(&self, e164: &str, toll_free: bool) -> Result<Registration, String> {
        if toll_free {
            let Some(number) = self.incoming_number(e164).await? else {
                return Err("the Twilio account does not own this number".into());
            };
            let url = format!("{}/v1/Tollfree/Verifications", self.messaging_base);
            let list: TollfreeList = self
                .get_json(
                    &url,
                    &[
                        ("TollfreePhoneNumberSid", number.sid.as_str()),
                        ("PageSize", "20"),
                    ],
                    "reading toll-free verification",
                )
                .await?;
            let status = list
                .verifications
                .into_iter()
                .find_map(|v| v.status)
                .unwrap_or_default();
            let mapped = match status.as_str() {
                "TWILIO_APPROVED" => "approved",
                "PENDING_REVIEW" | "IN_REVIEW" => "pending",
                "TWILIO_REJECTED" => "rejected",
                _ => "unregistered",
            };
            let detail = if status.is_empty() {
                "no toll-free verification".to_owned()
            } else {
                format!("toll-free verification {status}")
            };
            return Ok(Registration {
                status: mapped,
                detail,
            });
        }
        let services: ServiceList = self
            .get_json(
                &format!("{}/v1/Services", self.messaging_base),
                &[("PageSize", "100")],
                "listing Messaging Services",
            )
            .await?;
        for service in services.services {
            let numbers: ServiceNumbers = self
                .get_json(
                    &format!(
                        "{}/v1/Services/{}/PhoneNumbers",
                        self.messaging_base, service.sid
                    ),
                    &[("PageSize", "1000")],
                    "listing a Messaging Service's numbers",
                )
                .await?;
            if !numbers.phone_numbers.iter().any(|n| n.phone_number == e164) {
                continue;
            }
            let campaigns: Usa2pList = self
                .get_json(
                    &format!(
                        "{}/v1/Services/{}/Compliance/Usa2p",
                        self.messaging_base, service.sid
                    ),
                    &[],
                    "reading the A2P campaign",
                )
                .await?;
            let status = campaigns
                .compliance
                .into_iter()
                .find_map(|c| c.campaign_status)
                .unwrap_or_default();
            let mapped = match status.as_str() {
                "VERIFIED" => "approved",
                "IN_PROGRESS" | "PENDING" => "pending",
                "FAILED" => "rejected",
                _ => "unregistered",
            };
            let detail = if status.is_empty() {
                format!("Messaging Service {} has no A2P campaign", service.sid)
            } else {
                format!("A2P campaign {status} (Messaging Service {})", service.sid)
            };
            return Ok(Registration {
                status: mapped,
                detail,
            });
        }
        Ok(Registration {
            status: "unregistered",
            detail: "the number is in no Messaging Service with an A2P campaign".into(),
        })
    }

    /// The number's configuration at Twilio, or `None` when the account does not own it.
    pub async fn incoming_number(&self, e164: &str) -> Result<Option<IncomingNumber>, String> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/IncomingPhoneNumbers.json",
            self.base, self.creds.account_sid
        );
        let list: IncomingNumberList = self
            .get_json(
                &url,
                &[("PhoneNumber", e164)],
                "reading the number at Twilio",
            )
            .await?;
        Ok(list
            .incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number == e164))
    }
}

/// reqwest is built without a bundled TLS crypto provider (aws-lc-rs is a heavy C build);
/// rustls' ring provider is installed once, process-wide, before the first client.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
