//! Raw bytes as the value of `--redis` (or `redis = "..."` in the config file), read with the
//! call every Redis connection of the host starts from.
//!
//! Asserted beyond "no panic": what is accepted has the documented shape (one URL; two or
//! more seeds of a Redis Cluster; Sentinels as `redis://HOST:PORT/` with a primary's name
//! that has no `/`), and a refusal never repeats a URL's password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsfn_host::backplane::{Address, AddressError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Address::parse(text) {
        Ok(Address::One(url)) => {
            assert!(!url.is_empty() && !url.contains(','), "{url:?}");
            assert_eq!(url, url.trim());
        }
        Ok(Address::Cluster(seeds)) => {
            assert!(seeds.len() >= 2, "{seeds:?}");
            assert!(seeds.iter().all(|s| !s.is_empty() && !s.contains(',')));
        }
        Ok(Address::Sentinel { sentinels, service }) => {
            assert!(!sentinels.is_empty());
            assert!(!service.is_empty() && !service.contains('/'), "{service:?}");
            for sentinel in &sentinels {
                assert!(
                    sentinel.starts_with("redis://") && sentinel.ends_with('/'),
                    "{sentinel:?}"
                );
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            // A refusal must not print a URL's password: the same input with another
            // password of the same length and kind gets the very same message.
            if let Some((start, password)) = password_of(text)
                && !password.is_empty()
                && password.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                let other = if password.bytes().all(|b| b == b'Z') {
                    "Y"
                } else {
                    "Z"
                };
                let mut changed = text.to_owned();
                changed.replace_range(start..start + password.len(), &other.repeat(password.len()));
                let again = Address::parse(&changed)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                assert_eq!(
                    again,
                    Err(message.clone()),
                    "the message depends on the password of {text:?}"
                );
            }
            if let AddressError::NotASentinel(host) = &error {
                assert!(!host.contains('@'), "{host:?}");
            }
        }
    }
});

/// Where the password of the first `user:password@` in `text` starts, and the password.
fn password_of(text: &str) -> Option<(usize, &str)> {
    let at = text.find('@')?;
    let user_start = text[..at].rfind("//").map_or(0, |slashes| slashes + 2);
    let colon = text[user_start..at].find(':')? + user_start;
    Some((colon + 1, &text[colon + 1..at]))
}
