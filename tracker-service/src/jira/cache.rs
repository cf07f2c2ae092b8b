//! A small time-bounded cache for Jira metadata that changes rarely (create
//! metadata, statuses): a few minutes of staleness saves a call per request.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Values by key, each valid for `ttl` after it was stored.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, Arc<V>)>>,
}

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    /// An empty cache.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `key` and its age, if stored and still fresh.
    pub fn get(&self, key: &K) -> Option<(Arc<V>, Duration)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).and_then(|(at, value)| {
            let age = at.elapsed();
            (age < self.ttl).then(|| (Arc::clone(value), age))
        })
    }

    /// Stores `value` for `key`.
    pub fn put(&self, key: K, value: Arc<V>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
        entries.insert(key, (Instant::now(), value));
    }

    /// Forgets every value whose key matches (after an integration changed).
    pub fn forget(&self, matches: impl Fn(&K) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|k, _| !matches(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_and_can_be_forgotten() {
        let cache = TtlCache::new(Duration::from_secs(60));
        cache.put("a", Arc::new(1));
        cache.put("b", Arc::new(2));
        assert_eq!(cache.get(&"a").map(|(v, _)| *v), Some(1));
        cache.forget(|k| *k == "a");
        assert!(cache.get(&"a").is_none());
        let expired = TtlCache::new(Duration::ZERO);
        expired.put("a", Arc::new(1));
        assert!(expired.get(&"a").is_none());
    }
}
