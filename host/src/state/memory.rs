//! The embedded in-memory key-value store: fast, shared by all instances on this host, and gone
//! when the host stops.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;

use super::{BucketId, KeyPage, KeyValueStore, StoreError, add_to_counter};

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

type Bucket = BTreeMap<String, Entry>;

/// Buckets kept in memory, each behind its own lock so functions do not contend.
#[derive(Debug)]
pub struct MemoryStore {
    buckets: DashMap<BucketId, Mutex<Bucket>>,
    /// Keys held per function (including expired ones not yet swept), for the quota.
    keys: DashMap<Arc<str>, usize>,
    max_keys_per_function: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl MemoryStore {
    pub fn new(max_keys_per_function: usize) -> Self {
        Self {
            buckets: DashMap::new(),
            keys: DashMap::new(),
            max_keys_per_function,
        }
    }

    /// Inserts or replaces a key, within the function's quota.
    fn put(
        &self,
        id: &BucketId,
        bucket: &mut Bucket,
        key: &str,
        entry: Entry,
    ) -> Result<(), StoreError> {
        if let Some(existing) = bucket.get_mut(key) {
            *existing = entry;
            return Ok(());
        }
        {
            let mut count = self.keys.entry(id.function.clone()).or_insert(0);
            if *count >= self.max_keys_per_function {
                return Err(StoreError::QuotaExceeded(self.max_keys_per_function));
            }
            *count += 1;
        }
        bucket.insert(key.to_owned(), entry);
        Ok(())
    }

    fn forget(&self, id: &BucketId, removed: usize) {
        if removed > 0 {
            self.keys.remove_if_mut(&id.function, |_, count| {
                *count = count.saturating_sub(removed);
                *count == 0
            });
        }
    }

    /// Runs `f` on a bucket, creating it if needed.
    fn with_bucket<R>(&self, id: &BucketId, f: impl FnOnce(&mut Bucket) -> R) -> R {
        if let Some(bucket) = self.buckets.get(id) {
            return f(&mut bucket.lock());
        }
        let bucket = self.buckets.entry(id.clone()).or_default();
        f(&mut bucket.lock())
    }

    /// The live value of `key`, dropping it if it has expired.
    fn live<'a>(
        &self,
        id: &BucketId,
        bucket: &'a mut Bucket,
        key: &str,
        now: Instant,
    ) -> Option<&'a mut Entry> {
        if bucket.get(key).is_some_and(|e| !e.is_live(now)) {
            bucket.remove(key);
            self.forget(id, 1);
        }
        bucket.get_mut(key)
    }
}

#[async_trait::async_trait]
impl KeyValueStore for MemoryStore {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self.with_bucket(bucket, |b| {
            self.live(bucket, b, key, now).map(|e| e.value.clone())
        }))
    }

    async fn set(
        &self,
        bucket: &BucketId,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let expires_at = ttl.map(|ttl| Instant::now() + ttl);
        self.with_bucket(bucket, |b| {
            self.put(bucket, b, key, Entry { value, expires_at })
        })
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), StoreError> {
        let removed = self.with_bucket(bucket, |b| b.remove(key).is_some());
        self.forget(bucket, usize::from(removed));
        Ok(())
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self.with_bucket(bucket, |b| self.live(bucket, b, key, now).is_some()))
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, StoreError> {
        let now = Instant::now();
        self.with_bucket(bucket, |b| {
            let entry = self.live(bucket, b, key, now);
            let next = add_to_counter(key, entry.as_ref().map(|e| e.value.as_slice()), delta)?;
            let value = next.to_string().into_bytes();
            match entry {
                Some(entry) => entry.value = value,
                None => self.put(
                    bucket,
                    b,
                    key,
                    Entry {
                        value,
                        expires_at: None,
                    },
                )?,
            }
            Ok(next)
        })
    }

    async fn compare_and_swap(
        &self,
        bucket: &BucketId,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        self.with_bucket(bucket, |b| {
            let current = self.live(bucket, b, key, now).map(|e| e.value.as_slice());
            if current != expected {
                return Ok(false);
            }
            self.put(
                bucket,
                b,
                key,
                Entry {
                    value: new,
                    expires_at: None,
                },
            )?;
            Ok(true)
        })
    }

    async fn list(
        &self,
        bucket: &BucketId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError> {
        let now = Instant::now();
        Ok(self.with_bucket(bucket, |b| {
            let start = match after {
                Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
                _ => Bound::Included(prefix.to_owned()),
            };
            let mut keys = Vec::new();
            let mut more = false;
            for (key, entry) in b.range((start, Bound::Unbounded)) {
                if !key.starts_with(prefix) {
                    break;
                }
                if !entry.is_live(now) {
                    continue;
                }
                if keys.len() == limit {
                    more = true;
                    break;
                }
                keys.push(key.clone());
            }
            let next_after = if more { keys.last().cloned() } else { None };
            KeyPage { keys, next_after }
        }))
    }

    async fn key_count(&self, function: &str) -> Result<usize, StoreError> {
        let now = Instant::now();
        Ok(self
            .buckets
            .iter()
            .filter(|b| &*b.key().function == function)
            .map(|b| b.value().lock().values().filter(|e| e.is_live(now)).count())
            .sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(function: &str) -> BucketId {
        BucketId {
            function: function.into(),
            bucket: "".into(),
        }
    }

    #[tokio::test]
    async fn functions_do_not_share_buckets() {
        let store = MemoryStore::default();
        store
            .set(&bucket("a"), "k", b"1".to_vec(), None)
            .await
            .unwrap();
        assert_eq!(store.get(&bucket("b"), "k").await.unwrap(), None);
        assert_eq!(
            store.get(&bucket("a"), "k").await.unwrap(),
            Some(b"1".to_vec())
        );
    }

    #[tokio::test]
    async fn increments_decimal_counters() {
        let store = MemoryStore::default();
        assert_eq!(store.increment(&bucket("a"), "n", 2).await, Ok(2));
        assert_eq!(store.increment(&bucket("a"), "n", 3).await, Ok(5));
        assert_eq!(
            store.get(&bucket("a"), "n").await.unwrap(),
            Some(b"5".to_vec())
        );
        store
            .set(&bucket("a"), "s", b"x".to_vec(), None)
            .await
            .unwrap();
        assert!(matches!(
            store.increment(&bucket("a"), "s", 1).await,
            Err(StoreError::NotANumber(_))
        ));
    }

    #[tokio::test]
    async fn compare_and_swap_checks_the_current_value() {
        let store = MemoryStore::default();
        let b = bucket("a");
        assert_eq!(
            store.compare_and_swap(&b, "k", None, b"1".to_vec()).await,
            Ok(true)
        );
        assert_eq!(
            store.compare_and_swap(&b, "k", None, b"2".to_vec()).await,
            Ok(false)
        );
        assert_eq!(
            store
                .compare_and_swap(&b, "k", Some(b"1"), b"2".to_vec())
                .await,
            Ok(true)
        );
        assert_eq!(store.get(&b, "k").await.unwrap(), Some(b"2".to_vec()));
    }

    #[tokio::test]
    async fn expired_values_are_gone() {
        let store = MemoryStore::default();
        let b = bucket("a");
        store
            .set(&b, "k", b"v".to_vec(), Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(store.get(&b, "k").await.unwrap(), None);
        assert!(!store.exists(&b, "k").await.unwrap());
    }

    #[tokio::test]
    async fn a_function_keeps_at_most_its_quota_of_keys() {
        let store = MemoryStore::new(2);
        let b = bucket("a");
        store.set(&b, "1", Vec::new(), None).await.unwrap();
        store.set(&b, "2", Vec::new(), None).await.unwrap();
        assert_eq!(
            store.set(&b, "3", Vec::new(), None).await,
            Err(StoreError::QuotaExceeded(2))
        );
        // Replacing an existing key needs no room; other functions have their own quota.
        store.set(&b, "2", b"x".to_vec(), None).await.unwrap();
        store
            .set(&bucket("b"), "3", Vec::new(), None)
            .await
            .unwrap();
        store.delete(&b, "1").await.unwrap();
        store.set(&b, "3", Vec::new(), None).await.unwrap();
    }

    #[tokio::test]
    async fn lists_by_prefix_in_pages() {
        let store = MemoryStore::default();
        let b = bucket("a");
        for key in ["user:1", "user:2", "user:3", "room:1"] {
            store.set(&b, key, Vec::new(), None).await.unwrap();
        }
        let first = store.list(&b, "user:", None, 2).await.unwrap();
        assert_eq!(first.keys, vec!["user:1", "user:2"]);
        let rest = store
            .list(&b, "user:", first.next_after.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!(
            rest,
            KeyPage {
                keys: vec!["user:3".into()],
                next_after: None
            }
        );
    }
}
