//! The resources of `/api/v1`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use textback_core::Phone;
use textback_store::{CallView, ContactView, MessageView, TaskFilter};

use super::error::{ApiQuery, OptionalJson, json_rejection};
use super::{ApiAccount, ApiError, PageQuery, page, time};
use crate::AppState;
use crate::replies::ReplyError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(account).patch(update_account))
        .route("/numbers", get(numbers))
        .route("/contacts", get(contacts).post(create_contact))
        .route("/contacts/import", post(import_contacts))
        .route("/contacts/export", get(export_contacts))
        .route("/contacts/{id}", get(contact).patch(update_contact))
        .route("/contacts/{id}/tags", post(add_tag))
        .route("/contacts/{id}/tags/{tag}", delete(remove_tag))
        .route("/contacts/{id}/opt-out", post(opt_out))
        .route("/contacts/{id}/opt-in", post(opt_in))
        .route("/contacts/{id}/consent", get(consent))
        .route("/calls", get(calls))
        .route("/calls/{id}", get(call))
        .route("/conversations", get(conversations))
        .route(
            "/conversations/{id}/messages",
            get(messages).post(send_message),
        )
        .route("/tasks", get(tasks))
        .route("/tasks/{id}/complete", post(complete_task))
        .route("/webhooks", get(webhooks).post(create_webhook))
        .route("/webhooks/deliveries", get(deliveries))
        .route("/webhooks/{id}", delete(delete_webhook))
        .route("/reports", get(reports))
        .route("/smart-lists", get(smart_lists).post(save_smart_list))
        .route("/smart-lists/{id}", delete(delete_smart_list))
        .route("/smart-lists/{id}/members", get(smart_list_members))
        .route("/workflows", get(workflows).post(create_workflow))
        .route("/workflows/{id}", axum::routing::put(update_workflow))
        .route("/workflows/{id}/activate", post(activate_workflow))
        .route("/workflows/{id}/deactivate", post(deactivate_workflow))
        .route("/workflows/{id}/runs", get(runs))
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn id_param(raw: &str, what: &'static str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound(what))
}

fn contact_json(c: &ContactView) -> Value {
    json!({
        "id": c.id,
        "phone": c.phone,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "tags": c.tags,
        "opted_out": c.opted_out,
        "textable": c.textable,
        "created_at": time(Some(c.created_at_ms)),
        "last_replied_at": time(c.last_replied_at_ms),
    })
}

fn call_json(c: &CallView) -> Value {
    json!({
        "id": c.id,
        "carrier_call_id": c.carrier_call_id,
        "caller": c.caller,
        "number": c.number,
        "contact_id": c.contact_id,
        "status": c.status,
        "dial_status": c.dial_status,
        "outcome": c.outcome,
        "started_at": time(Some(c.started_at_ms)),
        "text_back": { "status": c.text_back_status, "reason": c.text_back_reason },
        "voicemail_url": c.recording_url,
        "voicemail_transcript": c.voicemail_transcript,
    })
}

fn message_json(m: &MessageView) -> Value {
    json!({
        "id": m.id,
        "kind": m.kind,
        "direction": m.direction,
        "from": m.from,
        "to": m.to,
        "body": m.body,
        "status": m.status,
        "carrier_status": m.carrier_status,
        "error_code": m.error_code,
        "error_message": m.error_message,
        "media": m.media,
        "segments": m.segments,
        "created_at": time(Some(m.created_at_ms)),
    })
}

fn phone(field: &str, raw: &str) -> Result<String, ApiError> {
    Phone::parse_in(raw, phonenumber_us())
        .map(|p| p.to_string())
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Numbers without a country code are read as US numbers (the carriers Textback speaks
/// to are North American first).
fn phonenumber_us() -> textback_core::phone::Country {
    textback_core::phone::Country::US
}

async fn account(State(state): State<AppState>, ApiAccount(account): ApiAccount) -> ApiResult {
    ok(account_json(&state, account).await?)
}

async fn numbers(State(state): State<AppState>, ApiAccount(account): ApiAccount) -> ApiResult {
    let list: Vec<Value> = state
        .store
        .numbers_of_account(account)
        .await?
        .into_iter()
        .map(|n| {
            json!({
                "id": n.id,
                "number": n.e164,
                "carrier": n.carrier,
                "ring": n.ring_to,
                "ring_seconds": n.ring_seconds,
                "call_screening": n.call_screening,
                "active": n.active,
                "registration": n.registration,
            })
        })
        .collect();
    ok(json!({ "data": list, "next_cursor": null }))
}

#[derive(Debug, Deserialize)]
struct ContactFilter {
    phone: Option<String>,
    tag: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn contacts(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<ContactFilter>,
) -> ApiResult {
    let (before, limit) = q.page.parse()?;
    let phone = match q.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        Some(p) => Some(phone("phone", p)?),
        None => None,
    };
    let list = state
        .store
        .contacts_page(account, phone.as_deref(), q.tag.as_deref(), before, limit)
        .await?;
    let items: Vec<Value> = list.iter().map(contact_json).collect();
    ok(page(items, |v| v["id"].as_i64().unwrap_or(0), limit))
}

async fn contact(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "contact")?;
    let c = state
        .store
        .contact(account, id)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    ok(contact_json(&c))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewContact {
    phone: String,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

fn name(field: &str, v: Option<&str>) -> Result<Option<String>, ApiError> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > 100 => {
            Err(ApiError::invalid(field, "at most 100 characters"))
        }
        Some(n) if n.contains(['{', '}']) => {
            Err(ApiError::invalid(field, "names cannot contain { or }"))
        }
        Some(n) => Ok(Some(n.to_owned())),
    }
}

fn tag(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 64 {
        return Err(ApiError::invalid("tag", "a tag is 1 to 64 characters"));
    }
    Ok(t.to_owned())
}

async fn create_contact(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    body: Result<Json<NewContact>, JsonRejection>,
) -> ApiResult {
    let Json(c) = body.map_err(json_rejection)?;
    let phone = phone("phone", &c.phone)?;
    let first = name("first_name", c.first_name.as_deref())?;
    let last = name("last_name", c.last_name.as_deref())?;
    let tags = c
        .tags
        .iter()
        .map(|t| tag(t))
        .collect::<Result<Vec<_>, _>>()?;
    let id = state
        .store
        .create_contact(
            account,
            &phone,
            first.as_deref(),
            last.as_deref(),
            &tags,
            state.now_ms(),
        )
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!("a contact with phone {phone} already exists"))
        })?;
    let created = state
        .store
        .contact(account, id)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    Ok((StatusCode::CREATED, Json(contact_json(&created))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactPatch {
    #[serde(default, with = "double_option")]
    first_name: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    last_name: Option<Option<String>>,
}

/// `null` clears a field, leaving it out keeps it.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

async fn update_contact(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    body: Result<Json<ContactPatch>, JsonRejection>,
) -> ApiResult {
    let id = id_param(&id, "contact")?;
    let Json(p) = body.map_err(json_rejection)?;
    let first = match &p.first_name {
        Some(v) => Some(name("first_name", v.as_deref())?),
        None => None,
    };
    let last = match &p.last_name {
        Some(v) => Some(name("last_name", v.as_deref())?),
        None => None,
    };
    let found = state
        .store
        .update_contact(
            account,
            id,
            first.as_ref().map(|o| o.as_deref()),
            last.as_ref().map(|o| o.as_deref()),
            state.now_ms(),
        )
        .await?;
    if !found {
        return Err(ApiError::NotFound("contact"));
    }
    contact(State(state), ApiAccount(account), Path(id.to_string())).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagBody {
    tag: String,
}

async fn add_tag(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    body: Result<Json<TagBody>, JsonRejection>,
) -> ApiResult {
    let id = id_param(&id, "contact")?;
    let Json(b) = body.map_err(json_rejection)?;
    let t = tag(&b.tag)?;
    if !state
        .store
        .tag_contact(account, id, &t, true, state.now_ms())
        .await?
    {
        return Err(ApiError::NotFound("contact"));
    }
    contact(State(state), ApiAccount(account), Path(id.to_string())).await
}

async fn remove_tag(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path((id, t)): Path<(String, String)>,
) -> ApiResult {
    let id = id_param(&id, "contact")?;
    if !state
        .store
        .tag_contact(account, id, &tag(&t)?, false, state.now_ms())
        .await?
    {
        return Err(ApiError::NotFound("contact"));
    }
    contact(State(state), ApiAccount(account), Path(id.to_string())).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    /// What the business's own record says (a signed form, a call).
    note: Option<String>,
}

async fn set_consent(
    state: AppState,
    account: i64,
    id: String,
    opted_out: bool,
    body: OptionalJson<ConsentBody>,
) -> ApiResult {
    let id = id_param(&id, "contact")?;
    let note = body.0.and_then(|b| b.note).filter(|n| !n.trim().is_empty());
    if !state
        .store
        .set_consent(
            account,
            id,
            opted_out,
            "api",
            note.as_deref(),
            state.now_ms(),
        )
        .await?
    {
        return Err(ApiError::NotFound("contact"));
    }
    contact(State(state), ApiAccount(account), Path(id.to_string())).await
}

async fn opt_out(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    body: OptionalJson<ConsentBody>,
) -> ApiResult {
    set_consent(state, account, id, true, body).await
}

async fn opt_in(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    body: OptionalJson<ConsentBody>,
) -> ApiResult {
    set_consent(state, account, id, false, body).await
}

async fn consent(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "contact")?;
    let c = state
        .store
        .contact(account, id)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    let history: Vec<Value> = state
        .store
        .consent_history(account, &c.phone)
        .await?
        .into_iter()
        .map(|e| json!({"opted_out": e.opted_out, "source": e.source, "detail": e.detail, "at": time(Some(e.at_ms))}))
        .collect();
    ok(json!({ "data": history, "next_cursor": null }))
}

async fn calls(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let (before, limit) = q.parse()?;
    let items: Vec<Value> = state
        .store
        .calls_page(account, before, limit)
        .await?
        .iter()
        .map(call_json)
        .collect();
    ok(page(items, |v| v["id"].as_i64().unwrap_or(0), limit))
}

async fn call(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "call")?;
    let c = state
        .store
        .call(account, id)
        .await?
        .ok_or(ApiError::NotFound("call"))?;
    ok(call_json(&c))
}

async fn conversations(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let (before, limit) = q.parse()?;
    let items: Vec<Value> = state
        .store
        .conversations_page(account, before, limit)
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "number": c.number,
                "contact_id": c.contact_id,
                "contact_phone": c.contact_phone,
                "last_message_at": time(Some(c.last_message_at_ms)),
                "last_inbound_at": time(c.last_inbound_at_ms),
            })
        })
        .collect();
    ok(page(items, |v| v["id"].as_i64().unwrap_or(0), limit))
}

async fn messages(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult {
    let id = id_param(&id, "conversation")?;
    let (before, limit) = q.parse()?;
    state
        .store
        .conversation_parties(account, id)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    let items: Vec<Value> = state
        .store
        .conversation_messages(account, id, before, limit)
        .await?
        .iter()
        .map(message_json)
        .collect();
    ok(page(items, |v| v["id"].as_i64().unwrap_or(0), limit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    body: String,
}

/// A team reply into the conversation, through the outbox (`Idempotency-Key` is honoured,
/// as on every POST).
async fn send_message(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    body: Result<Json<NewMessage>, JsonRejection>,
) -> ApiResult {
    let id = id_param(&id, "conversation")?;
    let Json(m) = body.map_err(json_rejection)?;
    let text = m.body.trim();
    let message_id = match crate::replies::reply(&state, account, id, text).await {
        Ok(id) => id,
        Err(ReplyError::Empty) => return Err(ApiError::invalid("body", "the message is empty")),
        Err(ReplyError::TooLong) => {
            return Err(ApiError::invalid(
                "body",
                format!("at most {} characters", crate::replies::MAX_CHARS),
            ));
        }
        Err(ReplyError::NoConversation) => return Err(ApiError::NotFound("conversation")),
        Err(ReplyError::Refused(r)) => return Err(ApiError::Conflict(r.to_string())),
        Err(ReplyError::Store(e)) => return Err(e.into()),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": message_id, "status": "pending", "body": text })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct TaskQuery {
    status: Option<String>,
    assignee: Option<String>,
}

async fn tasks(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<TaskQuery>,
) -> ApiResult {
    let filter = match q.status.as_deref().unwrap_or("open") {
        "open" => TaskFilter::Open,
        "overdue" => TaskFilter::OverdueAt(state.now_ms()),
        "all" => TaskFilter::All,
        other => {
            return Err(ApiError::invalid(
                "status",
                format!("{other:?} is not one of open, overdue, all"),
            ));
        }
    };
    let slug = state
        .store
        .account_by_id(account)
        .await?
        .ok_or(ApiError::NotFound("account"))?
        .slug;
    let items: Vec<Value> = state
        .store
        .tasks(Some(&slug), filter, super::MAX_LIMIT)
        .await?
        .into_iter()
        .filter(|t| {
            q.assignee
                .as_deref()
                .is_none_or(|a| t.assignee.as_deref() == Some(a))
        })
        .map(|t| {
            json!({
                "id": t.id,
                "title": t.title,
                "contact_phone": t.contact_phone,
                "due_at": time(Some(t.due_at_ms)),
                "assignee": t.assignee,
                "status": t.status,
                "call_id": t.call_id,
                "voicemail_url": t.recording_url,
                "voicemail_transcript": t.voicemail_transcript,
                "created_at": time(Some(t.created_at_ms)),
            })
        })
        .collect();
    ok(json!({ "data": items, "next_cursor": null }))
}

async fn complete_task(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "task")?;
    if state.store.task_account(id).await? != Some(account) {
        return Err(ApiError::NotFound("task"));
    }
    let done = state.store.complete_task(id, state.now_ms()).await?;
    ok(json!({ "id": id, "status": "done", "changed": done }))
}

async fn workflows(State(state): State<AppState>, ApiAccount(account): ApiAccount) -> ApiResult {
    let items: Vec<Value> = state
        .store
        .workflows_of_account(account)
        .await?
        .into_iter()
        .map(|w| {
            let spec: Value = serde_json::from_str(&w.spec).unwrap_or(Value::Null);
            json!({"id": w.id, "name": w.name, "builtin": w.builtin, "active": w.active, "version": w.version, "spec": spec})
        })
        .collect();
    ok(json!({ "data": items, "next_cursor": null }))
}

async fn runs(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "workflow")?;
    let name = state
        .store
        .workflows_of_account(account)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or(ApiError::NotFound("workflow"))?
        .name;
    let items: Vec<Value> = state
        .store
        .runs(account, super::MAX_LIMIT)
        .await?
        .into_iter()
        .filter(|r| r.workflow == name)
        .map(|r| {
            json!({
                "id": r.id,
                "version": r.version,
                "trigger": r.trigger,
                "contact_phone": r.contact_phone,
                "status": r.status,
                "stop_reason": r.stop_reason,
                "resume_at": time(r.resume_at_ms),
                "started_at": time(Some(r.started_at_ms)),
                "log": r.log.iter().map(|(place, what)| json!({"step": place, "what": what})).collect::<Vec<_>>(),
            })
        })
        .collect();
    ok(json!({ "data": items, "next_cursor": null }))
}

async fn webhooks(State(state): State<AppState>, ApiAccount(account): ApiAccount) -> ApiResult {
    let subs = state.store.subscriptions(account).await?;
    let secret = crate::deliver::account_secret(&state.store, account).await?;
    let data: Vec<Value> = subs
        .into_iter()
        .filter(|s| s.active)
        .map(|s| json!({"id": s.id, "url": s.url, "events": s.events}))
        .collect();
    ok(
        json!({ "data": data, "next_cursor": null, "signing_secret": secret, "event_types": textback_store::EVENT_TYPES }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    events: Vec<String>,
}

/// Checks a subscription: an http(s) URL and known event types.
pub fn check_subscription(url: &str, events: &[String]) -> Result<(), ApiError> {
    match crate::deliver::subscription_problem(url, events) {
        Some((field, why)) => Err(ApiError::invalid(field, why)),
        None => Ok(()),
    }
}

async fn create_webhook(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    body: Result<Json<NewWebhook>, JsonRejection>,
) -> ApiResult {
    let Json(w) = body.map_err(json_rejection)?;
    check_subscription(&w.url, &w.events)?;
    let id = state
        .store
        .save_subscription(account, &w.url, &w.events, true, state.now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "url": w.url, "events": w.events})),
    )
        .into_response())
}

async fn delete_webhook(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "webhook")?;
    if !state.store.delete_subscription(account, id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn deliveries(State(state): State<AppState>, ApiAccount(account): ApiAccount) -> ApiResult {
    let data: Vec<Value> = state
        .store
        .deliveries(account, super::MAX_LIMIT)
        .await?
        .into_iter()
        .map(|d| json!({"id": d.id, "url": d.url, "status": d.status, "attempts": d.attempts, "response_status": d.response_status, "last_error": d.last_error}))
        .collect();
    ok(json!({ "data": data, "next_cursor": null }))
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    days: Option<String>,
}

async fn reports(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult {
    let days = match q.days.as_deref() {
        Some(d) => d
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=366).contains(n))
            .ok_or_else(|| ApiError::invalid("days", "a whole number from 1 to 366"))?,
        None => 7,
    };
    let report = crate::reports::build(&state.store, account, days, state.now_ms())
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    ok(report)
}

#[derive(Debug, Deserialize)]
struct ImportQuery {
    dry_run: Option<bool>,
}

/// `text/csv` body: `phone,first_name,last_name,tags`. Rows with errors are reported with
/// their line and skipped; `?dry_run=true` checks without writing.
async fn import_contacts(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: axum::body::Bytes,
) -> ApiResult {
    let (rows, errors) =
        crate::contacts_io::parse(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let (created, updated) = if q.dry_run.unwrap_or(false) {
        (0, 0)
    } else {
        state
            .store
            .import_contacts(account, &rows, state.now_ms())
            .await?
    };
    ok(json!({
        "dry_run": q.dry_run.unwrap_or(false),
        "valid_rows": rows.len(),
        "created": created,
        "updated": updated,
        "errors": errors,
    }))
}

#[derive(Debug, Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

async fn export_contacts(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult {
    let all = crate::smart_lists::all_contacts(&state.store, account).await?;
    match q.format.as_deref().unwrap_or("csv") {
        "csv" => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::contacts_io::to_csv(&all),
        )
            .into_response()),
        "json" => ok(json!({ "data": all.iter().map(contact_json).collect::<Vec<_>>() })),
        other => Err(ApiError::invalid(
            "format",
            format!("{other:?}: use csv or json"),
        )),
    }
}

/// Every contact of the account, page by page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBackPatch {
    enabled: Option<bool>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountPatch {
    name: Option<String>,
    #[serde(default, with = "double_option")]
    booking_link: Option<Option<String>>,
    time_zone: Option<String>,
    business_hours: Option<std::collections::BTreeMap<String, String>>,
    quiet_hours: Option<String>,
    /// A duration such as `15m`.
    cooldown: Option<String>,
    text_back: Option<TextBackPatch>,
    do_not_text: Option<Vec<String>>,
    landline_lookup: Option<bool>,
}

/// Lint errors reject a message; warnings are returned with the saved object.
fn lint_message(
    field: &str,
    text: &str,
    kind: textback_core::lint::MessageKind,
    business: &str,
) -> Result<Vec<Value>, ApiError> {
    use textback_core::lint::{LintInput, Severity, lint};
    let report = lint(&LintInput {
        text,
        kind,
        business_name: Some(business),
        booking_link: None,
    });
    if let Some(e) = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
    {
        return Err(ApiError::invalid(
            field,
            format!("{}: {}", e.rule, e.message),
        ));
    }
    Ok(report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| json!({"field": field, "rule": f.rule, "message": f.message}))
        .collect())
}

async fn update_account(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    body: Result<Json<AccountPatch>, JsonRejection>,
) -> ApiResult {
    use crate::account_settings::{SettingsChange, apply, save};
    let Json(p) = body.map_err(json_rejection)?;
    let mut a = state
        .store
        .account_by_id(account)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    let change = SettingsChange {
        name: p.name,
        booking_link: p.booking_link,
        time_zone: p.time_zone,
        business_hours: p.business_hours,
        quiet_hours: p.quiet_hours,
        cooldown: p.cooldown,
        text_back_message: p.text_back.as_ref().and_then(|t| t.message.clone()),
        text_back_enabled: p.text_back.as_ref().and_then(|t| t.enabled),
        do_not_text: p.do_not_text,
        landline_lookup: p.landline_lookup,
    };
    let warnings: Vec<Value> = apply(&mut a, &change)
        .map_err(|e| ApiError::invalid(&e.field, e.message))?
        .iter()
        .map(|f| json!({"field": "text_back.message", "rule": f.rule, "message": f.message}))
        .collect();
    save(&state, &a, &change).await?;
    let mut out = match account_json(&state, account).await? {
        Value::Object(o) => o,
        _ => serde_json::Map::new(),
    };
    out.insert("warnings".into(), Value::Array(warnings));
    ok(Value::Object(out))
}

async fn account_json(state: &AppState, account: i64) -> Result<Value, ApiError> {
    let a = state
        .store
        .account_by_id(account)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    Ok(json!({
        "slug": a.slug,
        "name": a.name,
        "time_zone": a.time_zone,
        "booking_link": a.booking_link,
        "business_hours": a.business_hours,
        "quiet_hours": a.quiet_hours,
        "cooldown": textback_core::HumanDuration::from_secs(a.cooldown_secs.max(0) as u64).to_string(),
        "text_back": { "enabled": a.text_back_enabled, "message": a.text_back_template },
        "do_not_text": a.do_not_text,
        "landline_lookup": a.landline_lookup,
    }))
}

/// Checks a workflow spec like `apply` does: compiles, and lints every message.
fn check_workflow(
    spec: &textback_core::workflow::WorkflowSpec,
    business: &str,
) -> Result<Vec<Value>, ApiError> {
    use textback_core::workflow::{BUILTIN_NAME, TriggerSpec, Workflow, messages_of};
    if spec.name.trim() == BUILTIN_NAME {
        return Err(ApiError::invalid(
            "name",
            "that is the built-in text back's name; change it through PATCH /account",
        ));
    }
    Workflow::from_spec(spec).map_err(|e| ApiError::invalid(e.place.clone(), e.why))?;
    let missed = matches!(spec.trigger, TriggerSpec::MissedCall { .. });
    let mut warnings = Vec::new();
    for m in messages_of(&spec.steps, missed) {
        warnings.extend(lint_message(&m.field, m.text, m.kind, business)?);
    }
    Ok(warnings)
}

async fn save_workflow_spec(
    state: &AppState,
    account: i64,
    spec: textback_core::workflow::WorkflowSpec,
    created: bool,
) -> ApiResult {
    let business = state
        .store
        .account_by_id(account)
        .await?
        .ok_or(ApiError::NotFound("account"))?
        .name;
    let warnings = check_workflow(&spec, &business)?;
    let mut spec = spec;
    spec.name = spec.name.trim().to_owned();
    let change = state
        .store
        .save_workflow_by(
            account,
            &spec.name,
            false,
            spec.active,
            &spec.versioned_json(),
            state.now_ms(),
            Some("API"),
        )
        .await?;
    let w = state
        .store
        .workflows_of_account(account)
        .await?
        .into_iter()
        .find(|w| w.name == spec.name)
        .ok_or(ApiError::NotFound("workflow"))?;
    let status = if created && change == textback_store::WorkflowChange::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({"id": w.id, "name": w.name, "active": w.active, "version": w.version, "warnings": warnings});
    Ok((status, Json(body)).into_response())
}

async fn create_workflow(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    body: Result<Json<textback_core::workflow::WorkflowSpec>, JsonRejection>,
) -> ApiResult {
    let Json(spec) = body.map_err(json_rejection)?;
    if state
        .store
        .workflows_of_account(account)
        .await?
        .iter()
        .any(|w| w.name == spec.name.trim())
    {
        return Err(ApiError::Conflict(format!(
            "a workflow named {:?} exists; PUT /workflows/{{id}} to change it",
            spec.name.trim()
        )));
    }
    save_workflow_spec(&state, account, spec, true).await
}

/// A changed spec becomes a new version; runs under way finish on theirs.
async fn update_workflow(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
    body: Result<Json<textback_core::workflow::WorkflowSpec>, JsonRejection>,
) -> ApiResult {
    let id = id_param(&id, "workflow")?;
    let Json(mut spec) = body.map_err(json_rejection)?;
    let current = state
        .store
        .workflows_of_account(account)
        .await?
        .into_iter()
        .find(|w| w.id == id && !w.builtin)
        .ok_or(ApiError::NotFound("workflow"))?;
    // The name identifies the workflow; it is kept.
    spec.name = current.name;
    save_workflow_spec(&state, account, spec, false).await
}

async fn set_active(state: AppState, account: i64, id: String, active: bool) -> ApiResult {
    let id = id_param(&id, "workflow")?;
    let w = state
        .store
        .workflows_of_account(account)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or(ApiError::NotFound("workflow"))?;
    state
        .store
        .save_workflow(account, &w.name, w.builtin, active, &w.spec, state.now_ms())
        .await?;
    ok(json!({"id": w.id, "name": w.name, "active": active, "version": w.version}))
}

async fn activate_workflow(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    set_active(state, account, id, true).await
}

async fn deactivate_workflow(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    set_active(state, account, id, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSmartList {
    name: String,
    filter: textback_core::smart_list::Filter,
}

async fn smart_lists(State(state): State<AppState>, ApiAccount(account): ApiAccount) -> ApiResult {
    let data: Vec<Value> = state
        .store
        .smart_lists(account)
        .await?
        .into_iter()
        .map(|l| json!({"id": l.id, "name": l.name, "filter": serde_json::from_str::<Value>(&l.filter).unwrap_or(Value::Null)}))
        .collect();
    ok(json!({ "data": data, "next_cursor": null }))
}

async fn save_smart_list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    body: Result<Json<NewSmartList>, JsonRejection>,
) -> ApiResult {
    let Json(l) = body.map_err(json_rejection)?;
    let name = l.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "a name of 1 to 100 characters"));
    }
    let filter = serde_json::to_string(&l.filter).unwrap_or_default();
    let id = state
        .store
        .save_smart_list(account, name, &filter, state.now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": name, "filter": l.filter})),
    )
        .into_response())
}

async fn delete_smart_list(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    let id = id_param(&id, "smart list")?;
    if !state.store.delete_smart_list(account, id).await? {
        return Err(ApiError::NotFound("smart list"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn smart_list_members(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    Path(id): Path<String>,
) -> ApiResult {
    use textback_core::smart_list::Filter;
    let id = id_param(&id, "smart list")?;
    let list = state
        .store
        .smart_lists(account)
        .await?
        .into_iter()
        .find(|l| l.id == id)
        .ok_or(ApiError::NotFound("smart list"))?;
    let filter: Filter = serde_json::from_str(&list.filter)
        .map_err(|e| ApiError::Malformed(format!("stored filter: {e}")))?;
    let members: Vec<Value> =
        crate::smart_lists::members(&state.store, account, &filter, state.now_ms())
            .await?
            .iter()
            .map(contact_json)
            .collect();
    ok(json!({ "data": members, "next_cursor": null }))
}
