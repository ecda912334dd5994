//! Host side of `wasi:keyvalue` (store, atomics, batch) and `wsfn:function/keyvalue-ext`.
//!
//! Every bucket a guest opens is scoped to its function, so two functions that open the same
//! identifier still see different data. Limits on key and value sizes are checked here, before
//! the backend is called; backend failures become the interfaces' `other` error.
//!
//! The event deadline counts guest execution only, not time spent awaiting an import, so every
//! store call is also bounded by the wall-clock `kv_timeout`: a stalled backend (a slow Redis)
//! fails the call instead of holding the event forever.

use std::future::Future;
use std::time::Duration;

use wasmtime::component::Resource;

use crate::runtime::bindings::wasi::keyvalue::store::{Error, KeyResponse};
use crate::runtime::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::runtime::bindings::wsfn::function::keyvalue_ext::{self, KeyPage};
use crate::runtime::{InstanceState, KvError};
use crate::state::{BucketId, StoreError};

/// Longest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;
/// Longest bucket identifier, in bytes.
pub const MAX_BUCKET_NAME: usize = 128;
/// Keys returned by one `list-keys` call.
const LIST_PAGE: usize = 1000;

type KvResult<T> = Result<T, KvError>;

fn check_key(key: &str) -> Result<(), Error> {
    if key.len() > MAX_KEY {
        return Err(Error::Other(format!("keys are at most {MAX_KEY} bytes")));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE {
        return Err(Error::Other(format!(
            "values are at most {MAX_VALUE} bytes"
        )));
    }
    Ok(())
}

impl InstanceState {
    /// The bucket behind a resource the guest holds; a resource it does not own traps.
    fn bucket(&self, bucket: &Resource<BucketId>) -> KvResult<BucketId> {
        Ok(self.table.get(bucket)?.clone())
    }
}

/// Awaits one store call for at most `limit` (see the module's documentation).
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> KvResult<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result.map_err(|e| Error::Other(e.to_string()))?),
        Err(_) => {
            Err(Error::Other(format!("the key-value store timed out after {limit:?}")).into())
        }
    }
}

impl store::Host for InstanceState {
    async fn open(&mut self, identifier: String) -> KvResult<Resource<BucketId>> {
        if identifier.len() > MAX_BUCKET_NAME {
            return Err(Error::Other(format!(
                "bucket identifiers are at most {MAX_BUCKET_NAME} bytes"
            ))
            .into());
        }
        let id = BucketId {
            function: self.env.scope.name.clone(),
            bucket: identifier.into(),
        };
        Ok(self.table.push(id)?)
    }

    fn convert_error(&mut self, error: KvError) -> wasmtime::Result<Error> {
        error.into_guest()
    }
}

impl store::HostBucket for InstanceState {
    async fn get(&mut self, bucket: Resource<BucketId>, key: String) -> KvResult<Option<Vec<u8>>> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        bounded(self.env.limits.kv_timeout, self.env.kv.get(&id, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketId>,
        key: String,
        value: Vec<u8>,
    ) -> KvResult<()> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        check_value(&value)?;
        bounded(
            self.env.limits.kv_timeout,
            self.env.kv.set(&id, &key, value, None),
        )
        .await
    }

    async fn delete(&mut self, bucket: Resource<BucketId>, key: String) -> KvResult<()> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        bounded(self.env.limits.kv_timeout, self.env.kv.delete(&id, &key)).await
    }

    async fn exists(&mut self, bucket: Resource<BucketId>, key: String) -> KvResult<bool> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        bounded(self.env.limits.kv_timeout, self.env.kv.exists(&id, &key)).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketId>,
        cursor: Option<u64>,
    ) -> KvResult<KeyResponse> {
        let id = self.bucket(&bucket)?;
        // The cursor is an offset into the keys in byte order.
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let page = bounded(
            self.env.limits.kv_timeout,
            self.env
                .kv
                .list(&id, "", None, skip.saturating_add(LIST_PAGE)),
        )
        .await?;
        let more = page.next_after.is_some();
        let keys: Vec<String> = page.keys.into_iter().skip(skip).collect();
        let cursor = more.then(|| (skip + keys.len()) as u64);
        Ok(KeyResponse { keys, cursor })
    }

    async fn drop(&mut self, bucket: Resource<BucketId>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for InstanceState {
    async fn increment(
        &mut self,
        bucket: Resource<BucketId>,
        key: String,
        delta: u64,
    ) -> KvResult<u64> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        bounded(
            self.env.limits.kv_timeout,
            self.env.kv.increment(&id, &key, delta),
        )
        .await
    }
}

impl batch::Host for InstanceState {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketId>,
        keys: Vec<String>,
    ) -> KvResult<Vec<Option<(String, Vec<u8>)>>> {
        let id = self.bucket(&bucket)?;
        keys.iter().try_for_each(|k| check_key(k))?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let value = bounded(self.env.limits.kv_timeout, self.env.kv.get(&id, &key)).await?;
            values.push(value.map(|v| (key, v)));
        }
        Ok(values)
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketId>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> KvResult<()> {
        let id = self.bucket(&bucket)?;
        key_values
            .iter()
            .try_for_each(|(k, v)| check_key(k).and_then(|()| check_value(v)))?;
        for (key, value) in key_values {
            bounded(
                self.env.limits.kv_timeout,
                self.env.kv.set(&id, &key, value, None),
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_many(&mut self, bucket: Resource<BucketId>, keys: Vec<String>) -> KvResult<()> {
        let id = self.bucket(&bucket)?;
        keys.iter().try_for_each(|k| check_key(k))?;
        for key in keys {
            bounded(self.env.limits.kv_timeout, self.env.kv.delete(&id, &key)).await?;
        }
        Ok(())
    }
}

impl keyvalue_ext::Host for InstanceState {
    async fn set_with_ttl(
        &mut self,
        bucket: Resource<BucketId>,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> KvResult<()> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        check_value(&value)?;
        let ttl = Some(Duration::from_millis(ttl_ms));
        bounded(
            self.env.limits.kv_timeout,
            self.env.kv.set(&id, &key, value, ttl),
        )
        .await
    }

    async fn compare_and_swap(
        &mut self,
        bucket: Resource<BucketId>,
        key: String,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> KvResult<bool> {
        let id = self.bucket(&bucket)?;
        check_key(&key)?;
        check_value(&new)?;
        bounded(
            self.env.limits.kv_timeout,
            self.env
                .kv
                .compare_and_swap(&id, &key, expected.as_deref(), new),
        )
        .await
    }

    async fn list_prefix(
        &mut self,
        bucket: Resource<BucketId>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> KvResult<KeyPage> {
        let id = self.bucket(&bucket)?;
        let limit = (limit as usize).clamp(1, LIST_PAGE);
        let page = bounded(
            self.env.limits.kv_timeout,
            self.env.kv.list(&id, &prefix, cursor.as_deref(), limit),
        )
        .await?;
        Ok(KeyPage {
            keys: page.keys,
            cursor: page.next_after,
        })
    }
}
