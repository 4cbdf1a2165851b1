//! The web UI for the business team: server-rendered HTML from templates compiled into the
//! binary (no CDN, nothing to install beside it).

mod access;
mod contacts;
mod inbox;
mod numbers;
mod pages;
pub mod password;
mod reports;
mod session;
mod settings;
pub mod setup;
mod tasks;
mod test_call;
mod workflow_form;
mod workflows;

use std::sync::OnceLock;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::Environment;

use crate::AppState;

pub use session::{LoginLimiter, SESSION_COOKIE};
pub use test_call::TEST_CALLER;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::today))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}/complete", post(pages::complete_task))
        .route("/tasks/{id}/assign", post(tasks::assign))
        .route("/tasks/{id}/call-back", post(tasks::call_back))
        .route("/calls", get(pages::calls))
        .route("/reports", get(reports::page))
        .route("/reports.csv", get(reports::csv))
        .route("/contacts", get(contacts::list))
        .route("/contacts/{id}", get(contacts::detail))
        .route("/smart-lists", post(contacts::save_list))
        .route("/inbox", get(inbox::list))
        .route("/inbox/{id}", get(inbox::thread))
        .route("/inbox/{id}/messages", get(inbox::messages_fragment))
        .route("/inbox/{id}/events", get(inbox::events))
        .route("/inbox/{id}/reply", post(inbox::reply))
        .route("/ui/segments", post(inbox::segments))
        .route("/ui/lint", post(setup::lint_fragment))
        .route("/setup", get(setup::form).post(setup::submit))
        .route("/settings", get(settings::show).post(settings::update))
        .route("/settings/numbers", get(numbers::show))
        .route("/settings/numbers/{id}", post(numbers::update))
        .route("/settings/team", get(access::show).post(access::add_member))
        .route("/settings/team/{id}/role", post(access::set_role))
        .route("/settings/team/{id}/remove", post(access::remove_member))
        .route("/settings/api-keys", post(access::create_key))
        .route("/settings/api-keys/{id}/revoke", post(access::revoke_key))
        .route("/settings/webhooks", post(access::add_webhook))
        .route(
            "/settings/webhooks/{id}/remove",
            post(access::remove_webhook),
        )
        .route(
            "/password",
            get(access::password_form).post(access::change_password),
        )
        .route("/doctor", get(settings::doctor))
        .route("/workflows", get(workflows::list))
        .route(
            "/workflows/new",
            get(workflows::new_form).post(workflows::new_submit),
        )
        .route("/workflows/{id}", get(workflows::detail))
        .route(
            "/workflows/{id}/edit",
            get(workflows::edit_form).post(workflows::edit_submit),
        )
        .route(
            "/workflows/{id}/versions/{version}/restore",
            post(workflows::restore),
        )
        .route("/workflows/{id}/activate", post(workflows::activate))
        .route("/workflows/{id}/deactivate", post(workflows::deactivate))
        .route("/test-call", post(test_call::start))
        .route("/test-call/{sid}", get(test_call::show))
        .route("/assets/app.css", get(stylesheet))
        .route("/assets/lint.js", get(lint_script))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/app.css"),
    )
        .into_response()
}

async fn lint_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/lint.js"),
    )
        .into_response()
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("login.html", include_str!("../../templates/login.html")),
            (
                "no_users.html",
                include_str!("../../templates/no_users.html"),
            ),
            ("today.html", include_str!("../../templates/today.html")),
            ("inbox.html", include_str!("../../templates/inbox.html")),
            ("thread.html", include_str!("../../templates/thread.html")),
            (
                "thread_messages.html",
                include_str!("../../templates/thread_messages.html"),
            ),
            ("error.html", include_str!("../../templates/error.html")),
            ("setup.html", include_str!("../../templates/setup.html")),
            ("calls.html", include_str!("../../templates/calls.html")),
            ("tasks.html", include_str!("../../templates/tasks.html")),
            (
                "contacts.html",
                include_str!("../../templates/contacts.html"),
            ),
            ("contact.html", include_str!("../../templates/contact.html")),
            ("reports.html", include_str!("../../templates/reports.html")),
            (
                "settings.html",
                include_str!("../../templates/settings.html"),
            ),
            ("lint.html", include_str!("../../templates/lint.html")),
            (
                "call_back.html",
                include_str!("../../templates/call_back.html"),
            ),
            ("numbers.html", include_str!("../../templates/numbers.html")),
            (
                "password.html",
                include_str!("../../templates/password.html"),
            ),
            ("access.html", include_str!("../../templates/access.html")),
            ("doctor.html", include_str!("../../templates/doctor.html")),
            (
                "workflows.html",
                include_str!("../../templates/workflows.html"),
            ),
            (
                "workflow.html",
                include_str!("../../templates/workflow.html"),
            ),
            (
                "workflow_edit.html",
                include_str!("../../templates/workflow_edit.html"),
            ),
            (
                "test_call.html",
                include_str!("../../templates/test_call.html"),
            ),
        ] {
            // The templates ship in the binary and a test renders each one, so a broken
            // template cannot reach a user.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name}: {e}"));
        }
        env
    })
}

/// Renders a page; `.html` templates escape every value.
pub(crate) fn render(name: &str, ctx: minijinja::Value) -> Result<Html<String>, WebError> {
    templates()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map(Html)
        .map_err(|e| WebError::Template(e.to_string()))
}

/// A page with a status other than 200 (a form refused: 422), or 200 itself.
pub(crate) fn render_status(
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
) -> Result<Response, WebError> {
    Ok((status, render(name, ctx)?).into_response())
}

/// An id from the path; anything that is not one is simply not found.
pub(crate) fn parse_id(raw: &str, what: &'static str) -> Result<i64, WebError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(WebError::NotFound(what))
}

/// What can go wrong serving a page; each renders as a plain-language page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the database could not be reached: {0}")]
    Store(#[from] textback_store::StoreError),
    #[error("a page could not be drawn: {0}")]
    Template(String),
    #[error("this form has expired; reload the page and try again")]
    Csrf,
    #[error("there is no such {0} in your account")]
    NotFound(&'static str),
    #[error("only an owner of the account can change this")]
    OwnerOnly,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match self {
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::OwnerOnly => StatusCode::FORBIDDEN,
            WebError::Store(_) | WebError::Template(_) => {
                tracing::error!(error = %self, "web page failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let (title, detail) = match &self {
            WebError::Csrf => ("Form expired", self.to_string()),
            WebError::NotFound(_) => ("Not found", self.to_string()),
            WebError::OwnerOnly => ("Owners only", self.to_string()),
            _ => (
                "Something went wrong",
                "Textback could not show this page. Try again in a moment; if it keeps \
                 happening, run `textback doctor` on the server."
                    .to_owned(),
            ),
        };
        let body = render(
            "error.html",
            minijinja::context! { title => title, detail => &detail },
        )
        .map(|h| h.0)
        .unwrap_or(detail);
        (status, Html(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    /// Every `.html` file in `templates/` is compiled in (and parses).
    #[test]
    fn every_template_compiles() {
        let env = super::templates();
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".html"))
            })
            .count();
        assert_eq!(env.templates().count(), on_disk);
    }
}
