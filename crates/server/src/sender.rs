//! Sends one queued message through its carrier, exactly once.
//!
//! The message row is marked `submitting` before the request leaves (by `Store::begin_send`,
//! or already by the run step that queued it: `Job::ready`). Finding it still
//! `submitting` on a later attempt means an earlier one may have reached the carrier (a
//! time-out, or a crash mid-request): the carrier's message list is checked for it before
//! anything is sent again.

use jiff::Timestamp;
use textback_carriers::{SendResult, sandbox};
use textback_core::carrier_error::{Effect, describe_for};
use textback_core::phone::redact;
use textback_store::{ContactEffect, Job, OutboundMessage, SendOutcome};

use crate::AppState;
use crate::worker::JobFailure;

const DONE: &[&str] = &[
    "sent",
    "sandbox",
    "failed",
    "canceled",
    "delivered",
    "undelivered",
];

/// Sends `job`'s message. `ready`: the message as the step that queued this job marked it
/// (`Job::ready`), sent without another write.
pub(crate) async fn send(
    state: &AppState,
    job: &Job,
    ready: Option<Box<OutboundMessage>>,
) -> Result<(), JobFailure> {
    let store = &state.store;
    // A message waiting for its first attempt, to a contact who has not opted out (the
    // final opt-out check, just before the text leaves), is marked in the same statement:
    // here, or in the step that queued it and whose commit this worker just saw.
    let marked = match ready {
        Some(msg) => Some(*msg),
        None => store.begin_send(job.subject_id, state.now_ms()).await?,
    };
    let msg = match marked {
        Some(msg) => msg,
        None => match decide_and_mark(state, job).await? {
            Some(msg) => msg,
            None => return Ok(()),
        },
    };
    let started = std::time::Instant::now();
    let result = match (msg.carrier.as_str(), &state.twilio) {
        ("twilio", Some(client)) => {
            let callback = state.public("/webhooks/twilio/sms/status");
            client
                .send_message(&msg.from_phone, &msg.to_phone, &msg.body, Some(&callback))
                .await
        }
        ("telnyx", _) => match &state.telnyx {
            Some(client) => {
                let webhook = state.public("/webhooks/telnyx/messaging");
                client
                    .send_message(&msg.from_phone, &msg.to_phone, &msg.body, Some(&webhook))
                    .await
            }
            None => sandbox::send(),
        },
        _ => sandbox::send(),
    };
    metrics::histogram!("textback_carrier_request_seconds", "carrier" => msg.carrier.clone())
        .record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        SendResult::Accepted { .. } => "accepted",
        SendResult::Rejected { .. } => "rejected",
        SendResult::Retryable { .. } => "retry",
        SendResult::Ambiguous { .. } => "ambiguous",
    };
    metrics::counter!("textback_texts_total", "kind" => msg.kind.clone(), "outcome" => outcome)
        .increment(1);
    if let SendResult::Rejected {
        code: Some(code), ..
    } = &result
    {
        metrics::counter!("textback_carrier_errors_total", "code" => code.to_string()).increment(1);
    }
    if let (SendResult::Accepted { .. }, Some(missed_at)) = (&result, msg.call_missed_at_ms) {
        // From the missed call (settled by the webhook) to the carrier accepting its text.
        let waited_ms = (state.now_ms() - missed_at).max(0);
        metrics::histogram!("textback_missed_call_to_carrier_seconds")
            .record(waited_ms as f64 / 1000.0);
    }
    let last = job.attempts >= job.max_attempts;
    match result {
        SendResult::Accepted {
            carrier_message_id,
            status,
            segments,
        } => {
            tracing::info!(message_id = msg.id, to = %redact(&msg.to_phone), carrier = %msg.carrier, "text sent");
            let accepted = SendOutcome::Accepted {
                carrier_message_id,
                carrier_status: status,
                segments,
            };
            finish(state, &msg, accepted, job).await
        }
        SendResult::Rejected { code, message } => {
            tracing::warn!(message_id = msg.id, code = ?code, reason = %message, "carrier rejected the text");
            let (message, effect) = understand(&msg.carrier, code, message);
            let rejected = SendOutcome::Rejected {
                code,
                message,
                effect,
            };
            finish(state, &msg, rejected, job).await
        }
        SendResult::Retryable {
            message,
            retry_after,
        } => retry_later(state, &msg, message, retry_after, last, false).await,
        SendResult::Ambiguous { message } => {
            retry_later(state, &msg, message, None, last, true).await
        }
    }
}

/// The send's slow path, for a message `begin_send` did not take: reads it and decides.
/// Already sent or gone: the job is done. Opted out: canceled. `submitting` after an
/// attempt that may have reached the carrier: reconciled first. Otherwise marked as
/// `begin_send` would. Returns the message to send, or None when nothing is to be sent.
async fn decide_and_mark(
    state: &AppState,
    job: &Job,
) -> Result<Option<OutboundMessage>, JobFailure> {
    let store = &state.store;
    let Some(mut msg) = store.outbound_message(job.subject_id).await? else {
        store.complete_job(job.id).await?;
        return Ok(None);
    };
    if DONE.contains(&msg.status.as_str()) || msg.carrier_message_id.is_some() {
        store.complete_job(job.id).await?;
        return Ok(None);
    }
    if msg.contact_opted_out {
        let canceled = SendOutcome::Canceled {
            reason: "opted_out".into(),
        };
        finish(state, &msg, canceled, job).await?;
        return Ok(None);
    }
    if msg.status == "submitting"
        && let Some(found) = reconcile(state, &msg).await?
    {
        finish(state, &msg, found, job).await?;
        return Ok(None);
    }
    store.mark_send_attempt(msg.id, state.now_ms()).await?;
    // As `begin_send` returns it: this attempt counted.
    msg.attempts += 1;
    Ok(Some(msg))
}

/// Records a temporary failure and hands the job back for another attempt. `ambiguous`:
/// the request may have reached the carrier, so the next attempt reconciles first.
async fn retry_later(
    state: &AppState,
    msg: &OutboundMessage,
    message: String,
    retry_after: Option<std::time::Duration>,
    final_attempt: bool,
    ambiguous: bool,
) -> Result<(), JobFailure> {
    let outcome = SendOutcome::Temporary {
        message: message.clone(),
        final_attempt,
        ambiguous,
    };
    record(state, msg, outcome).await?;
    Err(JobFailure {
        message,
        retry_after,
    })
}

/// Adds what the error code means to the carrier's message, and what it says about the
/// contact.
fn understand(
    carrier: &str,
    code: Option<i64>,
    message: String,
) -> (String, Option<ContactEffect>) {
    let Some(code) = code else {
        return (message, None);
    };
    let known = describe_for(carrier, code);
    let text = if matches!(known.effect, Effect::Other) {
        message
    } else {
        format!("{} ({message})", known.reason)
    };
    (text, contact_effect(carrier, code))
}

/// What a carrier error code says about the contact.
pub(crate) fn contact_effect(carrier: &str, code: i64) -> Option<ContactEffect> {
    let known = describe_for(carrier, code);
    match known.effect {
        Effect::OptedOut => Some(ContactEffect::OptedOut {
            source: format!("carrier_{code}"),
        }),
        Effect::NotTextable => Some(ContactEffect::NotTextable {
            reason: format!("carrier error {code}: {}", known.reason),
        }),
        Effect::Unreachable | Effect::Filtered | Effect::Other => None,
    }
}

/// Records an outcome that needs another attempt; the job stays queued.
async fn record(
    state: &AppState,
    msg: &OutboundMessage,
    outcome: SendOutcome,
) -> Result<(), JobFailure> {
    state
        .store
        .record_send_outcome(msg, &outcome, None, state.now_ms())
        .await?;
    Ok(())
}

/// Records a final outcome and completes the job in the same transaction.
async fn finish(
    state: &AppState,
    msg: &OutboundMessage,
    outcome: SendOutcome,
    job: &Job,
) -> Result<(), JobFailure> {
    state
        .store
        .record_send_outcome(msg, &outcome, Some(job.id), state.now_ms())
        .await?;
    Ok(())
}

/// Looks the message up at the carrier after an attempt that may have gone through.
async fn reconcile(
    state: &AppState,
    msg: &OutboundMessage,
) -> Result<Option<SendOutcome>, JobFailure> {
    if msg.carrier == "telnyx" && state.telnyx.is_some() {
        // Telnyx has no message list to look in. Sending again could text twice, and a
        // double text is the one thing we never do: the earlier attempt counts as sent.
        tracing::warn!(
            message_id = msg.id,
            "an earlier send to Telnyx may or may not have gone out; not sending again"
        );
        return Ok(Some(SendOutcome::Accepted {
            carrier_message_id: format!("unconfirmed-{}", msg.id),
            carrier_status: "sent".into(),
            segments: None,
        }));
    }
    let Some(client) = state.twilio.as_ref().filter(|_| msg.carrier == "twilio") else {
        return Ok(None);
    };
    let since = msg
        .last_attempt_at_ms
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or_else(|| state.clock.now());
    // Twilio filters by UTC day; a day earlier covers attempts made just before midnight.
    let day = since
        .checked_sub(jiff::SignedDuration::from_hours(24))
        .unwrap_or(since)
        .strftime("%Y-%m-%d")
        .to_string();
    match client
        .find_message(&msg.from_phone, &msg.to_phone, &msg.body, &day)
        .await
    {
        Ok(Some(found)) => {
            tracing::info!(
                message_id = msg.id,
                "an earlier ambiguous send did reach the carrier"
            );
            Ok(Some(SendOutcome::Accepted {
                carrier_message_id: found.sid,
                carrier_status: found.status,
                segments: found.segments,
            }))
        }
        Ok(None) => Ok(None),
        // Without an answer we cannot know; sending now could double the text.
        Err(e) => Err(JobFailure {
            message: format!("reconcile before resend: {e}"),
            retry_after: None,
        }),
    }
}
