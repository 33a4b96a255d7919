//! What the guard read from the store in the last second: who a credential names and what a
//! user holds on a subject. Requests in a burst then cost no store read; a change made through
//! this server forgets everything at once ([`Recent::forget`]), one made through another server
//! sharing the database is seen within [`TTL`].

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read is reused.
pub const TTL: Duration = Duration::from_secs(1);
/// At most this many entries; past it the cache starts over.
const MAX: usize = 10_000;

/// Values read less than [`TTL`] ago, by key.
pub struct Recent<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> Default for Recent<K, V> {
    fn default() -> Self {
        Recent {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    /// The value read for `key` less than [`TTL`] ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(v, _)| v.clone())
    }

    /// Remembers what was read for `key`.
    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Forgets everything.
    pub fn forget(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_last_a_second_and_can_be_forgotten() {
        let r: Recent<u8, &str> = Recent::default();
        r.put(1, "a");
        assert_eq!(r.get(&1), Some("a"));
        assert_eq!(r.get(&2), None);
        r.forget();
        assert_eq!(r.get(&1), None);
        r.put(1, "b");
        std::thread::sleep(TTL + Duration::from_millis(50));
        assert_eq!(r.get(&1), None);
    }
}
