//! PostgreSQL: number routes kept in memory while this process listens for their changes.
//!
//! Every call's webhooks look up the called number (`Store::route_for_number`): one round
//! trip to PostgreSQL per webhook, a third of a missed call's statements once its other
//! writes were batched (docs/PERFORMANCE.md, session 13). Numbers and accounts change
//! rarely, and every change notifies (migration 0016's triggers, `NOTIFY textback_routes`,
//! sent when the changing transaction commits, whichever process made it). So routes are
//! kept only while this process's listener is connected (`Store::listen_for_work`); each
//! notice, and each (re)connection, forgets them all. A lookup that raced a notice (read
//! before it, kept after) is not kept: the cache's generation moved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::NumberRoute;

#[derive(Default)]
pub(crate) struct RouteCache {
    /// The listener is connected: without it a change could go unnoticed.
    live: AtomicBool,
    /// Moves on every forgetting.
    generation: AtomicU64,
    routes: Mutex<HashMap<String, NumberRoute>>,
}

impl RouteCache {
    pub(crate) fn get(&self, e164: &str) -> Option<NumberRoute> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.routes.lock().ok()?.get(e164).cloned()
    }

    /// Read before looking a route up, for `keep`.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps a route read from the database, unless routes were forgotten since
    /// `generation` was read (the route may be older than the change that caused it).
    pub(crate) fn keep(&self, generation: u64, route: &NumberRoute) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut routes) = self.routes.lock()
            && self.generation.load(Ordering::Acquire) == generation
        {
            routes.insert(route.number.e164.clone(), route.clone());
        }
    }

    /// A number or account changed, or notices may have been missed.
    pub(crate) fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut routes) = self.routes.lock() {
            routes.clear();
        }
    }

    /// Whether routes are kept (the listener is connected).
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// The listener connected: routes may be kept until the returned guard is dropped
    /// (the connection lost, or the listening task ended or aborted).
    pub(crate) fn live_until_dropped(self: &Arc<Self>) -> LiveGuard {
        self.set_live(true);
        LiveGuard(self.clone())
    }

    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
        }
        self.forget_all();
        if live {
            self.live.store(true, Ordering::Release);
        }
    }
}

/// See `RouteCache::live_until_dropped`.
pub(crate) struct LiveGuard(Arc<RouteCache>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.set_live(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NumberRecord;

    fn route(e164: &str, ring: &str) -> NumberRoute {
        NumberRoute {
            number: NumberRecord {
                id: 1,
                account_id: 1,
                e164: e164.into(),
                carrier: "twilio".into(),
                ring_to: vec![ring.into()],
                ring_seconds: 20,
                call_screening: false,
                active: true,
                registration: "unregistered".into(),
            },
            account_slug: "a".into(),
            account_name: "A".into(),
            time_zone: "UTC".into(),
        }
    }

    #[test]
    fn nothing_is_kept_unless_the_listener_is_connected() {
        let cache = RouteCache::default();
        cache.keep(cache.generation(), &route("+15125550100", "+15125550199"));
        assert!(cache.get("+15125550100").is_none());
        cache.set_live(true);
        cache.keep(cache.generation(), &route("+15125550100", "+15125550199"));
        assert!(cache.get("+15125550100").is_some());
        cache.set_live(false);
        assert!(
            cache.get("+15125550100").is_none(),
            "forgotten with the connection"
        );
    }

    #[test]
    fn a_route_read_before_a_change_is_not_kept_after_it() {
        let cache = Arc::new(RouteCache::default());
        let _live = cache.live_until_dropped();
        let before = cache.generation();
        cache.forget_all();
        cache.keep(before, &route("+15125550100", "+15125550199"));
        assert!(cache.get("+15125550100").is_none());
        cache.keep(cache.generation(), &route("+15125550100", "+15125550188"));
        let kept = cache.get("+15125550100").map(|r| r.number.ring_to);
        assert_eq!(kept, Some(vec!["+15125550188".to_owned()]));
    }
}
