//! The embedded durable key-value store, the single-node default: one redb file,
//! `<data-dir>/state.redb`.
//!
//! A write is acknowledged only once the transaction holding it is committed with immediate
//! durability, so an acknowledged write survives the host being killed. One thread owns every
//! write: it takes all writes queued while the previous commit ran and commits them together,
//! so concurrent writers share one sync to disk. Writes are applied one after another on that
//! thread, which makes increments and compare-and-swaps atomic without further locking. Reads
//! run on the blocking pool against a snapshot and never wait for the writer.
//!
//! Expiry is wall-clock time (milliseconds since the Unix epoch) so that it means the same after
//! a restart. Expired keys read as absent; a write that meets one replaces it, the writer sweeps
//! them all periodically, and a function at its quota has its own swept before a write is
//! refused.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{BucketId, KeyPage, KeyValueStore, StoreError, add_to_counter};

/// Every entry, keyed by [`entry_key`], valued by [`encode_value`].
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// Entries stored per function, expired ones not yet swept included (for the quota).
const KEY_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("key_counts");

/// Writes committed together at most; bounds how long one commit keeps the others waiting.
const MAX_BATCH: usize = 512;
/// How often the writer removes every expired entry.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Why the durable store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the key-value store {}: {source}{}", path.display(), hint(source))]
pub struct OpenDurableError {
    path: PathBuf,
    source: redb::Error,
}

fn hint(error: &redb::Error) -> &'static str {
    match error {
        redb::Error::DatabaseAlreadyOpen => {
            " (is another wsfn-host running on the same data directory?)"
        }
        _ => "",
    }
}

impl OpenDurableError {
    /// The task opening the store ended before it could say how (it panicked or was
    /// cancelled).
    pub(super) fn interrupted(path: PathBuf, error: tokio::task::JoinError) -> Self {
        Self {
            path,
            source: redb::Error::Io(std::io::Error::other(error.to_string())),
        }
    }
}

/// The key-value store kept in a redb file.
pub struct DurableStore {
    db: Arc<Database>,
    /// Writes for the writer thread; taken on drop so the thread ends.
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStore").finish_non_exhaustive()
    }
}

/// A write, run on the writer thread inside the batch's transaction. It returns what to tell
/// the caller once the transaction's fate is known.
type Job = Box<dyn for<'t> FnOnce(&mut Tables<'t>) -> Result<Reply, redb::Error> + Send>;
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

fn backend(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(format!("durable store: {}", error.into()))
}

fn writer_gone() -> StoreError {
    StoreError::Backend("durable store: the write was not committed".into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The length-prefixed name of a function, which starts every key of that function.
fn function_prefix(function: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(4 + function.len());
    prefix.extend_from_slice(&(function.len() as u32).to_be_bytes());
    prefix.extend_from_slice(function.as_bytes());
    prefix
}

/// What starts every key of a bucket. Both names are length-prefixed, so no two
/// (function, bucket, key) triples share an encoding, and keys of one bucket sort in byte order.
fn bucket_prefix(id: &BucketId) -> Vec<u8> {
    let mut prefix = function_prefix(&id.function);
    prefix.extend_from_slice(&(id.bucket.len() as u32).to_be_bytes());
    prefix.extend_from_slice(id.bucket.as_bytes());
    prefix
}

fn entry_key(id: &BucketId, key: &str) -> Vec<u8> {
    let mut bytes = bucket_prefix(id);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

/// The function an entry key belongs to.
fn function_of(entry_key: &[u8]) -> Option<&str> {
    let (len, rest) = entry_key.split_first_chunk::<4>()?;
    let name = rest.get(..u32::from_be_bytes(*len) as usize)?;
    std::str::from_utf8(name).ok()
}

/// The first byte string after every string that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A stored value: the expiry in milliseconds since the Unix epoch (0: never), then the bytes.
fn encode_value(expires_at_ms: u64, value: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + value.len());
    bytes.extend_from_slice(&expires_at_ms.to_be_bytes());
    bytes.extend_from_slice(value);
    bytes
}

/// The expiry and bytes of a stored value; a value too short to hold an expiry counts as
/// never expiring rather than failing every read of the key.
fn decode_value(bytes: &[u8]) -> (u64, &[u8]) {
    match bytes.split_first_chunk::<8>() {
        Some((expiry, value)) => (u64::from_be_bytes(*expiry), value),
        None => (0, bytes),
    }
}

fn is_live(expires_at_ms: u64, now_ms: u64) -> bool {
    expires_at_ms == 0 || expires_at_ms > now_ms
}

fn expiry_of(ttl: Option<Duration>, now_ms: u64) -> u64 {
    match ttl {
        None => 0,
        // An expiry of 0 would mean "never", so a zero TTL expires at the current instant.
        Some(ttl) => now_ms
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .max(1),
    }
}

/// What the writer thread keeps between transactions.
struct Writer {
    max_keys_per_function: usize,
    /// Per function, a time before which none of its stored keys expires, learnt by sweeping
    /// it and lowered by every write with a time to live. A function at its quota is swept
    /// only once this has passed, so refusing its writes does not cost a scan each time.
    first_expiry: HashMap<String, u64>,
}

/// The tables of one write transaction, as the writer's jobs see them.
struct Tables<'t> {
    entries: redb::Table<'t, &'static [u8], &'static [u8]>,
    counts: redb::Table<'t, &'static str, u64>,
    now_ms: u64,
    writer: &'t mut Writer,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction, writer: &'t mut Writer) -> Result<Self, redb::Error> {
        Ok(Self {
            entries: txn.open_table(ENTRIES)?,
            counts: txn.open_table(KEY_COUNTS)?,
            now_ms: now_ms(),
            writer,
        })
    }

    /// The live value under `key` and its expiry.
    fn live(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>, redb::Error> {
        Ok(self.entries.get(key)?.and_then(|guard| {
            let (expires_at, value) = decode_value(guard.value());
            is_live(expires_at, self.now_ms).then(|| (expires_at, value.to_vec()))
        }))
    }

    fn count(&self, function: &str) -> Result<u64, redb::Error> {
        Ok(self.counts.get(function)?.map_or(0, |c| c.value()))
    }

    fn set_count(&mut self, function: &str, count: u64) -> Result<(), redb::Error> {
        if count == 0 {
            self.counts.remove(function)?;
        } else {
            self.counts.insert(function, count)?;
        }
        Ok(())
    }

    /// Stores an entry, counting a new key against its function's quota.
    fn put(
        &mut self,
        function: &str,
        key: &[u8],
        expires_at_ms: u64,
        value: &[u8],
    ) -> Result<Result<(), StoreError>, redb::Error> {
        let is_new = self.entries.get(key)?.is_none();
        if is_new {
            let limit = self.writer.max_keys_per_function;
            let mut count = self.count(function)?;
            if count >= limit as u64 {
                let may_have_expired = self
                    .writer
                    .first_expiry
                    .get(function)
                    .is_none_or(|&first| first <= self.now_ms);
                if may_have_expired {
                    count -= self.sweep(Some(function))?;
                }
                if count >= limit as u64 {
                    return Ok(Err(StoreError::QuotaExceeded(limit)));
                }
            }
            self.set_count(function, count + 1)?;
        }
        if expires_at_ms != 0
            && let Some(first) = self.writer.first_expiry.get_mut(function)
        {
            *first = (*first).min(expires_at_ms);
        }
        self.entries
            .insert(key, encode_value(expires_at_ms, value).as_slice())?;
        Ok(Ok(()))
    }

    fn remove(&mut self, function: &str, key: &[u8]) -> Result<(), redb::Error> {
        if self.entries.remove(key)?.is_some() {
            let count = self.count(function)?;
            self.set_count(function, count.saturating_sub(1))?;
        }
        Ok(())
    }

    /// Removes the expired entries of one function (or of all), returning how many went.
    fn sweep(&mut self, function: Option<&str>) -> Result<u64, redb::Error> {
        let now = self.now_ms;
        let mut removed: HashMap<String, u64> = HashMap::new();
        // The first expiry among the keys that stay, per function.
        let mut first_expiry: HashMap<String, u64> = HashMap::new();
        let mut tally = |key: &[u8], value: &[u8]| {
            let (expires_at, _) = decode_value(value);
            let Some(function) = function_of(key) else {
                return is_live(expires_at, now);
            };
            if is_live(expires_at, now) {
                let first = first_expiry.entry(function.to_owned()).or_insert(u64::MAX);
                if expires_at != 0 {
                    *first = (*first).min(expires_at);
                }
                return true;
            }
            *removed.entry(function.to_owned()).or_default() += 1;
            false
        };
        match function {
            Some(function) => {
                let start = function_prefix(function);
                let end = prefix_end(&start);
                let upper = match &end {
                    Some(end) => Bound::Excluded(end.as_slice()),
                    None => Bound::Unbounded,
                };
                self.entries
                    .retain_in::<&[u8], _>((Bound::Included(start.as_slice()), upper), |k, v| {
                        tally(k, v)
                    })?;
            }
            None => self.entries.retain(|k, v| tally(k, v))?,
        }
        match function {
            Some(function) => {
                let first = first_expiry.remove(function).unwrap_or(u64::MAX);
                self.writer.first_expiry.insert(function.to_owned(), first);
            }
            None => self.writer.first_expiry = first_expiry,
        }
        let mut total = 0;
        for (function, gone) in removed {
            let count = self.count(&function)?;
            self.set_count(&function, count.saturating_sub(gone))?;
            total += gone;
        }
        Ok(total)
    }
}

/// Runs the batches of writes until every sender is gone.
fn run_writer(db: Arc<Database>, jobs: mpsc::Receiver<Job>, max_keys_per_function: usize) {
    let mut writer = Writer {
        max_keys_per_function,
        first_expiry: HashMap::new(),
    };
    let mut next_sweep = Instant::now() + SWEEP_EVERY;
    loop {
        let first = match jobs.recv_timeout(next_sweep.saturating_duration_since(Instant::now())) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if Instant::now() >= next_sweep {
            if let Err(error) = sweep_all(&db, &mut writer) {
                tracing::warn!("removing expired keys failed: {error}");
            }
            next_sweep = Instant::now() + SWEEP_EVERY;
        }
        let Some(first) = first else { continue };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&db, batch, &mut writer);
    }
}

/// Applies a batch of writes in one transaction and tells each caller how it went. Should the
/// transaction fail, no write of the batch happened and every caller hears so.
fn commit_batch(db: &Database, batch: Vec<Job>, writer: &mut Writer) {
    let mut replies = Vec::with_capacity(batch.len());
    let committed = (|| -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut tables = Tables::open(&txn, writer)?;
            // A job that fails drops the jobs after it, whose callers then hear that
            // their write was not committed.
            for job in batch {
                replies.push(job(&mut tables)?);
            }
        }
        txn.commit()?;
        Ok(())
    })()
    .map_err(backend);
    if committed.is_err() {
        // What the failed transaction's sweeps learnt about expiries did not happen.
        writer.first_expiry.clear();
    }
    for reply in replies {
        reply(committed.clone());
    }
}

fn sweep_all(db: &Database, writer: &mut Writer) -> Result<(), redb::Error> {
    let result = (|| {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        Tables::open(&txn, writer)?.sweep(None)?;
        txn.commit()?;
        Ok(())
    })();
    if result.is_err() {
        writer.first_expiry.clear();
    }
    result
}

impl DurableStore {
    /// Opens (creating if needed) the store in `path`. Blocks on file I/O.
    pub fn open(path: &Path, max_keys_per_function: usize) -> Result<Self, OpenDurableError> {
        let failed = |source: redb::Error| OpenDurableError {
            path: path.to_owned(),
            source,
        };
        let db = Database::create(path).map_err(|e| failed(e.into()))?;
        // Both tables exist from the start so readers never meet a missing table.
        let created = (|| -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(ENTRIES)?;
            txn.open_table(KEY_COUNTS)?;
            txn.commit()?;
            Ok(())
        })();
        created.map_err(failed)?;
        let db = Arc::new(db);
        let (jobs, receiver) = mpsc::channel();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("wsfn-kv-writer".into())
            .spawn(move || run_writer(writer_db, receiver, max_keys_per_function))
            .map_err(|e| failed(e.into()))?;
        Ok(Self {
            db,
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    /// Runs `op` in the next batch on the writer thread and waits until it is committed.
    async fn write<R: Send + 'static>(
        &self,
        op: impl for<'t> FnOnce(&mut Tables<'t>) -> Result<Result<R, StoreError>, redb::Error>
        + Send
        + 'static,
    ) -> Result<R, StoreError> {
        let (done, outcome) = oneshot::channel();
        let job: Job = Box::new(move |tables| {
            let result = op(tables)?;
            Ok(Box::new(move |committed: Result<(), StoreError>| {
                let _ = done.send(committed.and(result));
            }) as Reply)
        });
        self.jobs
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(job)
            .map_err(|_| writer_gone())?;
        outcome.await.map_err(|_| writer_gone())?
    }

    /// Runs `op` on a snapshot of the entries, off the async workers.
    async fn read<R: Send + 'static>(
        &self,
        op: impl FnOnce(
            &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
            u64,
        ) -> Result<R, redb::Error>
        + Send
        + 'static,
    ) -> Result<R, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read()?;
            let table = txn.open_table(ENTRIES)?;
            op(&table, now_ms())
        })
        .await
        .map_err(|e| StoreError::Backend(format!("durable store: a read failed: {e}")))?
        .map_err(backend)
    }
}

impl Drop for DurableStore {
    fn drop(&mut self) {
        // The writer ends once its queue has no sender; waiting for it means the file is
        // closed when this returns, so the store can be opened again at once.
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

#[async_trait::async_trait]
impl KeyValueStore for DurableStore {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = entry_key(bucket, key);
        self.read(move |table, now| {
            Ok(table.get(key.as_slice())?.and_then(|guard| {
                let (expires_at, value) = decode_value(guard.value());
                is_live(expires_at, now).then(|| value.to_vec())
            }))
        })
        .await
    }

    async fn set(
        &self,
        bucket: &BucketId,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let function = bucket.function.clone();
        let key = entry_key(bucket, key);
        self.write(move |tables| {
            let expires_at = expiry_of(ttl, tables.now_ms);
            tables.put(&function, &key, expires_at, &value)
        })
        .await
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), StoreError> {
        let function = bucket.function.clone();
        let key = entry_key(bucket, key);
        self.write(move |tables| tables.remove(&function, &key).map(Ok))
            .await
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, StoreError> {
        Ok(self.get(bucket, key).await?.is_some())
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, StoreError> {
        let function = bucket.function.clone();
        let name = key.to_owned();
        let key = entry_key(bucket, key);
        self.write(move |tables| {
            let current = tables.live(&key)?;
            let next =
                match add_to_counter(&name, current.as_ref().map(|(_, v)| v.as_slice()), delta) {
                    Ok(next) => next,
                    Err(error) => return Ok(Err(error)),
                };
            // A counter keeps the expiry it had; a new (or expired) one never expires.
            let expires_at = current.map_or(0, |(expires_at, _)| expires_at);
            Ok(tables
                .put(&function, &key, expires_at, next.to_string().as_bytes())?
                .map(|()| next))
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        bucket: &BucketId,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let function = bucket.function.clone();
        let key = entry_key(bucket, key);
        let expected = expected.map(<[u8]>::to_vec);
        self.write(move |tables| {
            let current = tables.live(&key)?;
            if current.as_ref().map(|(_, v)| v.as_slice()) != expected.as_deref() {
                return Ok(Ok(false));
            }
            Ok(tables.put(&function, &key, 0, &new)?.map(|()| true))
        })
        .await
    }

    async fn list(
        &self,
        bucket: &BucketId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError> {
        let bucket_start = bucket_prefix(bucket);
        let mut wanted = bucket_start.clone();
        wanted.extend_from_slice(prefix.as_bytes());
        let start = match after {
            Some(after) if after >= prefix => {
                let mut start = bucket_start.clone();
                start.extend_from_slice(after.as_bytes());
                Bound::Excluded(start)
            }
            _ => Bound::Included(wanted.clone()),
        };
        self.read(move |table, now| {
            let start = match &start {
                Bound::Included(s) => Bound::Included(s.as_slice()),
                Bound::Excluded(s) => Bound::Excluded(s.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            };
            let mut keys = Vec::new();
            let mut more = false;
            for item in table.range::<&[u8]>((start, Bound::Unbounded))? {
                let (key, value) = item?;
                let key = key.value();
                if !key.starts_with(&wanted) {
                    break;
                }
                if !is_live(decode_value(value.value()).0, now) {
                    continue;
                }
                if keys.len() == limit {
                    more = true;
                    break;
                }
                // Keys were written from `&str`, so the bytes after the bucket are UTF-8.
                keys.push(String::from_utf8_lossy(&key[bucket_start.len()..]).into_owned());
            }
            let next_after = if more { keys.last().cloned() } else { None };
            Ok(KeyPage { keys, next_after })
        })
        .await
    }

    async fn key_count(&self, function: &str) -> Result<usize, StoreError> {
        let start = function_prefix(function);
        self.read(move |table, now| {
            let end = prefix_end(&start);
            let upper = match &end {
                Some(end) => Bound::Excluded(end.as_slice()),
                None => Bound::Unbounded,
            };
            let mut live = 0;
            for item in table.range::<&[u8]>((Bound::Included(start.as_slice()), upper))? {
                let (_, value) = item?;
                if is_live(decode_value(value.value()).0, now) {
                    live += 1;
                }
            }
            Ok(live)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_of_different_buckets_never_collide() {
        let id = |f: &str, b: &str| BucketId {
            function: f.into(),
            bucket: b.into(),
        };
        assert_ne!(
            entry_key(&id("a", "bc"), "d"),
            entry_key(&id("a", "b"), "cd")
        );
        assert_ne!(entry_key(&id("ab", ""), "c"), entry_key(&id("a", "b"), "c"));
        assert_eq!(function_of(&entry_key(&id("fn", "b"), "k")), Some("fn"));
    }

    #[test]
    fn prefix_end_is_the_first_string_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
    }
}
