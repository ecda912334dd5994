//! Key-value state shared by every connection and instance of a function.
//!
//! The guest-facing imports (`wasi:keyvalue` and `keyvalue-ext`) are thin: they check limits
//! and map errors, then call a [`KeyValueStore`]. Backends implement this one trait: the
//! embedded durable store (the default), the in-memory store, and Redis (shared by hosts).
//! [`open_store`] picks one from the host's settings.

mod durable;
mod memory;
mod redis;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use self::redis::{OpenRedisError, RedisStore};
pub use durable::{DurableStore, OpenDurableError};
pub use memory::MemoryStore;

/// The file of the durable store inside the data directory.
pub const DURABLE_FILE: &str = "state.redb";

/// Which store keeps key-value state on a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StoreKind {
    /// In memory: fast, and gone when the host stops.
    Memory,
    /// In `<data-dir>/state.redb`: every acknowledged write survives a crash.
    #[default]
    Durable,
}

/// Why no store could be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    #[error(transparent)]
    Durable(#[from] OpenDurableError),
    #[error(transparent)]
    Redis(#[from] OpenRedisError),
}

/// Opens the key-value store: Redis at `redis_url` when one is given (`kind` is then
/// ignored), else the store `kind` names, keeping its file in `data_dir`.
pub async fn open_store(
    kind: StoreKind,
    redis_url: Option<&str>,
    data_dir: &Path,
    max_keys_per_function: usize,
) -> Result<Arc<dyn KeyValueStore>, OpenStoreError> {
    if let Some(url) = redis_url {
        return Ok(Arc::new(
            RedisStore::connect(url, max_keys_per_function).await?,
        ));
    }
    match kind {
        StoreKind::Memory => Ok(Arc::new(MemoryStore::new(max_keys_per_function))),
        StoreKind::Durable => {
            let path = data_dir.join(DURABLE_FILE);
            let store = tokio::task::spawn_blocking(move || {
                DurableStore::open(&path, max_keys_per_function)
            })
            .await
            .map_err(|e| OpenDurableError::interrupted(data_dir.join(DURABLE_FILE), e))??;
            Ok(Arc::new(store))
        }
    }
}

/// Names one bucket of one function. Functions never see each other's buckets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketId {
    pub function: Arc<str>,
    pub bucket: Arc<str>,
}

/// One page of keys from [`KeyValueStore::list`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<String>,
    /// The last key of this page when more may follow.
    pub next_after: Option<String>,
}

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The stored value is not a decimal unsigned integer, so it cannot be incremented.
    #[error("the value of `{0}` is not a decimal integer")]
    NotANumber(String),
    /// The increment would overflow 64 bits.
    #[error("incrementing `{0}` would overflow")]
    Overflow(String),
    /// The function already keeps as many keys as it may.
    #[error("the function's key quota of {0} keys is used up")]
    QuotaExceeded(usize),
    /// The backend failed (I/O, network); the text says how.
    #[error("key-value backend failed: {0}")]
    Backend(String),
}

/// A key-value backend.
///
/// Counters are stored as decimal text, the same representation Redis uses, so a value set by
/// `increment` reads back as e.g. `b"42"`.
#[async_trait::async_trait]
pub trait KeyValueStore: Send + Sync + 'static {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets a value; with a time to live it expires that long from now.
    async fn set(
        &self,
        bucket: &BucketId,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), StoreError>;
    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, StoreError>;
    /// Adds `delta` to a counter (absent counts as 0) and returns the new value, atomically.
    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, StoreError>;
    /// Sets `new` only if the current value equals `expected` (`None`: absent), atomically.
    async fn compare_and_swap(
        &self,
        bucket: &BucketId,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError>;
    /// Keys starting with `prefix`, in byte order, strictly after `after`, at most `limit`.
    async fn list(
        &self,
        bucket: &BucketId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError>;
    /// How many live keys a function holds over all its buckets (for quotas and leak checks).
    async fn key_count(&self, function: &str) -> Result<usize, StoreError>;
}

/// Adds `delta` to a counter stored as decimal text.
pub(crate) fn add_to_counter(
    key: &str,
    current: Option<&[u8]>,
    delta: u64,
) -> Result<u64, StoreError> {
    let value = match current {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| StoreError::NotANumber(key.to_owned()))?,
    };
    value
        .checked_add(delta)
        .ok_or_else(|| StoreError::Overflow(key.to_owned()))
}
