//! Read-through caches that stay exact: an entry is used only while the number it was read
//! at is current — the database generation ([`Db::generation`]: anyone's commits) or the
//! handle's epoch ([`Db::epoch`]: this process's writes). Both numbers are here.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::{Db, lock};
use crate::error::Result;

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

impl Db {
    /// A number that changes whenever anyone — this agent or another process such as the
    /// CLI — commits to the database. Caches compare it to know they are still exact.
    ///
    /// Called inline on async workers: in WAL mode `PRAGMA data_version` reads the shared
    /// wal-index header in memory and does no disk I/O. In-memory databases (one connection,
    /// no other writer) report a counter of their own commits.
    pub fn generation(&self) -> Result<i64> {
        match &self.0.watch {
            Some(w) => {
                let conn = lock(w);
                let mut stmt = conn.prepare_cached("PRAGMA data_version")?;
                Ok(stmt.query_row([], |r| r.get(0))?)
            }
            None => Ok(i64::try_from(self.0.w.commits.load(Ordering::Acquire)).unwrap_or(i64::MAX)),
        }
    }

    /// A number that changes after every write through this handle except
    /// [`Db::write_uncached`] ones — whether it committed or not — and before the writer
    /// is answered. An in-process cache of data that only this process writes (IdP
    /// configurations, callback allow-lists) is exact while the epoch it was read at is
    /// current: take the epoch *before* reading, and a read racing a write is tagged with
    /// the epoch that write ends. Unlike [`Db::generation`] it is blind to other processes.
    pub fn epoch(&self) -> u64 {
        self.0.w.epoch.load(Ordering::Acquire)
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
