//! `textback simulate-call`: plays Twilio's part of a call against a running server,
//! through the real webhook path and signed the way Twilio signs, then reports what the
//! server did — including the text back.

use std::time::{Duration, Instant};

use textback_carriers::twilio::sign;
use textback_core::Phone;
use textback_store::Store;

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--{0}: {1}")]
    Phone(&'static str, textback_core::PhoneError),
    #[error("--dial-status {0:?} is not one of no-answer, busy, failed, canceled, completed")]
    DialStatus(String),
    #[error("could not reach the server at {url}: {error}")]
    Unreachable { url: String, error: String },
    #[error("the server answered {status} to {path}: {body}")]
    Refused {
        status: u16,
        path: String,
        body: String,
    },
    #[error("reading the database failed: {0}")]
    Store(#[from] textback_store::StoreError),
}

#[derive(Clone)]
pub struct Simulation {
    /// Where to send the webhooks (the server's own address).
    pub server_url: String,
    /// The URL the server checks signatures against (TEXTBACK_PUBLIC_URL).
    pub public_url: String,
    pub auth_token: String,
    pub from: String,
    pub to: String,
    pub answered: bool,
    pub dial_status: Option<String>,
    pub wait: Duration,
}

struct Twilio<'a> {
    sim: &'a Simulation,
    http: reqwest::Client,
    call_sid: String,
    account_sid: String,
}

impl Twilio<'_> {
    async fn post(
        &self,
        path_and_query: &str,
        extra: &[(&str, &str)],
    ) -> Result<String, SimulateError> {
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("CallSid".into(), self.call_sid.clone()),
            ("Direction".into(), "inbound".into()),
            ("From".into(), self.sim.from.clone()),
            ("Caller".into(), self.sim.from.clone()),
            ("To".into(), self.sim.to.clone()),
            ("Called".into(), self.sim.to.clone()),
        ];
        for (k, v) in extra {
            params.push(((*k).to_owned(), (*v).to_owned()));
        }
        let signature = sign(
            &self.sim.auth_token,
            &format!("{}{path_and_query}", self.sim.public_url),
            &params,
        );
        let url = format!("{}{path_and_query}", self.sim.server_url);
        let response = self
            .http
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .send()
            .await
            .map_err(|e| SimulateError::Unreachable {
                url: self.sim.server_url.clone(),
                error: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            return Err(SimulateError::Refused {
                status,
                path: path_and_query.to_owned(),
                body,
            });
        }
        Ok(body)
    }
}

/// The value of `attr="…"` in the first tag that has it, unescaped enough for URLs.
fn attribute(xml: &str, attr: &str) -> Option<String> {
    let needle = format!("{attr}=\"");
    let start = xml.find(&needle)? + needle.len();
    let end = xml[start..].find('"')? + start;
    Some(xml[start..end].replace("&amp;", "&"))
}

pub async fn run(sim: &Simulation, store: &Store) -> Result<Vec<String>, SimulateError> {
    let from = Phone::parse(&sim.from)
        .map(|p| p.to_string())
        .unwrap_or_else(|_| sim.from.clone());
    let to = Phone::parse(&sim.to)
        .map_err(|e| SimulateError::Phone("to", e))?
        .to_string();
    let dial_status = match (&sim.dial_status, sim.answered) {
        (Some(s), _) => s.clone(),
        (None, true) => "completed".into(),
        (None, false) => "no-answer".into(),
    };
    if !["no-answer", "busy", "failed", "canceled", "completed"].contains(&dial_status.as_str()) {
        return Err(SimulateError::DialStatus(dial_status));
    }
    let sim = Simulation {
        from,
        to,
        ..sim.clone()
    };
    let twilio = Twilio {
        sim: &sim,
        http: reqwest::Client::new(),
        call_sid: format!("CA{:032x}", fastrand::u128(..)),
        account_sid: format!("AC{:032x}", 0u128),
    };
    let mut out = vec![format!(
        "Calling {} from {} (call {})",
        sim.to, sim.from, twilio.call_sid
    )];
    let started = Instant::now();
    let twiml = twilio
        .post("/webhooks/twilio/voice", &[("CallStatus", "ringing")])
        .await?;
    if !twiml.contains("<Dial") {
        out.push(format!("  the server did not ring anyone: {twiml}"));
    } else {
        let numbers: Vec<&str> = twiml
            .split("<Number")
            .skip(1)
            .filter_map(|s| {
                s.split_once('>')
                    .and_then(|(_, rest)| rest.split_once("</Number>"))
                    .map(|(n, _)| n)
            })
            .collect();
        out.push(format!("  ringing the team: {}", numbers.join(", ")));
        let screening = attribute(&twiml, "url");
        if sim.answered {
            if let Some(screen_url) = &screening {
                let path = screen_url
                    .strip_prefix(&sim.public_url)
                    .unwrap_or(screen_url);
                let prompt = twilio.post(path, &[("CallStatus", "in-progress")]).await?;
                if let Some(action) = attribute(&prompt, "action") {
                    let path = action
                        .strip_prefix(&sim.public_url)
                        .unwrap_or(&action)
                        .to_owned();
                    twilio.post(&path, &[("Digits", "1")]).await?;
                    out.push("  a team member answers and presses 1".into());
                }
            } else {
                out.push("  a team member answers".into());
            }
        } else {
            out.push(format!("  nobody answers (DialCallStatus={dial_status})"));
        }
        let reply = twilio
            .post(
                "/webhooks/twilio/voice/dial-status",
                &[
                    ("DialCallStatus", &dial_status),
                    ("CallStatus", "in-progress"),
                ],
            )
            .await?;
        if reply.contains("<Record") {
            out.push("  the caller hears the voicemail greeting".into());
        }
    }
    twilio
        .post(
            "/webhooks/twilio/voice/status",
            &[("CallStatus", "completed"), ("CallDuration", "30")],
        )
        .await?;

    // Wait for the server's workers to decide and send.
    let deadline = Instant::now() + sim.wait;
    loop {
        let call = store.call_by_carrier_id(&twilio.call_sid).await?;
        let settled = call.as_ref().is_some_and(|c| {
            c.outcome.as_deref() == Some("answered")
                || matches!(
                    c.text_back_status.as_deref(),
                    Some("sent" | "skipped" | "failed" | "canceled")
                )
        });
        if settled || Instant::now() >= deadline {
            match call {
                None => out.push("  the server has no record of the call".into()),
                Some(c) => {
                    out.push(format!(
                        "  outcome: {}",
                        c.outcome.as_deref().unwrap_or("not settled")
                    ));
                    if c.outcome.as_deref() != Some("answered") {
                        let status = c.text_back_status.as_deref().unwrap_or("pending");
                        let reason = c
                            .text_back_reason
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default();
                        out.push(format!(
                            "  text back: {status}{reason} after {} ms",
                            started.elapsed().as_millis()
                        ));
                        for m in store.messages_for_call(c.id).await? {
                            out.push(format!(
                                "  text to {} from {} via {} [{}]: {}",
                                m.to, m.from, m.carrier, m.status, m.body
                            ));
                        }
                    }
                }
            }
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
