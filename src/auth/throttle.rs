//! Slowing down repeated failures (password guessing) per account user.
//!
//! After [`FREE_FAILURES`] failures within [`WINDOW`], the key is locked for 30 s, doubling
//! with each further failure up to 15 minutes. While locked, attempts are refused without
//! checking the password, so guessing cannot go on. A success clears the key.
//!
//! The key is the user the username resolves to (`max@corp` and `max@corp.com` are one
//! user, so they share one budget), never the client address: every local process is
//! 127.0.0.1, so a per-address key would let any of them lock every user out. Usernames that
//! name no user are not counted (there is nothing to guess), so a flood of made-up names adds
//! nothing; and the map never holds more than [`MAX_KEYS`] keys whatever happens.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::UnixTime;

/// Failures allowed before the first lock.
pub const FREE_FAILURES: u32 = 5;
/// Failures older than this are forgotten.
pub const WINDOW: i64 = 15 * 60;
const BASE_LOCK: i64 = 30;
const MAX_LOCK: i64 = 15 * 60;
/// Most keys kept; past it the stalest key is dropped.
pub const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: UnixTime,
    locked_until: UnixTime,
}

/// Failure counters by key (`user:NAME`, `client:IP`).
#[derive(Debug)]
pub struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
    free_failures: u32,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

impl Throttle {
    /// An empty throttle allowing [`FREE_FAILURES`] failures.
    pub fn new() -> Self {
        Self::with_free_failures(FREE_FAILURES)
    }

    /// An empty throttle allowing `n` failures before the first lock.
    pub fn with_free_failures(n: u32) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            free_failures: n.max(1),
        }
    }

    /// `Err(seconds)` while `key` is locked at `now`.
    pub fn check(&self, key: &str, now: UnixTime) -> Result<(), u64> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(e) if e.locked_until > now => {
                Err(u64::try_from(e.locked_until - now).unwrap_or(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure for `key`.
    pub fn fail(&self, key: &str, now: UnixTime) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, e| now - e.last_failure < WINDOW || e.locked_until > now);
            // Still full of live keys: drop the stalest tenth at once (amortised), so
            // memory stays bounded under any flood.
            if map.len() >= MAX_KEYS {
                let mut by_age: Vec<(UnixTime, String)> = map
                    .iter()
                    .map(|(k, e)| (e.last_failure, k.clone()))
                    .collect();
                let drop = (MAX_KEYS / 10).max(1);
                by_age.select_nth_unstable(drop - 1);
                for (_, k) in by_age.into_iter().take(drop) {
                    map.remove(&k);
                }
            }
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: 0,
        });
        if now - e.last_failure >= WINDOW {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures >= self.free_failures {
            let doublings = (e.failures - self.free_failures).min(10);
            e.locked_until = now + (BASE_LOCK << doublings).min(MAX_LOCK);
        }
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clears `key` after a success.
    pub fn succeed(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_and_backs_off() {
        let t = Throttle::new();
        for _ in 0..FREE_FAILURES - 1 {
            t.fail("user:a", 100);
            assert!(t.check("user:a", 100).is_ok());
        }
        t.fail("user:a", 100);
        assert_eq!(t.check("user:a", 100), Err(30));
        assert!(t.check("user:b", 100).is_ok());
        assert!(t.check("user:a", 131).is_ok());
        t.fail("user:a", 131);
        assert_eq!(t.check("user:a", 131), Err(60));
    }

    #[test]
    fn a_flood_of_keys_leaves_memory_bounded() {
        let t = Throttle::new();
        // All within the window: nothing is stale, so only eviction bounds the map.
        for i in 0..100_000i64 {
            t.fail(&format!("user:{i}"), 1_000 + i / 1_000);
        }
        assert!(t.len() <= MAX_KEYS, "{} keys", t.len());
        // The stalest keys went first; the newest are kept.
        for _ in 0..FREE_FAILURES {
            t.fail("user:99999", 1_100);
        }
        assert!(t.check("user:99999", 1_100).is_err());
    }

    #[test]
    fn success_and_time_forget_failures() {
        let t = Throttle::new();
        for _ in 0..FREE_FAILURES {
            t.fail("k", 0);
        }
        t.succeed("k");
        assert!(t.check("k", 0).is_ok());
        for _ in 0..FREE_FAILURES - 1 {
            t.fail("k", 0);
        }
        t.fail("k", WINDOW + 1);
        assert!(t.check("k", WINDOW + 1).is_ok());
    }
}
