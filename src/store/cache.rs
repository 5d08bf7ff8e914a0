//! Read-through caches that stay exact: an entry is used only while the database generation
//! (see [`Db::generation`](crate::store::Db::generation)) is the one it was read at.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

/// Entries kept before the cache is cleared (it refills from the database).
const MAX_ENTRIES: usize = 4096;

/// A map from `K` to the `V` read at some database generation.
#[derive(Debug)]
pub struct GenCache<K, V> {
    map: Mutex<HashMap<K, (i64, V)>>,
}

impl<K: Eq + Hash, V: Clone> Default for GenCache<K, V> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> GenCache<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key` if it was read at `generation`.
    pub fn get<Q>(&self, key: &Q, generation: i64) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|(g, _)| *g == generation)
            .map(|(_, v)| v.clone())
    }

    /// Remembers `value` for `key` as read at `generation`.
    pub fn put(&self, key: K, generation: i64, value: V) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (g, _)| *g == generation);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (generation, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_valid_only_at_their_generation() {
        let c: GenCache<&str, i32> = GenCache::new();
        c.put("a", 1, 10);
        assert_eq!(c.get(&"a", 1), Some(10));
        assert_eq!(c.get(&"a", 2), None);
        assert_eq!(c.get(&"b", 1), None);
    }
}
