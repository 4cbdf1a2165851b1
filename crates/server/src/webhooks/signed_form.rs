//! An extractor for form-encoded carrier webhooks that refuses unsigned or forged requests:
//! Twilio's (HMAC over the URL and parameters) and Telnyx TeXML's (Ed25519 over the raw
//! body), told apart by the path they arrive on.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;

use crate::{AppState, WebhookError};

/// Which carrier sent a voice webhook: they share the handlers, not the URLs or signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceCarrier {
    Twilio,
    /// TeXML, Telnyx's TwiML-compatible voice markup.
    Telnyx,
}

impl VoiceCarrier {
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceCarrier::Twilio => "twilio",
            VoiceCarrier::Telnyx => "telnyx",
        }
    }

    /// Where this carrier's voice webhooks live: the handlers build their callbacks on it.
    pub fn voice_base(self) -> &'static str {
        match self {
            VoiceCarrier::Twilio => "/webhooks/twilio/voice",
            VoiceCarrier::Telnyx => "/webhooks/telnyx/voice",
        }
    }
}

/// Every parameter of a verified carrier webhook, in the order received.
#[derive(Debug, Clone)]
pub struct CarrierForm {
    pub carrier: VoiceCarrier,
    pub params: Vec<(String, String)>,
    /// The request's query, parsed (our own `parent=` and the like).
    pub query: Vec<(String, String)>,
}

impl CarrierForm {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str) -> Result<&str, WebhookError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| WebhookError::BadRequest(format!("missing parameter {name}")))
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequest<AppState> for CarrierForm {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let (parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        // Signatures are computed over the URL Twilio called: our public URL, never the
        // host a proxy forwarded to.
        let url = state.public(&path_and_query);
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let signature = header("x-twilio-signature");
        let settings = header("x-twilio-webhooks-signature-settings");
        let telnyx_signature = header(textback_carriers::telnyx::signature::SIGNATURE_HEADER);
        let telnyx_timestamp = header(textback_carriers::telnyx::signature::TIMESTAMP_HEADER);
        let carrier = if parts.uri.path().starts_with("/webhooks/telnyx/") {
            VoiceCarrier::Telnyx
        } else {
            VoiceCarrier::Twilio
        };
        let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let query: Vec<(String, String)> = path_and_query
            .split_once('?')
            .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if carrier == VoiceCarrier::Telnyx {
            let Some(key) = &state.telnyx_key else {
                return Err(WebhookError::Refused(
                    "Telnyx is not configured on this server (TELNYX_PUBLIC_KEY)".into(),
                )
                .into_response());
            };
            key.verify(
                telnyx_signature.as_deref(),
                telnyx_timestamp.as_deref(),
                &bytes,
                state.clock.now().as_second(),
            )
            .map_err(|e| WebhookError::Refused(e.to_string()).into_response())?;
            let params: Vec<(String, String)> =
                form_urlencoded::parse(&bytes).into_owned().collect();
            return Ok(CarrierForm {
                carrier,
                params,
                query,
            });
        }
        if content_type.starts_with("application/json") {
            state
                .signature
                .verify_json(&url, &bytes, signature.as_deref(), settings.as_deref())
                .map_err(|e| WebhookError::from(e).into_response())?;
            return Err(WebhookError::BadRequest(
                "JSON webhooks are not used by these endpoints".into(),
            )
            .into_response());
        }
        if !content_type.is_empty()
            && !content_type.starts_with("application/x-www-form-urlencoded")
        {
            return Err(WebhookError::BadRequest(format!(
                "unsupported content type {content_type:?}"
            ))
            .into_response());
        }
        let params: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        state
            .signature
            .verify_form(&url, &params, signature.as_deref(), settings.as_deref())
            .map_err(|e| WebhookError::from(e).into_response())?;
        Ok(CarrierForm {
            carrier,
            params,
            query,
        })
    }
}
