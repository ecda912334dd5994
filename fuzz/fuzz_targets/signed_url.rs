//! Structure-aware: signed connection URLs. A URL is minted for a chosen function and query,
//! read back as the front reads a request's query, and verified; then one thing about it is
//! changed (a value, a name, a pair added or dropped, the expiry, the signature, the time).
//!
//! Asserted: every URL the host mints verifies (before its expiry) and hides its two
//! parameters from the function; a URL whose decoded pairs, function or expiry differ from
//! what was signed never verifies; an expired one is refused as expired.
#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wsfn_host::signing::{
    EXPIRES_PARAM, SIGNATURE_PARAM, SigningKey, UrlSigning, VerifyError, is_reserved,
};

static SIGNING: LazyLock<UrlSigning> = LazyLock::new(|| {
    let key = SigningKey::new(vec![7; 32]).expect("a 32-byte key");
    UrlSigning::new(Some(key), Vec::<String>::new())
});

#[derive(Arbitrary, Debug)]
struct Input {
    function: String,
    query: Vec<(String, String)>,
    /// Seconds the URL lives, 1 to a day.
    ttl: u32,
    change: Change,
}

#[derive(Arbitrary, Debug)]
enum Change {
    Nothing,
    Value {
        pair: u8,
        value: String,
    },
    Name {
        pair: u8,
        name: String,
    },
    Add {
        name: String,
        value: String,
    },
    Drop {
        pair: u8,
    },
    Function(String),
    Expiry(u64),
    SignatureByte {
        at: u8,
        to: u8,
    },
    /// Verified this many seconds after the URL was made.
    Later(u32),
}

fuzz_target!(|input: Input| {
    if input.function.contains(['/', '?', '#']) || input.query.len() > 16 {
        return;
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let ttl = Duration::from_secs(1 + u64::from(input.ttl) % 86_400);
    let url = match SIGNING.sign(&input.function, &input.query, ttl, now) {
        Ok(url) => url,
        Err(_) => {
            assert!(input.query.iter().any(|(name, _)| is_reserved(name)));
            return;
        }
    };
    let query_text = url
        .path_and_query
        .split_once('?')
        .map(|(_, query)| query)
        .expect("a signed URL has a query");
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query_text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let verify = |function: &str, pairs: &[(String, String)], at: SystemTime| {
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        SIGNING.verify(function, &borrowed, at)
    };
    assert_eq!(
        verify(&input.function, &pairs, now),
        Ok(true),
        "a minted URL refused"
    );
    let shown: Vec<_> = pairs
        .iter()
        .filter(|(name, _)| !is_reserved(name))
        .cloned()
        .collect();
    assert_eq!(shown, input.query, "the function would see another query");

    let signed_pairs = shown.clone();
    let mut function = input.function.clone();
    let mut at = now;
    let data_len = signed_pairs.len();
    match input.change {
        Change::Nothing => {}
        Change::Value { pair, value } if data_len > 0 => {
            pairs[usize::from(pair) % data_len].1 = value
        }
        Change::Name { pair, name } if data_len > 0 => pairs[usize::from(pair) % data_len].0 = name,
        Change::Add { name, value } => pairs.insert(0, (name, value)),
        Change::Drop { pair } if data_len > 0 => {
            pairs.remove(usize::from(pair) % data_len);
        }
        Change::Function(other) => function = other,
        Change::Expiry(expiry) => {
            if let Some(pair) = pairs.iter_mut().find(|(name, _)| name == EXPIRES_PARAM) {
                pair.1 = expiry.to_string();
            }
        }
        Change::SignatureByte { at, to } => {
            if let Some(pair) = pairs.iter_mut().find(|(name, _)| name == SIGNATURE_PARAM) {
                let mut bytes = pair.1.clone().into_bytes();
                let i = usize::from(at) % bytes.len();
                bytes[i] = to;
                pair.1 = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        Change::Later(seconds) => at = now + Duration::from_secs(u64::from(seconds)),
        _ => {}
    }
    let expiry_of = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .find(|(name, _)| name == EXPIRES_PARAM)
            .map(|(_, value)| value.clone())
    };
    let same_signature = pairs.iter().filter(|(n, _)| n == SIGNATURE_PARAM).count() == 1
        && pairs
            .iter()
            .find(|(n, _)| n == SIGNATURE_PARAM)
            .map(|(_, v)| v.to_ascii_lowercase())
            == form_urlencoded::parse(query_text.as_bytes())
                .find(|(n, _)| n == SIGNATURE_PARAM)
                .map(|(_, v)| v.to_ascii_lowercase());
    let data_now: Vec<_> = pairs
        .iter()
        .filter(|(name, _)| !is_reserved(name))
        .cloned()
        .collect();
    let same = function == input.function
        && data_now == signed_pairs
        && expiry_of(&pairs) == Some(url.expires_at.to_string())
        && pairs.iter().filter(|(n, _)| n == EXPIRES_PARAM).count() == 1
        && same_signature;
    let result = verify(&function, &pairs, at);
    if !same {
        assert_ne!(result, Ok(true), "a changed URL verified: {pairs:?}");
    } else if at >= UNIX_EPOCH + Duration::from_secs(url.expires_at) {
        assert_eq!(result, Err(VerifyError::Expired));
    } else {
        assert_eq!(result, Ok(true));
    }
});
