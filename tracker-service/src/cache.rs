//! A small time-bounded cache for what changes rarely and is read often:
//! integrations (read by every webhook, twice) and Jira metadata (create
//! metadata, statuses). A value is reused for its cache's time to live, so a
//! change made on another replica is seen within that time; the replica that
//! made the change forgets its copy at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Jira metadata (create metadata by project, status lists) kept at most per
/// cache: a few per integration.
pub const METADATA_CACHE_CAPACITY: usize = 4_096;

/// Values by key, each valid for `ttl` after it was stored; at most
/// `capacity` of them.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    /// Each value with when it was stored.
    entries: HashMap<K, (Instant, Arc<V>)>,
    /// How many times values were forgotten: a value read before a forget
    /// may be stale, so it is not stored after (see [`Ticket`]).
    forgets: u64,
}

/// Taken before reading a value from its source, and given back to
/// [`TtlCache::put`]: the value is stored only if nothing was forgotten
/// meanwhile. Otherwise a read racing a change could store the value from
/// before the change, after the change had forgotten it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl<K: Eq + Hash + Clone, V> TtlCache<K, V> {
    /// An empty cache of at most `capacity` values.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                forgets: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value for `key` and its age, if stored and still fresh.
    pub fn get(&self, key: &K) -> Option<(Arc<V>, Duration)> {
        self.lock().entries.get(key).and_then(|(at, value)| {
            let age = at.elapsed();
            (age < self.ttl).then(|| (Arc::clone(value), age))
        })
    }

    /// To take before reading a value that will be [`put`](Self::put).
    pub fn ticket(&self) -> Ticket {
        Ticket(self.lock().forgets)
    }

    /// Stores `value` for `key`, unless a value was forgotten since `ticket`
    /// was taken. A full cache first drops its expired values; when all are
    /// fresh, `value` is not stored (the cache stays bounded, the caller
    /// reads again next time).
    pub fn put(&self, key: K, value: Arc<V>, ticket: Ticket) {
        let mut inner = self.lock();
        if inner.forgets != ticket.0 {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            inner.entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if inner.entries.len() >= self.capacity {
                return;
            }
        }
        inner.entries.insert(key, (Instant::now(), value));
    }

    /// The value for `key` while fresh; otherwise what `fetch` reads, stored
    /// by [`put`](Self::put) under a ticket taken before the read.
    ///
    /// # Errors
    /// `fetch`'s (nothing is stored).
    pub async fn get_or_fetch<E>(
        &self,
        key: K,
        fetch: impl Future<Output = Result<V, E>>,
    ) -> Result<Arc<V>, E> {
        if let Some((value, _)) = self.get(&key) {
            return Ok(value);
        }
        let ticket = self.ticket();
        let value = Arc::new(fetch.await?);
        self.put(key, Arc::clone(&value), ticket);
        Ok(value)
    }

    /// Forgets every value whose key matches (after an integration changed).
    pub fn forget(&self, matches: impl Fn(&K) -> bool) {
        let mut inner = self.lock();
        inner.forgets += 1;
        inner.entries.retain(|k, _| !matches(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn values_expire_and_can_be_forgotten() {
        let cache = TtlCache::new(MINUTE, 10);
        cache.put("a", Arc::new(1), cache.ticket());
        cache.put("b", Arc::new(2), cache.ticket());
        assert_eq!(cache.get(&"a").map(|(v, _)| *v), Some(1));
        cache.forget(|k| *k == "a");
        assert!(cache.get(&"a").is_none());
        assert_eq!(cache.get(&"b").map(|(v, _)| *v), Some(2));
        let expired = TtlCache::new(Duration::ZERO, 10);
        expired.put("a", Arc::new(1), expired.ticket());
        assert!(expired.get(&"a").is_none());
    }

    #[test]
    fn a_value_read_before_a_forget_is_not_stored_after_it() {
        let cache = TtlCache::new(MINUTE, 10);
        let ticket = cache.ticket();
        // The change lands (and forgets) while the old value is being read.
        cache.forget(|k| *k == "a");
        cache.put("a", Arc::new("old"), ticket);
        assert!(cache.get(&"a").is_none());
        cache.put("a", Arc::new("new"), cache.ticket());
        assert_eq!(cache.get(&"a").map(|(v, _)| *v), Some("new"));
    }

    #[test]
    fn a_full_cache_makes_room_from_expired_values_only() {
        let fresh = TtlCache::new(MINUTE, 2);
        fresh.put("a", Arc::new(1), fresh.ticket());
        fresh.put("b", Arc::new(2), fresh.ticket());
        fresh.put("c", Arc::new(3), fresh.ticket());
        assert!(fresh.get(&"c").is_none(), "over capacity: not stored");
        assert!(fresh.get(&"a").is_some() && fresh.get(&"b").is_some());
        // A key already stored is replaced, full or not.
        fresh.put("a", Arc::new(10), fresh.ticket());
        assert_eq!(fresh.get(&"a").map(|(v, _)| *v), Some(10));

        let expired = TtlCache::new(Duration::ZERO, 2);
        for key in ["a", "b", "c"] {
            expired.put(key, Arc::new(0), expired.ticket());
        }
        assert_eq!(
            expired.lock().entries.len(),
            1,
            "room made from expired values"
        );
    }
}
