//! The OpenAPI 3.1 description of `/api/v1`, built from the operation table below (the
//! same table a test checks against the router, so the two cannot drift), served at
//! `/api/v1/openapi.json`, and a plain reference page at `/api/v1/docs`.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

/// One operation: method, path, summary, tag, query parameters, request body schema,
/// success status and response schema.
pub struct Op {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub query: &'static [(&'static str, &'static str)],
    pub body: Option<&'static str>,
    pub status: u16,
    pub response: &'static str,
}

const PAGE: &[(&str, &str)] = &[("cursor", "string"), ("limit", "integer")];

pub const OPERATIONS: &[Op] = &[
    Op {
        method: "get",
        path: "/account",
        summary: "The account's settings",
        tag: "account",
        query: &[],
        body: None,
        status: 200,
        response: "Account",
    },
    Op {
        method: "patch",
        path: "/account",
        summary: "Change settings (business info, hours, quiet hours, cooldown, text back, do-not-text)",
        tag: "account",
        query: &[],
        body: Some("AccountPatch"),
        status: 200,
        response: "Account",
    },
    Op {
        method: "get",
        path: "/numbers",
        summary: "The account's phone numbers",
        tag: "account",
        query: &[],
        body: None,
        status: 200,
        response: "NumberPage",
    },
    Op {
        method: "get",
        path: "/contacts",
        summary: "Contacts, newest first; ?phone= in any common format, ?tag=",
        tag: "contacts",
        query: &[
            ("phone", "string"),
            ("tag", "string"),
            ("cursor", "string"),
            ("limit", "integer"),
        ],
        body: None,
        status: 200,
        response: "ContactPage",
    },
    Op {
        method: "post",
        path: "/contacts",
        summary: "Create a contact",
        tag: "contacts",
        query: &[],
        body: Some("NewContact"),
        status: 201,
        response: "Contact",
    },
    Op {
        method: "post",
        path: "/contacts/import",
        summary: "Import contacts from CSV (phone,first_name,last_name,tags)",
        tag: "contacts",
        query: &[("dry_run", "boolean")],
        body: Some("Csv"),
        status: 200,
        response: "ImportResult",
    },
    Op {
        method: "get",
        path: "/contacts/export",
        summary: "Export contacts as CSV or JSON",
        tag: "contacts",
        query: &[("format", "string")],
        body: None,
        status: 200,
        response: "ContactExport",
    },
    Op {
        method: "get",
        path: "/contacts/{id}",
        summary: "One contact",
        tag: "contacts",
        query: &[],
        body: None,
        status: 200,
        response: "Contact",
    },
    Op {
        method: "patch",
        path: "/contacts/{id}",
        summary: "Change a contact's names (null clears)",
        tag: "contacts",
        query: &[],
        body: Some("ContactPatch"),
        status: 200,
        response: "Contact",
    },
    Op {
        method: "post",
        path: "/contacts/{id}/tags",
        summary: "Add a tag",
        tag: "contacts",
        query: &[],
        body: Some("Tag"),
        status: 200,
        response: "Contact",
    },
    Op {
        method: "delete",
        path: "/contacts/{id}/tags/{tag}",
        summary: "Remove a tag",
        tag: "contacts",
        query: &[],
        body: None,
        status: 200,
        response: "Contact",
    },
    Op {
        method: "post",
        path: "/contacts/{id}/opt-out",
        summary: "Record an opt-out from the business's own records",
        tag: "contacts",
        query: &[],
        body: Some("ConsentNote"),
        status: 200,
        response: "Contact",
    },
    Op {
        method: "post",
        path: "/contacts/{id}/opt-in",
        summary: "Record an opt-in from the business's own records",
        tag: "contacts",
        query: &[],
        body: Some("ConsentNote"),
        status: 200,
        response: "Contact",
    },
    Op {
        method: "get",
        path: "/contacts/{id}/consent",
        summary: "Consent history with time and source",
        tag: "contacts",
        query: &[],
        body: None,
        status: 200,
        response: "ConsentPage",
    },
    Op {
        method: "get",
        path: "/calls",
        summary: "Calls, newest first, with outcome and text back",
        tag: "calls",
        query: PAGE,
        body: None,
        status: 200,
        response: "CallPage",
    },
    Op {
        method: "get",
        path: "/calls/{id}",
        summary: "One call",
        tag: "calls",
        query: &[],
        body: None,
        status: 200,
        response: "Call",
    },
    Op {
        method: "get",
        path: "/conversations",
        summary: "Conversations, newest first",
        tag: "conversations",
        query: PAGE,
        body: None,
        status: 200,
        response: "ConversationPage",
    },
    Op {
        method: "get",
        path: "/conversations/{id}/messages",
        summary: "A conversation's messages, newest first",
        tag: "conversations",
        query: PAGE,
        body: None,
        status: 200,
        response: "MessagePage",
    },
    Op {
        method: "post",
        path: "/conversations/{id}/messages",
        summary: "Reply (honours Idempotency-Key)",
        tag: "conversations",
        query: &[],
        body: Some("NewMessage"),
        status: 202,
        response: "Queued",
    },
    Op {
        method: "get",
        path: "/tasks",
        summary: "Tasks: ?status=open|overdue|all, ?assignee=",
        tag: "tasks",
        query: &[("status", "string"), ("assignee", "string")],
        body: None,
        status: 200,
        response: "TaskPage",
    },
    Op {
        method: "post",
        path: "/tasks/{id}/complete",
        summary: "Mark a task done",
        tag: "tasks",
        query: &[],
        body: None,
        status: 200,
        response: "Done",
    },
    Op {
        method: "get",
        path: "/webhooks",
        summary: "Event webhook subscriptions and the signing secret",
        tag: "webhooks",
        query: &[],
        body: None,
        status: 200,
        response: "WebhookPage",
    },
    Op {
        method: "post",
        path: "/webhooks",
        summary: "Subscribe a URL to events",
        tag: "webhooks",
        query: &[],
        body: Some("NewWebhook"),
        status: 201,
        response: "Webhook",
    },
    Op {
        method: "get",
        path: "/webhooks/deliveries",
        summary: "The delivery log",
        tag: "webhooks",
        query: &[],
        body: None,
        status: 200,
        response: "DeliveryPage",
    },
    Op {
        method: "delete",
        path: "/webhooks/{id}",
        summary: "Unsubscribe",
        tag: "webhooks",
        query: &[],
        body: None,
        status: 204,
        response: "",
    },
    Op {
        method: "get",
        path: "/reports",
        summary: "The funnel by day, median times, variants (?days=1..366)",
        tag: "reports",
        query: &[("days", "integer")],
        body: None,
        status: 200,
        response: "Report",
    },
    Op {
        method: "get",
        path: "/smart-lists",
        summary: "Saved contact filters",
        tag: "smart lists",
        query: &[],
        body: None,
        status: 200,
        response: "SmartListPage",
    },
    Op {
        method: "post",
        path: "/smart-lists",
        summary: "Save a contact filter",
        tag: "smart lists",
        query: &[],
        body: Some("NewSmartList"),
        status: 201,
        response: "SmartList",
    },
    Op {
        method: "delete",
        path: "/smart-lists/{id}",
        summary: "Delete a smart list",
        tag: "smart lists",
        query: &[],
        body: None,
        status: 204,
        response: "",
    },
    Op {
        method: "get",
        path: "/smart-lists/{id}/members",
        summary: "The contacts a smart list matches now",
        tag: "smart lists",
        query: &[],
        body: None,
        status: 200,
        response: "ContactPage",
    },
    Op {
        method: "get",
        path: "/workflows",
        summary: "Workflows at their current version",
        tag: "workflows",
        query: &[],
        body: None,
        status: 200,
        response: "WorkflowPage",
    },
    Op {
        method: "post",
        path: "/workflows",
        summary: "Create a workflow (spec as in docs/workflows.md)",
        tag: "workflows",
        query: &[],
        body: Some("WorkflowSpec"),
        status: 201,
        response: "WorkflowSaved",
    },
    Op {
        method: "put",
        path: "/workflows/{id}",
        summary: "Change a workflow: a new version",
        tag: "workflows",
        query: &[],
        body: Some("WorkflowSpec"),
        status: 200,
        response: "WorkflowSaved",
    },
    Op {
        method: "post",
        path: "/workflows/{id}/activate",
        summary: "Switch a workflow on",
        tag: "workflows",
        query: &[],
        body: None,
        status: 200,
        response: "WorkflowSaved",
    },
    Op {
        method: "post",
        path: "/workflows/{id}/deactivate",
        summary: "Switch a workflow off",
        tag: "workflows",
        query: &[],
        body: None,
        status: 200,
        response: "WorkflowSaved",
    },
    Op {
        method: "get",
        path: "/workflows/{id}/runs",
        summary: "Recent runs and what each step did",
        tag: "workflows",
        query: &[],
        body: None,
        status: 200,
        response: "RunPage",
    },
];

fn s(t: &str) -> Value {
    json!({ "type": t })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn page(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": { "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } },
            "next_cursor": nullable("string"),
        }
    })
}

fn object(props: Value) -> Value {
    json!({ "type": "object", "properties": props })
}

fn schemas() -> Value {
    json!({
        "Problem": object(json!({
            "type": s("string"), "title": s("string"), "status": s("integer"), "detail": s("string"), "field": s("string"),
        })),
        "Account": object(json!({
            "slug": s("string"), "name": s("string"), "time_zone": s("string"), "booking_link": nullable("string"),
            "business_hours": { "type": "object", "additionalProperties": s("string") }, "quiet_hours": s("string"),
            "cooldown": s("string"), "text_back": object(json!({"enabled": s("boolean"), "message": s("string")})),
            "do_not_text": { "type": "array", "items": s("string") }, "landline_lookup": s("boolean"),
        })),
        "AccountPatch": json!({"type": "object", "additionalProperties": false, "properties": {
            "name": s("string"), "booking_link": nullable("string"), "time_zone": s("string"),
            "business_hours": { "type": "object", "additionalProperties": s("string") }, "quiet_hours": s("string"),
            "cooldown": s("string"), "text_back": object(json!({"enabled": s("boolean"), "message": s("string")})),
            "do_not_text": { "type": "array", "items": s("string") }, "landline_lookup": s("boolean"),
        }}),
        "Number": object(json!({"id": s("integer"), "number": s("string"), "carrier": s("string"), "ring": {"type": "array", "items": s("string")}, "ring_seconds": s("integer"), "call_screening": s("boolean"), "active": s("boolean"), "registration": s("string")})),
        "NumberPage": page("Number"),
        "Contact": object(json!({
            "id": s("integer"), "phone": s("string"), "first_name": nullable("string"), "last_name": nullable("string"),
            "tags": { "type": "array", "items": s("string") }, "opted_out": s("boolean"), "textable": s("boolean"),
            "created_at": nullable("string"), "last_replied_at": nullable("string"),
        })),
        "ContactPage": page("Contact"),
        "NewContact": json!({"type": "object", "required": ["phone"], "additionalProperties": false, "properties": {
            "phone": s("string"), "first_name": nullable("string"), "last_name": nullable("string"), "tags": {"type": "array", "items": s("string")},
        }}),
        "ContactPatch": json!({"type": "object", "additionalProperties": false, "properties": {"first_name": nullable("string"), "last_name": nullable("string")}}),
        "Tag": json!({"type": "object", "required": ["tag"], "additionalProperties": false, "properties": {"tag": s("string")}}),
        "ConsentNote": json!({"type": "object", "additionalProperties": false, "properties": {"note": nullable("string")}}),
        "Consent": object(json!({"opted_out": s("boolean"), "source": s("string"), "detail": nullable("string"), "at": nullable("string")})),
        "ConsentPage": page("Consent"),
        "Csv": s("string"),
        "ImportResult": object(json!({"dry_run": s("boolean"), "valid_rows": s("integer"), "created": s("integer"), "updated": s("integer"), "errors": {"type": "array", "items": object(json!({"line": s("integer"), "error": s("string")}))}})),
        "ContactExport": s("string"),
        "Call": object(json!({
            "id": s("integer"), "carrier_call_id": s("string"), "caller": s("string"), "number": s("string"),
            "contact_id": nullable("integer"), "status": s("string"), "dial_status": nullable("string"), "outcome": nullable("string"),
            "started_at": nullable("string"), "text_back": object(json!({"status": nullable("string"), "reason": nullable("string")})),
            "voicemail_url": nullable("string"), "voicemail_transcript": nullable("string"),
        })),
        "CallPage": page("Call"),
        "Conversation": object(json!({"id": s("integer"), "number": s("string"), "contact_id": s("integer"), "contact_phone": s("string"), "last_message_at": nullable("string"), "last_inbound_at": nullable("string")})),
        "ConversationPage": page("Conversation"),
        "Message": object(json!({"id": s("integer"), "kind": s("string"), "direction": s("string"), "from": s("string"), "to": s("string"), "body": s("string"), "status": s("string"), "carrier_status": nullable("string"), "error_code": nullable("integer"), "error_message": nullable("string"), "media": {"type": "array", "items": s("string")}, "segments": nullable("integer"), "created_at": nullable("string")})),
        "MessagePage": page("Message"),
        "NewMessage": json!({"type": "object", "required": ["body"], "additionalProperties": false, "properties": {"body": s("string")}}),
        "Queued": object(json!({"id": s("integer"), "status": s("string"), "body": s("string")})),
        "Task": object(json!({"id": s("integer"), "title": s("string"), "contact_phone": nullable("string"), "due_at": nullable("string"), "assignee": nullable("string"), "status": s("string"), "call_id": nullable("integer"), "voicemail_url": nullable("string"), "voicemail_transcript": nullable("string"), "created_at": nullable("string")})),
        "TaskPage": page("Task"),
        "Done": object(json!({"id": s("integer"), "status": s("string"), "changed": s("boolean")})),
        "Webhook": object(json!({"id": s("integer"), "url": s("string"), "events": {"type": "array", "items": s("string")}})),
        "WebhookPage": page("Webhook"),
        "NewWebhook": json!({"type": "object", "required": ["url", "events"], "additionalProperties": false, "properties": {"url": s("string"), "events": {"type": "array", "items": s("string")}}}),
        "Delivery": object(json!({"id": s("integer"), "url": s("string"), "status": s("string"), "attempts": s("integer"), "response_status": nullable("integer"), "last_error": nullable("string")})),
        "DeliveryPage": page("Delivery"),
        "Report": { "type": "object" },
        "SmartList": object(json!({"id": s("integer"), "name": s("string"), "filter": {"type": "object"}})),
        "SmartListPage": page("SmartList"),
        "NewSmartList": json!({"type": "object", "required": ["name", "filter"], "additionalProperties": false, "properties": {"name": s("string"), "filter": {"type": "object"}}}),
        "Workflow": object(json!({"id": s("integer"), "name": s("string"), "builtin": s("boolean"), "active": s("boolean"), "version": s("integer"), "spec": {"type": ["object", "null"]}})),
        "WorkflowPage": page("Workflow"),
        "WorkflowSpec": json!({"type": "object", "required": ["name", "trigger", "steps"], "properties": {"name": s("string"), "trigger": {"type": "object"}, "steps": {"type": "array", "items": {"type": "object"}}}}),
        "WorkflowSaved": object(json!({"id": s("integer"), "name": s("string"), "active": s("boolean"), "version": s("integer")})),
        "Run": { "type": "object" },
        "RunPage": page("Run"),
    })
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPERATIONS {
        let mut params: Vec<Value> = Vec::new();
        for seg in op.path.split('/').filter(|p| p.starts_with('{')) {
            let name = seg.trim_matches(['{', '}']);
            let ty = if name == "id" { "integer" } else { "string" };
            params.push(json!({"name": name, "in": "path", "required": true, "schema": s(ty)}));
        }
        for (name, ty) in op.query {
            params.push(json!({"name": name, "in": "query", "required": false, "schema": s(ty)}));
        }
        if op.method == "post" && op.path == "/conversations/{id}/messages" {
            params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false, "schema": s("string")}));
        }
        let mut responses = serde_json::Map::new();
        let ok = if op.response.is_empty() {
            json!({ "description": "done" })
        } else if op.response == "Csv" || op.response == "ContactExport" {
            json!({ "description": "ok", "content": { "text/csv": { "schema": s("string") }, "application/json": { "schema": {"type": "object"} } } })
        } else {
            json!({ "description": "ok", "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{}", op.response) } } } })
        };
        responses.insert(op.status.to_string(), ok);
        responses.insert("400".into(), problem("malformed request"));
        responses.insert("401".into(), problem("missing or invalid API key"));
        responses.insert("404".into(), problem("no such object in this account"));
        responses.insert("409".into(), problem("conflict"));
        responses.insert("422".into(), problem("invalid field"));
        let mut operation = json!({
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": format!("{}_{}", op.method, op.path.replace(['/', '{', '}', '-'], "_").trim_matches('_')),
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = op.body {
            let content = if body == "Csv" {
                json!({ "text/csv": { "schema": s("string") } })
            } else {
                json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } } })
            };
            operation["requestBody"] =
                json!({ "required": !matches!(body, "ConsentNote"), "content": content });
        }
        let entry = paths
            .entry(format!("/api/v1{}", op.path))
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Textback API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Missed call text back. Authenticate with `Authorization: Bearer tbk_…` (textback api-key create). Lists are pages: `{\"data\": [...], \"next_cursor\": ...}`. Errors are application/problem+json; another account's ids answer 404.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        },
    })
}

pub async fn serve_document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document().to_string(),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A self-contained reference page (no scripts, no CDN).
pub async fn serve_docs() -> Html<String> {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Textback API reference</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .25rem}td{padding:.25rem .5rem;vertical-align:top}h2{margin-top:2rem}</style></head><body>\
         <h1>Textback API reference</h1><p>Authenticate with <code>Authorization: Bearer tbk_…</code>. \
         The machine-readable description is <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> (OpenAPI 3.1).</p>",
    );
    let mut tags: Vec<&str> = OPERATIONS.iter().map(|o| o.tag).collect();
    tags.dedup();
    for tag in tags {
        html.push_str(&format!("<h2>{}</h2><table>", escape(tag)));
        for op in OPERATIONS.iter().filter(|o| o.tag == tag) {
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td><code>/api/v1{}</code></td><td>{}</td></tr>",
                op.method.to_uppercase(),
                escape(op.path),
                escape(op.summary)
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>");
    Html(html)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::OPERATIONS;

    /// The `(method, path)` pairs `resources::routes` registers, read from its source: axum
    /// cannot list a router's routes, and the document must not miss one that exists.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("resources.rs");
        let start = source.find("pub fn routes()").expect("routes()");
        let end = start + source[start..].find("\n}\n").expect("end of routes()");
        let mut found = BTreeSet::new();
        for call in source[start..end].split(".route(").skip(1) {
            let path = call.split('"').nth(1).expect("a path literal");
            for method in ["get", "post", "patch", "put", "delete"] {
                if [" ", ".", "::"]
                    .iter()
                    .any(|before| call.contains(&format!("{before}{method}(")))
                {
                    found.insert((method.to_owned(), path.to_owned()));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_lists_exactly_the_routed_operations() {
        let documented: BTreeSet<(String, String)> = OPERATIONS
            .iter()
            .map(|op| (op.method.to_owned(), op.path.to_owned()))
            .collect();
        let routed = routed();
        assert!(routed.len() > 20, "the route parser found {routed:?}");
        assert_eq!(
            routed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "routed but not documented"
        );
        assert_eq!(
            documented.difference(&routed).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented but not routed"
        );
    }
}
