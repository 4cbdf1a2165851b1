use std::sync::Arc;

use textback_carriers::telnyx::{TelnyxClient, TelnyxPublicKey};
use textback_carriers::twilio::{SignatureCheck, TwilioClient};
use textback_core::Clock;
use textback_store::Store;

use crate::routes_cache::RoutesCache;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Base URL the carrier calls, without a trailing slash.
    pub public_url: String,
    pub signature: SignatureCheck,
    /// `None`: the sandbox carrier handles every text.
    pub twilio: Option<TwilioClient>,
    /// `None`: numbers set to `telnyx` text through the sandbox.
    pub telnyx: Option<TelnyxClient>,
    /// Checks Telnyx's webhook signatures; `None` refuses every Telnyx webhook.
    pub telnyx_key: Option<TelnyxPublicKey>,
    /// Where call results wait while the database is unavailable.
    pub spool: Option<crate::spool::Spool>,
    pub routes: RoutesCache,
    pub workers: usize,
    pub role: crate::InstanceRole,
    /// Workflow webhooks may target private and loopback addresses.
    pub allow_private_webhooks: bool,
    pub login_limiter: crate::web::LoginLimiter,
    /// Set when the server starts shutting down, so long-lived responses (the inbox's
    /// server-sent events) end and let the graceful shutdown finish.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    pub fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    /// The carrier a new message to `to` will go through. The web UI's test caller is
    /// fictional, so its texts always stay in the sandbox, even with Twilio configured.
    pub fn carrier_for(&self, number_carrier: &str, to: &str) -> &'static str {
        match number_carrier {
            _ if to == crate::web::TEST_CALLER => "sandbox",
            "twilio" if self.twilio.is_some() => "twilio",
            "telnyx" if self.telnyx.is_some() => "telnyx",
            _ => "sandbox",
        }
    }

    pub fn public(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path)
    }
}
