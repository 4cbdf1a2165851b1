//! Twilio voice webhooks: ring the team, settle the missed-call rule, take a voicemail.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use textback_carriers::twilio::twiml;
use textback_core::call::DialStatus;
use textback_core::phone::redact;
use textback_core::{CallerId, Phone};
use textback_store::{DialFacts, NewCall, NumberRoute};

use super::CarrierForm;
use super::signed_form::VoiceCarrier;
use crate::{AppState, WebhookError};

pub fn routes() -> Router<AppState> {
    // One set of handlers for both carriers: Telnyx's TeXML speaks TwiML's verbs and
    // parameters; the extractor checks each carrier's own signature by path.
    let mut router = Router::new();
    for base in ["/webhooks/twilio/voice", "/webhooks/telnyx/voice"] {
        router = router
            .route(base, post(voice))
            .route(&format!("{base}/dial-status"), post(dial_status))
            .route(&format!("{base}/status"), post(call_status))
            .route(&format!("{base}/screen"), post(screen))
            .route(&format!("{base}/screen-result"), post(screen_result))
            .route(&format!("{base}/recording"), post(recording))
            .route(&format!("{base}/transcription"), post(transcription))
            .route(&format!("{base}/callback"), post(callback))
            .route(&format!("{base}/callback-status"), post(callback_status));
    }
    router
}

fn twiml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

const NOT_IN_SERVICE: &str = "Sorry, this number is not in service.";

/// Finds who owns the called number. When the database fails, the last known routing is
/// used so the call still rings the team.
async fn route(state: &AppState, to: &str) -> Result<Option<NumberRoute>, WebhookError> {
    let e164 = Phone::parse(to)
        .map_err(|e| WebhookError::BadRequest(format!("To: {e}")))?
        .to_string();
    match state.store.route_for_number(&e164).await {
        Ok(Some(route)) => {
            state.routes.remember(&route);
            Ok(Some(route))
        }
        Ok(None) => Ok(None),
        Err(e) => match state.routes.get(&e164) {
            Some(cached) => {
                tracing::error!(error = %e, "database unavailable; routing call from cache");
                Ok(Some(cached))
            }
            None => Err(e.into()),
        },
    }
}

fn new_call(
    state: &AppState,
    route: &NumberRoute,
    form: &CarrierForm,
) -> Result<NewCall, WebhookError> {
    let sid = form.require("CallSid")?;
    let caller = CallerId::from_carrier(form.get("From").unwrap_or_default());
    Ok(NewCall {
        account_id: route.number.account_id,
        number_id: route.number.id,
        carrier: form.carrier.as_str().to_owned(),
        carrier_call_id: sid.to_owned(),
        caller: caller.raw(),
        caller_phone: caller.phone().map(|p| p.to_string()),
        at_ms: state.now_ms(),
    })
}

fn unknown_number(to: &str) -> Response {
    tracing::warn!(to = %redact(to), "call to a number no account owns");
    twiml_response(twiml::say(NOT_IN_SERVICE))
}

/// The number's voice URL: ring the team's phones with `<Dial>`.
async fn voice(State(state): State<AppState>, form: CarrierForm) -> Result<Response, WebhookError> {
    let to = form.require("To")?;
    let Some(route) = route(&state, to).await? else {
        return Ok(unknown_number(to));
    };
    let call = new_call(&state, &route, &form)?;
    if route.number.ring_to.is_empty() {
        // Nobody to ring: this call is missed from the start.
        settle(&state, &route, &call, None).await?;
        return Ok(twiml_response(voicemail(
            &state,
            form.carrier,
            &route.account_name,
        )));
    }
    if let Err(e) = state.store.record_incoming_call(&call).await {
        // The phone keeps ringing; the Dial result and status callback record it later.
        tracing::error!(error = %e, "could not record the incoming call");
    }
    let screen_url = route.number.call_screening.then(|| {
        state.public(&format!(
            "{}/screen?parent={}&number={}",
            form.carrier.voice_base(),
            url_encode(&call.carrier_call_id),
            url_encode(&route.number.e164)
        ))
    });
    Ok(twiml_response(twiml::dial(
        &route.number.ring_to,
        route.number.ring_seconds,
        &state.public(&format!("{}/dial-status", form.carrier.voice_base())),
        None,
        screen_url.as_deref(),
    )))
}

async fn settle(
    state: &AppState,
    route: &NumberRoute,
    call: &NewCall,
    dial_status: Option<&str>,
) -> Result<bool, WebhookError> {
    let facts = DialFacts {
        call: call.clone(),
        dial_status: dial_status.map(str::to_owned),
    };
    let settled = state
        .store
        .record_dial_result(&facts, route.number.call_screening, state.now_ms())
        .await;
    let (missed, newly) = match settled {
        Ok(settled) => settled,
        Err(e) => return spool_call(state, route, facts, e),
    };
    if newly {
        metrics::counter!("textback_calls_total", "outcome" => if missed { "missed" } else { "answered" }).increment(1);
        tracing::info!(
            account = %route.account_slug,
            call = %call.carrier_call_id,
            caller = %redact(&call.caller),
            outcome = if missed { "missed" } else { "answered" },
            "call settled"
        );
    }
    Ok(missed)
}

/// The `<Dial>` action: applies the missed-call rule. A miss is durable (call, contact and
/// the text back job in one transaction) before the caller hears the voicemail greeting.
async fn dial_status(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let to = form.require("To")?;
    let raw_status = form.require("DialCallStatus")?;
    let status =
        DialStatus::parse(raw_status).map_err(|e| WebhookError::BadRequest(e.to_string()))?;
    let Some(route) = route(&state, to).await? else {
        return Ok(unknown_number(to));
    };
    let call = new_call(&state, &route, &form)?;
    let missed = settle(&state, &route, &call, Some(status.as_str())).await?;
    if missed {
        Ok(twiml_response(voicemail(
            &state,
            form.carrier,
            &route.account_name,
        )))
    } else {
        Ok(twiml_response(twiml::hangup()))
    }
}

const FINAL_CALL_STATUSES: &[&str] = &["completed", "busy", "no-answer", "failed", "canceled"];

/// The number's status callback: records how the call ended, and settles as missed a call
/// that ended without a `<Dial>` result (the caller hung up first, or the dial never ran).
async fn call_status(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let to = form.require("To")?;
    let call_status = form.require("CallStatus")?;
    let Some(route) = route(&state, to).await? else {
        return Ok(unknown_number(to));
    };
    let call = new_call(&state, &route, &form)?;
    let duration = form.get("CallDuration").and_then(|d| d.parse::<i64>().ok());
    let before = state
        .store
        .record_call_status(&call, call_status, duration, state.now_ms())
        .await?;
    if before.is_none() && FINAL_CALL_STATUSES.contains(&call_status) {
        settle(&state, &route, &call, None).await?;
    }
    Ok(twiml_response(twiml::connect()))
}

/// Call screening, on the team member's leg: whisper who is calling and wait for a key.
async fn screen(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let parent = form
        .query("parent")
        .ok_or_else(|| WebhookError::BadRequest("missing parent call id".into()))?
        .to_owned();
    let business = match form.query("number") {
        Some(number) => route(&state, number)
            .await
            .ok()
            .flatten()
            .map(|r| r.account_name),
        None => None,
    };
    let action = state.public(&format!(
        "{}/screen-result?parent={}",
        form.carrier.voice_base(),
        url_encode(&parent)
    ));
    Ok(twiml_response(twiml::screen_prompt(
        business.as_deref().unwrap_or("the business"),
        &action,
    )))
}

/// The key the team member pressed. Only `1` takes the call; anything else hangs up this
/// leg, and the dial goes on as unanswered.
async fn screen_result(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let parent = form
        .query("parent")
        .ok_or_else(|| WebhookError::BadRequest("missing parent call id".into()))?;
    if form.get("Digits") == Some("1") {
        state
            .store
            .record_screen_accepted(parent, state.now_ms())
            .await?;
        Ok(twiml_response(twiml::connect()))
    } else {
        Ok(twiml_response(twiml::hangup()))
    }
}

/// The database could not take the call's result: keep it in the spool (on disk before
/// the carrier hears back) and answer as the rule decides, so the caller still gets the
/// voicemail greeting and, once the database is back, the text. Without a spool, or if the
/// spool cannot be written either, the carrier gets the error.
fn spool_call(
    state: &AppState,
    route: &NumberRoute,
    facts: DialFacts,
    error: textback_store::StoreError,
) -> Result<bool, WebhookError> {
    let Some(spool) = &state.spool else {
        return Err(error.into());
    };
    // Screening acceptance lives in the database: without it, a completed dial on a
    // screening number counts as not accepted (missed), as the rule says.
    let missed = facts.missed(route.number.call_screening, false);
    let entry = crate::spool::Spooled {
        facts,
        call_screening: route.number.call_screening,
    };
    match spool.put(&entry) {
        Ok(_) => {
            metrics::counter!("textback_calls_spooled_total").increment(1);
            tracing::error!(error = %error, call = %entry.facts.call.carrier_call_id, "database unavailable: the call result is spooled and will be settled when it is back");
            Ok(missed)
        }
        Err(io) => {
            tracing::error!(error = %error, spool_error = %io, "database unavailable and the spool could not be written");
            Err(error.into())
        }
    }
}

/// Settles spooled call results once the database answers again, every few seconds.
pub async fn replay_spool(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(spool) = state.spool.clone() else {
        return;
    };
    let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        let pending = match spool.pending() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the spool");
                continue;
            }
        };
        for (path, entry) in pending {
            match state
                .store
                .record_dial_result(&entry.facts, entry.call_screening, state.now_ms())
                .await
            {
                Ok(_) => {
                    tracing::info!(call = %entry.facts.call.carrier_call_id, "spooled call settled");
                    if let Err(e) = spool.remove(&path) {
                        tracing::error!(error = %e, file = %path.display(), "a settled spool entry could not be removed; settling it again changes nothing");
                    }
                }
                // Still down: try again next round, in order.
                Err(_) => break,
            }
        }
    }
}

/// The greeting and `<Record>` a missed caller hears; the carrier transcribes the recording
/// to our `transcription` callback on its own path.
fn voicemail(state: &AppState, carrier: VoiceCarrier, business: &str) -> String {
    let base = carrier.voice_base();
    let callback = state.public(&format!("{base}/transcription"));
    let transcribe = match carrier {
        VoiceCarrier::Twilio => twiml::Transcribe::Twilio(&callback),
        VoiceCarrier::Telnyx => twiml::Transcribe::Telnyx(&callback),
    };
    twiml::voicemail(
        business,
        &state.public(&format!("{base}/recording")),
        Some(transcribe),
    )
}

/// The carrier's transcription callback (Twilio's `transcribeCallback`, TeXML's
/// `transcriptionCallback`, the same form fields): the voicemail's words attach to the call
/// (and so show on its callback task). A failed transcription leaves the recording to be
/// listened to.
async fn transcription(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let sid = form.require("CallSid")?;
    let text = form.get("TranscriptionText").map(str::trim).unwrap_or("");
    if form.get("TranscriptionStatus") == Some("completed") && !text.is_empty() {
        // Transcripts are the caller's words: kept, never logged.
        if !state
            .store
            .record_transcript(sid, text, state.now_ms())
            .await?
        {
            tracing::warn!(call = sid, "a transcription arrived for an unknown call");
        }
    }
    Ok(twiml_response(twiml::connect()))
}

/// The `<Record>` action: the voicemail's recording attaches to the call.
async fn recording(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let sid = form.require("CallSid")?;
    if let Some(url) = form.get("RecordingUrl").filter(|u| !u.is_empty()) {
        let secs = form.get("RecordingDuration").and_then(|d| d.parse().ok());
        state
            .store
            .record_voicemail(sid, url, secs, state.now_ms())
            .await?;
    }
    Ok(twiml_response(twiml::hangup()))
}

fn task_param(form: &CarrierForm) -> Result<i64, WebhookError> {
    form.query("task")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| WebhookError::BadRequest("missing or invalid task".into()))
}

/// The team member picked up the call-back Textback placed: connect them to the contact,
/// showing the business number.
async fn callback(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let task = task_param(&form)?;
    let Some((contact, number, _)) = state.store.callback_target(task).await? else {
        return Ok(twiml_response(twiml::say(
            "This callback is no longer needed. Goodbye.",
        )));
    };
    let action = state.public(&format!(
        "{}/callback-status?task={task}",
        form.carrier.voice_base()
    ));
    Ok(twiml_response(twiml::call_back(&contact, &number, &action)))
}

/// How the call-back's `<Dial>` to the contact ended: answered means the contact was called
/// back; the task is done and pending texts to them are cancelled.
async fn callback_status(
    State(state): State<AppState>,
    form: CarrierForm,
) -> Result<Response, WebhookError> {
    let task = task_param(&form)?;
    let status = DialStatus::parse(form.require("DialCallStatus")?)
        .map_err(|e| WebhookError::BadRequest(e.to_string()))?;
    if matches!(status, DialStatus::Completed | DialStatus::Answered) {
        state
            .store
            .record_callback_answered(task, state.now_ms())
            .await?;
        tracing::info!(task, "contact called back");
    }
    Ok(twiml_response(twiml::hangup()))
}

fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
