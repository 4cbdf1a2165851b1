//! A text to one of our numbers, whichever carrier brought it: it joins the contact's
//! conversation; keywords and free-text requests change consent (with the message kept as
//! evidence); HELP and INFO get one answer naming the business.

use textback_core::Phone;
use textback_core::consent::{Intent, classify};
use textback_core::phone::redact;
use textback_store::{ConsentChange, InboundMessage};

use crate::{AppState, WebhookError};

/// The HELP answer: who is texting, and how to stop it.
pub fn help_reply(business: &str, number: &str) -> String {
    format!(
        "{business}: reply to this message and our team will get back to you, or call {number}. Reply STOP to opt out."
    )
}

/// One inbound text as a carrier's webhook gave it.
pub struct Inbound<'a> {
    pub carrier: &'static str,
    pub carrier_message_id: &'a str,
    pub from: &'a Phone,
    pub to: &'a Phone,
    pub body: &'a str,
    pub media: Vec<String>,
    /// The carrier cannot carry an answer in the webhook's response (Telnyx): a HELP
    /// answer is queued and sent through its API instead.
    pub reply_by_api: bool,
}

/// Records the text; returns the answer to give in the response, if one is due (only when
/// `reply_by_api` is false). A text to a number no account owns is logged and dropped.
pub async fn record_inbound(
    state: &AppState,
    text: Inbound<'_>,
) -> Result<Option<String>, WebhookError> {
    let Some(route) = state.store.route_for_number(text.to.as_str()).await? else {
        tracing::warn!(to = %redact(text.to.as_str()), "text to a number no account owns");
        return Ok(None);
    };
    let body = text.body;
    let intent = classify(body);
    let consent = match intent {
        Some(Intent::OptOutKeyword) => Some(ConsentChange {
            opted_out: true,
            source: "keyword".into(),
            detail: body.trim().to_owned(),
        }),
        Some(Intent::OptOutRequest(phrase)) => Some(ConsentChange {
            opted_out: true,
            source: "free_text".into(),
            detail: phrase.to_owned(),
        }),
        Some(Intent::OptIn) => Some(ConsentChange {
            opted_out: false,
            source: "keyword".into(),
            detail: body.trim().to_owned(),
        }),
        Some(Intent::Help) | None => None,
    };
    let reply = matches!(intent, Some(Intent::Help))
        .then(|| help_reply(&route.account_name, text.to.as_str()));
    let msg = InboundMessage {
        account_id: route.number.account_id,
        number_id: route.number.id,
        from_phone: text.from.to_string(),
        to_phone: text.to.to_string(),
        body: body.to_owned(),
        media: text.media,
        carrier: text.carrier.to_owned(),
        carrier_message_id: text.carrier_message_id.to_owned(),
        consent,
        reply,
        reply_by_api: text.reply_by_api,
    };
    let outcome = state
        .store
        .record_inbound_message(&msg, state.now_ms())
        .await?;
    if let (Some(change), false) = (&msg.consent, outcome.duplicate) {
        tracing::info!(
            account = %route.account_slug,
            from = %text.from.redacted(),
            opted_out = change.opted_out,
            source = %change.source,
            "consent changed by an inbound text"
        );
    }
    Ok(outcome.reply.filter(|_| !text.reply_by_api))
}
