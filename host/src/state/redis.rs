//! The Redis key-value store: state shared by every host that uses the same Redis.
//!
//! Every operation that reads and then writes (increment, compare-and-swap, the quota) is one
//! Lua script, so it is atomic on the server however many hosts call it. Expiry uses Redis's
//! own `PX`, measured by the server's clock.
//!
//! All keys start with `wsfn:kv:` followed by the function in a hash tag, so one function's
//! keys live together. Names are length-prefixed, so no two (function, bucket, key) triples
//! share a Redis key:
//!
//! - `wsfn:kv:{<len>:<function>}:v:<len>:<bucket>:<key>` — a value;
//! - `wsfn:kv:{<len>:<function>}:i:<len>:<bucket>` — the bucket's keys, a sorted set with every
//!   score 0, so `ZRANGEBYLEX` lists them in byte order;
//! - `wsfn:kv:{<len>:<function>}:n` — how many keys the function holds (for the quota);
//! - `wsfn:kv:{<len>:<function>}:x` — the function's keys with a time to live, scored by expiry,
//!   so expired keys can be dropped from the index and the count.

use std::time::Duration;

use redis::{AsyncCommands, RedisError, Script};

use crate::backplane::{ConnectError, RedisConnection};

use super::{BucketId, KeyPage, KeyValueStore, StoreError};

/// Expired keys a write removes from the index on its way, so the index does not grow with
/// keys nobody touches again.
const PURGE_PER_WRITE: u32 = 100;

/// Why the Redis store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenRedisError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

/// Definitions shared by every script: the names of the keys it works on, the server's time,
/// and removing expired keys from the index.
///
/// KEYS: value, bucket index, count, expiries. ARGV: function base, bucket part, key, then
/// the script's own arguments from ARGV[4].
const PRELUDE: &str = r#"
local value_key, index_key, count_key, exp_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base, bucket, key = ARGV[1], ARGV[2], ARGV[3]
local member = bucket .. ":" .. key
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function count()
  return tonumber(redis.call("GET", count_key) or "0")
end

-- Forgets up to `limit` keys whose time to live has run out; returns how many.
local function purge(limit)
  local gone = redis.call("ZRANGEBYSCORE", exp_key, "-inf", now, "LIMIT", 0, limit)
  for _, m in ipairs(gone) do
    local colon = string.find(m, ":", 1, true)
    local len = tonumber(string.sub(m, 1, colon - 1))
    local index = base .. "i:" .. string.sub(m, 1, colon + len)
    redis.call("DEL", base .. "v:" .. m)
    if redis.call("ZREM", index, string.sub(m, colon + len + 2)) == 1 then
      redis.call("DECR", count_key)
    end
    redis.call("ZREM", exp_key, m)
  end
  return #gone
end

-- Makes room for `key` within the quota; false when the function has no room left.
local function reserve(max)
  if redis.call("ZSCORE", index_key, key) then
    return true
  end
  if count() >= max then
    while purge(1000) == 1000 do end
    if count() >= max then
      return false
    end
  end
  redis.call("ZADD", index_key, 0, key)
  redis.call("INCR", count_key)
  return true
end
"#;

/// ARGV[4]: value, ARGV[5]: time to live in ms (0: none), ARGV[6]: quota, ARGV[7]: how many
/// expired keys to purge first.
/// Returns 0, or 1 when the quota is used up.
const SET: &str = r#"
purge(tonumber(ARGV[7]))
if not reserve(tonumber(ARGV[6])) then
  return 1
end
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call("SET", value_key, ARGV[4], "PX", ttl)
  redis.call("ZADD", exp_key, now + ttl, member)
else
  redis.call("SET", value_key, ARGV[4])
  redis.call("ZREM", exp_key, member)
end
return 0
"#;

const DELETE: &str = r#"
redis.call("DEL", value_key)
redis.call("ZREM", exp_key, member)
if redis.call("ZREM", index_key, key) == 1 then
  redis.call("DECR", count_key)
end
return 0
"#;

/// ARGV[4]: the delta in decimal, ARGV[5]: quota, ARGV[6]: expired keys to purge. Counters are added as decimal strings, since
/// Lua's numbers cannot hold every 64-bit integer. Returns {0, new value}, {1, ""} when the value is
/// not a number, {2, ""} on overflow, {3, ""} when the quota is used up.
const INCREMENT: &str = r#"
local MAX = "18446744073709551615"

local function add(a, b)
  local digits, carry = {}, 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then d = d + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then d = d + string.byte(b, j) - 48; j = j - 1 end
    digits[#digits + 1] = string.char(48 + d % 10)
    carry = math.floor(d / 10)
  end
  return string.reverse(table.concat(digits))
end

purge(tonumber(ARGV[6]))
local current = redis.call("GET", value_key)
local digits = "0"
if current then
  digits = string.match(current, "^%+?([0-9]+)$")
  if not digits then
    return {1, ""}
  end
  digits = (string.gsub(digits, "^0+", ""))
  if digits == "" then digits = "0" end
  if #digits > 20 or (#digits == 20 and digits > MAX) then
    return {1, ""}
  end
end
local sum = add(digits, ARGV[4])
if #sum > 20 or (#sum == 20 and sum > MAX) then
  return {2, ""}
end
if current then
  redis.call("SET", value_key, sum, "KEEPTTL")
else
  if not reserve(tonumber(ARGV[5])) then
    return {3, ""}
  end
  redis.call("SET", value_key, sum)
  redis.call("ZREM", exp_key, member)
end
return {0, sum}
"#;

/// ARGV[4]: "1" when a current value is expected, ARGV[5]: that value, ARGV[6]: the new value,
/// ARGV[7]: quota, ARGV[8]: expired keys to purge. Returns 1 when swapped, 0 when the current value differs, 2 when the quota
/// is used up.
const COMPARE_AND_SWAP: &str = r#"
purge(tonumber(ARGV[8]))
local current = redis.call("GET", value_key)
if ARGV[4] == "1" then
  if current ~= ARGV[5] then return 0 end
elseif current then
  return 0
end
if not reserve(tonumber(ARGV[7])) then
  return 2
end
redis.call("SET", value_key, ARGV[6])
redis.call("ZREM", exp_key, member)
return 1
"#;

/// ARGV[3]: the prefix, ARGV[4]: where to start (a ZRANGEBYLEX bound), ARGV[5]: how many live
/// keys to return at most. Index entries of keys that expired are dropped on the way.
const LIST: &str = r#"
local prefix, start, wanted = ARGV[3], ARGV[4], tonumber(ARGV[5])
local found = {}
while #found < wanted do
  local batch = redis.call("ZRANGEBYLEX", index_key, start, "+", "LIMIT", 0, 100)
  for _, k in ipairs(batch) do
    if string.sub(k, 1, #prefix) ~= prefix then
      return found
    end
    if redis.call("EXISTS", base .. "v:" .. bucket .. ":" .. k) == 1 then
      found[#found + 1] = k
      if #found == wanted then return found end
    else
      redis.call("ZREM", exp_key, bucket .. ":" .. k)
      if redis.call("ZREM", index_key, k) == 1 then
        redis.call("DECR", count_key)
      end
    end
  end
  if #batch < 100 then
    return found
  end
  start = "(" .. batch[#batch]
end
return found
"#;

/// Live keys: those counted minus those whose time ran out but are not yet purged.
const KEY_COUNT: &str = r#"
local live = count() - redis.call("ZCOUNT", exp_key, "-inf", now)
if live < 0 then return 0 end
return live
"#;

/// The scripts, each loaded once per connection and then called by its digest.
struct Scripts {
    set: Script,
    delete: Script,
    increment: Script,
    compare_and_swap: Script,
    list: Script,
    key_count: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Self {
            set: script(SET),
            delete: script(DELETE),
            increment: script(INCREMENT),
            compare_and_swap: script(COMPARE_AND_SWAP),
            list: script(LIST),
            key_count: script(KEY_COUNT),
        }
    }
}

/// The Redis keys of one key of one bucket, and what the scripts need to find the others.
struct Names {
    /// `wsfn:kv:{<len>:<function>}:`
    base: String,
    /// `<len>:<bucket>`
    bucket: String,
}

impl Names {
    fn of_function(function: &str) -> Self {
        Self {
            base: format!("wsfn:kv:{{{}:{function}}}:", function.len()),
            bucket: String::new(),
        }
    }

    fn of(id: &BucketId) -> Self {
        Self {
            bucket: format!("{}:{}", id.bucket.len(), id.bucket),
            ..Self::of_function(&id.function)
        }
    }

    fn value(&self, key: &str) -> String {
        format!("{}v:{}:{key}", self.base, self.bucket)
    }

    /// A script call with the four keys and three common arguments of [`PRELUDE`].
    fn invocation<'s>(&self, script: &'s Script, key: &str) -> redis::ScriptInvocation<'s> {
        let mut call = script.prepare_invoke();
        call.key(self.value(key))
            .key(format!("{}i:{}", self.base, self.bucket))
            .key(format!("{}n", self.base))
            .key(format!("{}x", self.base))
            .arg(&self.base)
            .arg(&self.bucket)
            .arg(key);
        call
    }
}

fn backend(error: RedisError) -> StoreError {
    StoreError::Backend(format!("Redis: {error}"))
}

/// The key-value store in Redis.
pub struct RedisStore {
    connection: RedisConnection,
    scripts: Scripts,
    max_keys_per_function: usize,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis at `url`, failing if it cannot be reached now. Later outages make
    /// calls fail with [`StoreError::Backend`] while the connection is re-established.
    pub async fn connect(url: &str, max_keys_per_function: usize) -> Result<Self, OpenRedisError> {
        let connection = RedisConnection::open(url).await?;
        Ok(Self {
            connection,
            scripts: Scripts::new(),
            max_keys_per_function,
        })
    }

    fn connection(&self) -> RedisConnection {
        self.connection.clone()
    }

    fn quota(&self) -> String {
        self.max_keys_per_function.to_string()
    }
}

#[async_trait::async_trait]
impl KeyValueStore for RedisStore {
    async fn get(&self, bucket: &BucketId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = Names::of(bucket).value(key);
        self.connection().get(key).await.map_err(backend)
    }

    async fn set(
        &self,
        bucket: &BucketId,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let ttl_ms = match ttl {
            None => 0,
            // Expired on arrival: the key is gone, as a zero time to live means elsewhere.
            Some(ttl) if ttl.is_zero() => return self.delete(bucket, key).await,
            Some(ttl) => u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
        };
        let names = Names::of(bucket);
        let outcome: i64 = names
            .invocation(&self.scripts.set, key)
            .arg(value)
            .arg(ttl_ms)
            .arg(self.quota())
            .arg(PURGE_PER_WRITE)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend)?;
        match outcome {
            0 => Ok(()),
            _ => Err(StoreError::QuotaExceeded(self.max_keys_per_function)),
        }
    }

    async fn delete(&self, bucket: &BucketId, key: &str) -> Result<(), StoreError> {
        let names = Names::of(bucket);
        let _: i64 = names
            .invocation(&self.scripts.delete, key)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn exists(&self, bucket: &BucketId, key: &str) -> Result<bool, StoreError> {
        let key = Names::of(bucket).value(key);
        self.connection().exists(key).await.map_err(backend)
    }

    async fn increment(&self, bucket: &BucketId, key: &str, delta: u64) -> Result<u64, StoreError> {
        let names = Names::of(bucket);
        let (outcome, value): (i64, String) = names
            .invocation(&self.scripts.increment, key)
            .arg(delta.to_string())
            .arg(self.quota())
            .arg(PURGE_PER_WRITE)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend)?;
        match (outcome, value) {
            (0, value) => value.parse().map_err(|_| {
                StoreError::Backend(format!("Redis: the counter `{key}` became `{value}`"))
            }),
            (1, _) => Err(StoreError::NotANumber(key.to_owned())),
            (2, _) => Err(StoreError::Overflow(key.to_owned())),
            _ => Err(StoreError::QuotaExceeded(self.max_keys_per_function)),
        }
    }

    async fn compare_and_swap(
        &self,
        bucket: &BucketId,
        key: &str,
        expected: Option<&[u8]>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let names = Names::of(bucket);
        let outcome: i64 = names
            .invocation(&self.scripts.compare_and_swap, key)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(new)
            .arg(self.quota())
            .arg(PURGE_PER_WRITE)
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend)?;
        match outcome {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(StoreError::QuotaExceeded(self.max_keys_per_function)),
        }
    }

    async fn list(
        &self,
        bucket: &BucketId,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError> {
        let start = match after {
            Some(after) if after >= prefix => format!("({after}"),
            _ => format!("[{prefix}"),
        };
        let names = Names::of(bucket);
        // One more than asked for tells whether another page follows.
        let mut keys: Vec<String> = names
            .invocation(&self.scripts.list, prefix)
            .arg(start)
            .arg(limit.saturating_add(1))
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend)?;
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next_after = if more { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next_after })
    }

    async fn key_count(&self, function: &str) -> Result<usize, StoreError> {
        let names = Names::of_function(function);
        let count: i64 = names
            .invocation(&self.scripts.key_count, "")
            .invoke_async(&mut self.connection())
            .await
            .map_err(backend)?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}
