//! What one instance keeps about carts in memory: per-cart locks and the cache of
//! recently used carts' states.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use cart_store::Loaded;
use tokio::sync::Mutex;
use uuid::Uuid;

/// Serializes commands per cart inside one instance, so that an instance never races
/// itself; other instances are kept honest by the log's version guard. A fixed number of
/// shards keeps memory bounded whatever the number of carts.
pub(super) struct CartLocks {
    shards: Vec<Mutex<()>>,
}

impl CartLocks {
    pub(super) fn new(n: usize) -> Self {
        Self {
            shards: (0..n).map(|_| Mutex::new(())).collect(),
        }
    }

    pub(super) fn shard(&self, stream_id: Uuid) -> &Mutex<()> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(stream_id);
        // The modulo keeps the index in range, so the cast cannot truncate meaningfully.
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }
}

/// The last known state of recently used carts, so that a command on a warm cart reads
/// nothing from the database. An entry may be stale when another instance wrote to the
/// cart since: the append's version guard catches that, and the command is decided
/// again on the state loaded from the log. Bounded: the least recently used cart goes.
pub(super) struct CartCache {
    entries: std::sync::Mutex<lru::LruCache<Uuid, Loaded>>,
}

impl CartCache {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = std::num::NonZeroUsize::new(capacity).unwrap_or(std::num::NonZeroUsize::MIN);
        Self {
            entries: std::sync::Mutex::new(lru::LruCache::new(capacity)),
        }
    }

    pub(super) fn get(&self, stream_id: Uuid) -> Option<Loaded> {
        let found = self.entries.lock().ok()?.get(&stream_id).cloned();
        let metrics = crate::metrics::get();
        match found {
            Some(_) => metrics.cache_hits.add(1, &[]),
            None => metrics.cache_misses.add(1, &[]),
        }
        found
    }

    pub(super) fn put(&self, stream_id: Uuid, loaded: Loaded) {
        if let Ok(mut entries) = self.entries.lock() {
            // `push` hands back what it displaced: the same cart's older state (an
            // update), or the least recently used cart (an eviction).
            if let Some((evicted, _)) = entries.push(stream_id, loaded) {
                if evicted != stream_id {
                    crate::metrics::get().cache_evictions.add(1, &[]);
                }
            }
        }
    }

    pub(super) fn forget(&self, stream_id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.pop(&stream_id);
        }
    }
}
