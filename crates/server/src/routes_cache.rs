//! The last known routing of each number, so the phone keeps ringing the team when the
//! database is unreachable (SPEC §3.5).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use textback_store::NumberRoute;

#[derive(Clone, Default)]
pub struct RoutesCache {
    inner: Arc<RwLock<HashMap<String, NumberRoute>>>,
}

impl RoutesCache {
    pub fn remember(&self, route: &NumberRoute) {
        if let Ok(mut map) = self.inner.write() {
            map.insert(route.number.e164.clone(), route.clone());
        }
    }

    pub fn get(&self, e164: &str) -> Option<NumberRoute> {
        self.inner.read().ok().and_then(|m| m.get(e164).cloned())
    }
}
