//! One conformance suite for every key-value backend: the same test bodies run against the
//! in-memory store, the durable store and Redis (a real `redis-server`), through the library's
//! `KeyValueStore` trait, so the backends cannot drift apart in what they promise.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use wsfn_host::state::{BucketId, DurableStore, KeyValueStore, StoreError, StoreKind, open_store};

use crate::support::{RedisServer, TestDir, poll_until};

/// A quota no test reaches.
const UNLIMITED: usize = usize::MAX;
/// A time to live short enough to wait out.
const SHORT_TTL: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Durable,
    Redis,
}

/// A store under test and what keeps it alive.
struct Backend {
    store: Arc<dyn KeyValueStore>,
    redis: Option<RedisServer>,
    _dir: Arc<TestDir>,
}

impl Backend {
    async fn open(kind: Kind, max_keys_per_function: usize) -> Self {
        let dir = TestDir::new();
        let redis = (kind == Kind::Redis).then(|| RedisServer::start(&dir));
        let store_kind = match kind {
            Kind::Memory => StoreKind::Memory,
            _ => StoreKind::Durable,
        };
        let store = open_store(
            store_kind,
            redis.as_ref().map(RedisServer::url).as_deref(),
            dir.path(),
            max_keys_per_function,
        )
        .await
        .unwrap_or_else(|error| panic!("the store opens: {error}"));
        Self {
            store,
            redis,
            _dir: dir,
        }
    }
}

fn bucket(function: &str, bucket: &str) -> BucketId {
    BucketId {
        function: function.into(),
        bucket: bucket.into(),
    }
}

async fn get(store: &dyn KeyValueStore, id: &BucketId, key: &str) -> Option<Vec<u8>> {
    store.get(id, key).await.expect("get succeeds")
}

async fn set(store: &dyn KeyValueStore, id: &BucketId, key: &str, value: &[u8]) {
    store
        .set(id, key, value.to_vec(), None)
        .await
        .expect("set succeeds");
}

async fn all_keys(store: &dyn KeyValueStore, id: &BucketId, prefix: &str) -> Vec<String> {
    let page = store
        .list(id, prefix, None, 10_000)
        .await
        .expect("list succeeds");
    assert_eq!(page.next_after, None, "everything fits in one page");
    page.keys
}

async fn gets_sets_deletes_and_checks_existence(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "default");
    assert_eq!(get(store, &b, "k").await, None);
    assert!(!store.exists(&b, "k").await.unwrap());

    set(store, &b, "k", b"one").await;
    assert_eq!(get(store, &b, "k").await, Some(b"one".to_vec()));
    assert!(store.exists(&b, "k").await.unwrap());

    set(store, &b, "k", b"\x00binary\xff").await;
    assert_eq!(get(store, &b, "k").await, Some(b"\x00binary\xff".to_vec()));
    set(store, &b, "empty", b"").await;
    assert_eq!(get(store, &b, "empty").await, Some(Vec::new()));

    store.delete(&b, "k").await.unwrap();
    assert_eq!(get(store, &b, "k").await, None);
    assert!(!store.exists(&b, "k").await.unwrap());
    // Deleting what is not there is not an error.
    store.delete(&b, "k").await.unwrap();
}

async fn values_expire_after_their_time_to_live(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "");
    store
        .set(&b, "short", b"v".to_vec(), Some(SHORT_TTL))
        .await
        .unwrap();
    store
        .set(&b, "renewed", b"v".to_vec(), Some(SHORT_TTL))
        .await
        .unwrap();
    // Setting again without a time to live makes the value permanent.
    set(store, &b, "renewed", b"kept").await;
    set(store, &b, "forever", b"v").await;
    store
        .set(&b, "gone", b"v".to_vec(), Some(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        get(store, &b, "gone").await,
        None,
        "a zero TTL expires at once"
    );

    poll_until("the short-lived key expires", async || {
        (!store.exists(&b, "short").await.unwrap()).then_some(())
    })
    .await;
    assert_eq!(get(store, &b, "short").await, None);
    assert_eq!(get(store, &b, "renewed").await, Some(b"kept".to_vec()));
    assert_eq!(get(store, &b, "forever").await, Some(b"v".to_vec()));
    assert_eq!(all_keys(store, &b, "").await, vec!["forever", "renewed"]);
    assert_eq!(store.key_count("f").await.unwrap(), 2);
}

async fn increments_decimal_counters(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "");
    assert_eq!(
        store.increment(&b, "n", 2).await,
        Ok(2),
        "absent counts as 0"
    );
    assert_eq!(store.increment(&b, "n", 3).await, Ok(5));
    assert_eq!(store.increment(&b, "n", 0).await, Ok(5));
    assert_eq!(get(store, &b, "n").await, Some(b"5".to_vec()));

    set(store, &b, "text", b"41").await;
    assert_eq!(store.increment(&b, "text", 1).await, Ok(42));
    set(store, &b, "padded", b"007").await;
    assert_eq!(store.increment(&b, "padded", 1).await, Ok(8));
    assert_eq!(get(store, &b, "padded").await, Some(b"8".to_vec()));

    let near_max = (u64::MAX - 1).to_string();
    set(store, &b, "big", near_max.as_bytes()).await;
    assert_eq!(store.increment(&b, "big", 1).await, Ok(u64::MAX));
    assert_eq!(
        get(store, &b, "big").await,
        Some(u64::MAX.to_string().into_bytes())
    );
}

async fn increments_refuse_non_numbers_and_overflow(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "");
    for not_a_number in [
        &b"x"[..],
        b"",
        b"-1",
        b"1.5",
        b" 1",
        b"18446744073709551616",
    ] {
        set(store, &b, "s", not_a_number).await;
        assert_eq!(
            store.increment(&b, "s", 1).await,
            Err(StoreError::NotANumber("s".into())),
            "incrementing {:?}",
            String::from_utf8_lossy(not_a_number)
        );
        assert_eq!(get(store, &b, "s").await.as_deref(), Some(not_a_number));
    }

    set(store, &b, "max", u64::MAX.to_string().as_bytes()).await;
    assert_eq!(
        store.increment(&b, "max", 1).await,
        Err(StoreError::Overflow("max".into()))
    );
    assert_eq!(store.increment(&b, "fresh", u64::MAX).await, Ok(u64::MAX));
    assert_eq!(
        store.increment(&b, "fresh", u64::MAX).await,
        Err(StoreError::Overflow("fresh".into()))
    );
    assert_eq!(
        get(store, &b, "max").await,
        Some(u64::MAX.to_string().into_bytes()),
        "a refused increment changes nothing"
    );
}

async fn concurrent_increments_sum_exactly(kind: Kind) {
    const TASKS: u64 = 8;
    const EACH: u64 = 40;
    let backend = Backend::open(kind, UNLIMITED).await;
    let b = bucket("f", "");
    let runs = (0..TASKS).map(|_| {
        let store = backend.store.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..EACH {
                seen.push(
                    store
                        .increment(&b, "n", 1)
                        .await
                        .expect("increment succeeds"),
                );
            }
            seen
        })
    });
    let mut values = BTreeSet::new();
    for seen in futures_util::future::join_all(runs).await {
        for value in seen.expect("the task finishes") {
            assert!(values.insert(value), "{value} was handed out twice");
        }
    }
    assert_eq!(values, (1..=TASKS * EACH).collect::<BTreeSet<u64>>());
    assert_eq!(
        get(&*backend.store, &b, "n").await,
        Some((TASKS * EACH).to_string().into_bytes())
    );
}

async fn compare_and_swap_checks_the_current_value(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "");
    assert_eq!(
        store
            .compare_and_swap(&b, "k", Some(b"1"), b"x".to_vec())
            .await,
        Ok(false),
        "a value is expected but the key is absent"
    );
    assert_eq!(get(store, &b, "k").await, None);
    assert_eq!(
        store.compare_and_swap(&b, "k", None, b"1".to_vec()).await,
        Ok(true),
        "absence was expected"
    );
    assert_eq!(
        store.compare_and_swap(&b, "k", None, b"2".to_vec()).await,
        Ok(false)
    );
    assert_eq!(
        store
            .compare_and_swap(&b, "k", Some(b"9"), b"2".to_vec())
            .await,
        Ok(false)
    );
    assert_eq!(get(store, &b, "k").await, Some(b"1".to_vec()));
    assert_eq!(
        store
            .compare_and_swap(&b, "k", Some(b"1"), b"2".to_vec())
            .await,
        Ok(true)
    );
    assert_eq!(get(store, &b, "k").await, Some(b"2".to_vec()));

    // An expired value counts as absent.
    store
        .set(&b, "t", b"old".to_vec(), Some(SHORT_TTL))
        .await
        .unwrap();
    poll_until("the key expires", async || {
        (!store.exists(&b, "t").await.unwrap()).then_some(())
    })
    .await;
    assert_eq!(
        store
            .compare_and_swap(&b, "t", Some(b"old"), b"x".to_vec())
            .await,
        Ok(false)
    );
    assert_eq!(
        store.compare_and_swap(&b, "t", None, b"new".to_vec()).await,
        Ok(true)
    );
    assert_eq!(get(store, &b, "t").await, Some(b"new".to_vec()));
}

async fn exactly_one_concurrent_compare_and_swap_wins(kind: Kind) {
    const TASKS: usize = 16;
    let backend = Backend::open(kind, UNLIMITED).await;
    let b = bucket("f", "");
    let runs = (0..TASKS).map(|task| {
        let store = backend.store.clone();
        let b = b.clone();
        tokio::spawn(async move {
            let mine = task.to_string().into_bytes();
            let won = store
                .compare_and_swap(&b, "lock", None, mine.clone())
                .await
                .expect("compare-and-swap succeeds");
            won.then_some(mine)
        })
    });
    let winners: Vec<Vec<u8>> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(|won| won.expect("the task finishes"))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one swap from absent wins");
    assert_eq!(
        get(&*backend.store, &b, "lock").await,
        Some(winners[0].clone())
    );
}

async fn lists_by_prefix_in_byte_order_in_pages(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "");
    for key in [
        "b", "a/2", "a/10", "a", "a/Z", "ab", "a/\u{e9}", "a/1", "a/", "a0",
    ] {
        set(store, &b, key, b"").await;
    }
    let expected = ["a/", "a/1", "a/10", "a/2", "a/Z", "a/\u{e9}"];
    assert_eq!(all_keys(store, &b, "a/").await, expected);

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list(&b, "a/", cursor.as_deref(), 2).await.unwrap();
        assert!(page.keys.len() <= 2);
        pages += 1;
        paged.extend(page.keys);
        match page.next_after {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(paged, expected);
    assert_eq!(pages, 3);

    assert_eq!(
        all_keys(store, &b, "").await,
        [
            "a", "a/", "a/1", "a/10", "a/2", "a/Z", "a/\u{e9}", "a0", "ab", "b"
        ]
    );
    assert!(all_keys(store, &b, "zz").await.is_empty());
    let after = store.list(&b, "a/", Some("a/2"), 10).await.unwrap();
    assert_eq!(after.keys, ["a/Z", "a/\u{e9}"]);
}

async fn buckets_and_functions_are_isolated(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    // Pairs whose names would run together if they were simply joined.
    let places = [
        (bucket("f", "b"), "k"),
        (bucket("f", "c"), "k"),
        (bucket("g", "b"), "k"),
        (bucket("f", "a:1"), "x"),
        (bucket("f", "a"), "1:x"),
        (bucket("fa", ""), "k"),
        (bucket("f", "a"), "k"),
        (bucket("f", ""), "ak"),
    ];
    for (n, (b, key)) in places.iter().enumerate() {
        set(store, b, key, n.to_string().as_bytes()).await;
    }
    for (n, (b, key)) in places.iter().enumerate() {
        assert_eq!(get(store, b, key).await, Some(n.to_string().into_bytes()));
    }
    assert_eq!(all_keys(store, &bucket("f", "b"), "").await, ["k"]);
    assert_eq!(all_keys(store, &bucket("f", "a"), "").await, ["1:x", "k"]);
    assert_eq!(all_keys(store, &bucket("f", ""), "").await, ["ak"]);
    assert_eq!(store.key_count("f").await.unwrap(), 6);
    assert_eq!(store.key_count("g").await.unwrap(), 1);
    assert_eq!(store.key_count("fa").await.unwrap(), 1);
    assert_eq!(store.key_count("nobody").await.unwrap(), 0);

    store.delete(&bucket("f", "b"), "k").await.unwrap();
    assert_eq!(
        get(store, &bucket("g", "b"), "k").await,
        Some(b"2".to_vec())
    );
    assert_eq!(store.key_count("f").await.unwrap(), 5);
}

async fn a_function_keeps_at_most_its_quota_of_keys(kind: Kind) {
    let backend = Backend::open(kind, 3).await;
    let store = &*backend.store;
    let b = bucket("f", "one");
    let other_bucket = bucket("f", "two");
    set(store, &b, "1", b"").await;
    set(store, &b, "2", b"").await;
    set(store, &other_bucket, "3", b"0").await;
    let full = Err(StoreError::QuotaExceeded(3));
    assert_eq!(store.set(&b, "4", Vec::new(), None).await, full);
    assert_eq!(store.increment(&b, "4", 1).await.map(|_| ()), full);
    assert_eq!(
        store
            .compare_and_swap(&b, "4", None, Vec::new())
            .await
            .map(|_| ()),
        full
    );
    assert_eq!(
        get(store, &b, "4").await,
        None,
        "a refused write stores nothing"
    );

    // Replacing an existing key needs no room; other functions have their own quota.
    set(store, &b, "2", b"x").await;
    assert_eq!(store.increment(&other_bucket, "3", 1).await, Ok(1));
    set(store, &bucket("g", "one"), "4", b"").await;
    store.delete(&b, "1").await.unwrap();
    set(store, &b, "4", b"").await;

    // Expired keys make room again.
    store.delete(&b, "4").await.unwrap();
    store
        .set(&b, "brief", Vec::new(), Some(SHORT_TTL))
        .await
        .unwrap();
    assert_eq!(store.set(&b, "5", Vec::new(), None).await, full);
    poll_until("the brief key expires", async || {
        (!store.exists(&b, "brief").await.unwrap()).then_some(())
    })
    .await;
    set(store, &b, "5", b"").await;
    assert_eq!(store.key_count("f").await.unwrap(), 3);

    // So does a key that was given a time to live after a write was refused.
    assert_eq!(store.set(&b, "6", Vec::new(), None).await, full);
    store
        .set(&b, "5", Vec::new(), Some(SHORT_TTL))
        .await
        .unwrap();
    poll_until("the key given a time to live expires", async || {
        (!store.exists(&b, "5").await.unwrap()).then_some(())
    })
    .await;
    set(store, &b, "6", b"").await;
    assert_eq!(store.key_count("f").await.unwrap(), 3);
}

async fn counts_live_keys_per_function(kind: Kind) {
    let backend = Backend::open(kind, UNLIMITED).await;
    let store = &*backend.store;
    assert_eq!(store.key_count("f").await.unwrap(), 0);
    for n in 0..5 {
        set(
            store,
            &bucket("f", &format!("b{}", n % 2)),
            &n.to_string(),
            b"",
        )
        .await;
    }
    store.increment(&bucket("f", "c"), "n", 1).await.unwrap();
    assert_eq!(store.key_count("f").await.unwrap(), 6);
    set(store, &bucket("f", "b0"), "0", b"again").await;
    assert_eq!(
        store.key_count("f").await.unwrap(),
        6,
        "replacing adds nothing"
    );
    store.delete(&bucket("f", "b0"), "0").await.unwrap();
    store.delete(&bucket("f", "b0"), "absent").await.unwrap();
    assert_eq!(store.key_count("f").await.unwrap(), 5);
}

/// Generates one test per backend for each case.
macro_rules! for_every_backend {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                super::$case(super::Kind::Memory).await
            })*
        }
        mod durable {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                super::$case(super::Kind::Durable).await
            })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() {
                super::$case(super::Kind::Redis).await
            })*
        }
    };
}

for_every_backend!(
    gets_sets_deletes_and_checks_existence,
    values_expire_after_their_time_to_live,
    increments_decimal_counters,
    increments_refuse_non_numbers_and_overflow,
    concurrent_increments_sum_exactly,
    compare_and_swap_checks_the_current_value,
    exactly_one_concurrent_compare_and_swap_wins,
    lists_by_prefix_in_byte_order_in_pages,
    buckets_and_functions_are_isolated,
    a_function_keeps_at_most_its_quota_of_keys,
    counts_live_keys_per_function,
);

#[tokio::test(flavor = "multi_thread")]
async fn the_durable_store_keeps_its_data_when_reopened() {
    let dir = TestDir::new();
    let path = dir.path().join("state.redb");
    let b = bucket("f", "");
    {
        let store = DurableStore::open(&path, UNLIMITED).expect("the store opens");
        set(&store, &b, "k", b"v").await;
        assert_eq!(store.increment(&b, "n", 7).await, Ok(7));
        store
            .set(&b, "later", b"v".to_vec(), Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        store
            .set(&b, "brief", b"v".to_vec(), Some(SHORT_TTL))
            .await
            .unwrap();
        set(&store, &b, "deleted", b"v").await;
        store.delete(&b, "deleted").await.unwrap();
    }
    let store = DurableStore::open(&path, UNLIMITED).expect("the store opens again");
    assert_eq!(get(&store, &b, "k").await, Some(b"v".to_vec()));
    assert_eq!(store.increment(&b, "n", 1).await, Ok(8));
    assert_eq!(get(&store, &b, "later").await, Some(b"v".to_vec()));
    assert_eq!(get(&store, &b, "deleted").await, None);
    poll_until("the brief key expires, across the restart", async || {
        (!store.exists(&b, "brief").await.unwrap()).then_some(())
    })
    .await;
    assert_eq!(store.key_count("f").await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_durable_store_cannot_be_opened_twice() {
    let dir = TestDir::new();
    let path = dir.path().join("state.redb");
    let _first = DurableStore::open(&path, UNLIMITED).expect("the store opens");
    let error = DurableStore::open(&path, UNLIMITED).expect_err("the file is in use");
    assert!(
        error.to_string().contains("another wsfn-host"),
        "the error says why: {error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_redis_key_is_under_the_key_value_namespace() {
    let backend = Backend::open(Kind::Redis, UNLIMITED).await;
    let store = &*backend.store;
    let b = bucket("f", "any bucket: {with} odd * chars");
    set(store, &b, "k", b"v").await;
    store
        .set(&b, "t", b"v".to_vec(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    store.increment(&b, "n", 1).await.unwrap();
    store
        .compare_and_swap(&b, "c", None, b"v".to_vec())
        .await
        .unwrap();
    let url = backend.redis.as_ref().expect("a Redis backend").url();
    let client = ::redis::Client::open(url).expect("a valid URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is reachable");
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .expect("KEYS succeeds");
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.starts_with("wsfn:kv:"),
            "{key} is outside the namespace"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachableredis_is_a_clear_error() {
    let dir = TestDir::new();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let url = format!("redis://127.0.0.1:{port}/");
    let error = match open_store(StoreKind::Durable, Some(&url), dir.path(), UNLIMITED).await {
        Ok(_) => panic!("nothing listens on {url}"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("cannot connect to Redis at 127.0.0.1"),
        "the error names Redis and its address: {error}"
    );
}
