//! Key-value state over `wasi:keyvalue` (plus the host's TTL, compare-and-swap and prefix
//! listing).
//!
//! Each function has its own buckets; the default one is named `""`. State here outlives
//! instances and is shared by every instance of the function, so it is where anything that
//! must last more than one event belongs.
//!
//! ```no_run
//! use wsfn_guest::kv::Bucket;
//!
//! fn visits() -> Result<u64, wsfn_guest::kv::Error> {
//!     let bucket = Bucket::open_default()?;
//!     // Atomic across every instance of the function, unlike a get followed by a set.
//!     bucket.increment("visits", 1)
//! }
//! ```

use core::fmt;
use core::time::Duration;

#[cfg(feature = "json")]
use serde::Serialize;
#[cfg(feature = "json")]
use serde::de::DeserializeOwned;

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::bindings::wsfn::function::keyvalue_ext as ext;

/// One page of keys from [`Bucket::list_prefix`].
pub use ext::KeyPage;

/// The result of a key-value call.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why a key-value call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No bucket has that identifier.
    NoSuchStore,
    /// The function may not use that bucket.
    AccessDenied,
    /// The store failed; the text says how.
    Store(String),
    /// A stored value was not the JSON that was expected, or a value could not be
    /// serialised.
    #[cfg(feature = "json")]
    Json(serde_json::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such bucket"),
            Error::AccessDenied => f.write_str("access to the bucket denied"),
            Error::Store(why) => write!(f, "store failed: {why}"),
            #[cfg(feature = "json")]
            Error::Json(e) => write!(f, "stored value is not the expected JSON: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "json")]
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NoSuchStore => Error::NoSuchStore,
            store::Error::AccessDenied => Error::AccessDenied,
            store::Error::Other(why) => Error::Store(why),
        }
    }
}

#[cfg(feature = "json")]
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

/// An open bucket.
///
/// Opening is cheap; open the bucket in the handler that needs it rather than caching it,
/// because the instance (and anything cached in it) may be replaced between events.
#[derive(Debug)]
pub struct Bucket {
    inner: store::Bucket,
}

impl Bucket {
    /// Opens the bucket named `identifier`.
    pub fn open(identifier: &str) -> Result<Self> {
        Ok(Bucket {
            inner: store::open(identifier)?,
        })
    }

    /// Opens the function's default bucket, `""`.
    pub fn open_default() -> Result<Self> {
        Self::open("")
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get(key)?)
    }

    /// The value of `key` parsed as JSON, if set.
    #[cfg(feature = "json")]
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key)? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<()> {
        Ok(self.inner.set(key, value.as_ref())?)
    }

    /// Sets `key` to `value` as JSON.
    #[cfg(feature = "json")]
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set(key, serde_json::to_vec(value)?)
    }

    /// Sets `key` to `value`, to expire after `ttl` (rounded down to milliseconds).
    pub fn set_with_ttl(&self, key: &str, value: impl AsRef<[u8]>, ttl: Duration) -> Result<()> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Ok(ext::set_with_ttl(&self.inner, key, value.as_ref(), ttl_ms)?)
    }

    /// Removes `key`; succeeds whether or not it was set.
    pub fn delete(&self, key: &str) -> Result<()> {
        Ok(self.inner.delete(key)?)
    }

    /// Whether `key` is set.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.inner.exists(key)?)
    }

    /// Atomically adds `delta` to the counter at `key` (an absent key counts as 0) and
    /// returns the new value.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64> {
        Ok(atomics::increment(&self.inner, key, delta)?)
    }

    /// The current value of the counter at `key`; 0 if it was never incremented.
    ///
    /// Reads through `increment(key, 0)` because `wasi:keyvalue` does not say how a store
    /// keeps counters as bytes, so [`get`](Self::get) cannot portably decode them. As a side
    /// effect an absent counter is created at 0.
    pub fn counter(&self, key: &str) -> Result<u64> {
        self.increment(key, 0)
    }

    /// Sets `key` to `new` only if its value is `expected` (`None`: only if it is absent).
    /// Returns whether the swap happened.
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: impl AsRef<[u8]>,
    ) -> Result<bool> {
        Ok(ext::compare_and_swap(
            &self.inner,
            key,
            expected,
            new.as_ref(),
        )?)
    }

    /// One page of at most `limit` keys starting with `prefix`, in byte order. Pass the
    /// returned cursor back to get the next page.
    pub fn list_prefix(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<KeyPage> {
        Ok(ext::list_prefix(&self.inner, prefix, cursor, limit)?)
    }

    /// Every key starting with `prefix`, in byte order, fetched page by page.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        // Large enough to make few calls, small enough to bound one call's reply.
        const PAGE: u32 = 1000;
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_prefix(prefix, cursor.as_deref(), PAGE)?;
            keys.extend(page.keys);
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
    }

    /// The values of `keys`, in the same order (`None` for keys that are not set).
    pub fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let found = batch::get_many(&self.inner, keys)?;
        Ok(found
            .into_iter()
            .map(|pair| pair.map(|(_, value)| value))
            .collect())
    }

    /// Sets every `(key, value)` pair.
    pub fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        Ok(batch::set_many(&self.inner, pairs)?)
    }

    /// Removes every key in `keys`.
    pub fn delete_many(&self, keys: &[String]) -> Result<()> {
        Ok(batch::delete_many(&self.inner, keys)?)
    }

    /// The generated resource, for calls this wrapper does not cover.
    pub fn raw(&self) -> &store::Bucket {
        &self.inner
    }
}
