//! A local webhook receiver for workflow `webhook` steps: records each request's headers
//! and body, answers with a status the test chooses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the request as a Standard Webhooks receiver would: the signature under
    /// `secret`, and a timestamp within five minutes of now.
    pub fn verify_standard_webhook(&self, secret: &str) -> Result<(), String> {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (
                axum::http::HeaderName::from_bytes(k.as_bytes()),
                axum::http::HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        standardwebhooks::Webhook::new(secret)
            .and_then(|wh| wh.verify(self.body.as_bytes(), &headers))
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    changed: Arc<Notify>,
    shutdown: Arc<Notify>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let r = Receiver {
            url: format!("http://{addr}/hook"),
            received: Arc::default(),
            answers: Arc::default(),
            changed: Arc::new(Notify::new()),
            shutdown: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone());
        let stop = r.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        r
    }

    /// The next requests get these statuses (then 200).
    pub fn answer_with(&self, statuses: &[u16]) {
        self.answers.lock().expect("lock").extend(statuses);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let got = self.received();
            if got.len() >= n || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.received();
            }
        }
    }

    pub fn stop(&self) {
        // notify_one keeps the wake-up for a server not yet waiting for it.
        self.shutdown.notify_one();
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                v.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    r.received.lock().expect("lock").push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    r.changed.notify_waiters();
    let status = r.answers.lock().expect("lock").pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}
