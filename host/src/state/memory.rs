//! The embedded in-memory key-value store: fast, shared by all instances on this host, and gone
//! when the host stops.

use std::collections::BTreeMap;
use std::ops::Bound;
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
#[derive(Debug, Default)]
pub struct MemoryStore {
    buckets: DashMap<BucketId, Mutex<Bucket>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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
    fn live<'a>(bucket: &'a mut Bucket, key: &str, now: Instant) -> Option<&'a mut Entry> {
        if bucket.get(key).is_some_and(|e| !e.is_live(now)) {
            bucket.remove(key);
        }
        bucket.get_mut(key)
    }
}

#[async_trait::async_trait]
impl KeyValueStore for MemoryStore {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self.with_bucket(bucket, |b| Self::live(b, key, now).map(|e| e.value.clone())))
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
            b.insert(key.to_owned(), Entry { value, expires_at })
        });
        Ok(())
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), StoreError> {
        self.with_bucket(bucket, |b| b.remove(key));
        Ok(())
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self.with_bucket(bucket, |b| Self::live(b, key, now).is_some()))
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, StoreError> {
        let now = Instant::now();
        self.with_bucket(bucket, |b| {
            let entry = Self::live(b, key, now);
            let next = add_to_counter(key, entry.as_ref().map(|e| e.value.as_slice()), delta)?;
            let text = next.to_string().into_bytes();
            match entry {
                Some(entry) => entry.value = text,
                None => {
                    b.insert(
                        key.to_owned(),
                        Entry {
                            value: text,
                            expires_at: None,
                        },
                    );
                }
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
        Ok(self.with_bucket(bucket, |b| {
            let current = Self::live(b, key, now).map(|e| e.value.as_slice());
            if current != expected {
                return false;
            }
            b.insert(
                key.to_owned(),
                Entry {
                    value: new,
                    expires_at: None,
                },
            );
            true
        }))
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
        let store = MemoryStore::new();
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
        let store = MemoryStore::new();
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
        let store = MemoryStore::new();
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
        let store = MemoryStore::new();
        let b = bucket("a");
        store
            .set(&b, "k", b"v".to_vec(), Some(Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(store.get(&b, "k").await.unwrap(), None);
        assert!(!store.exists(&b, "k").await.unwrap());
    }

    #[tokio::test]
    async fn lists_by_prefix_in_pages() {
        let store = MemoryStore::new();
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
