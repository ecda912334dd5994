//! Signed connection URLs: minting them (admin API, guest import) and checking them during the
//! handshake, before any function code runs.
//!
//! A signed URL is `/<function>?<pairs>&wsfn-expires=<unix seconds>&wsfn-signature=<hex>`.
//! The signature is an HMAC-SHA256, under the host's signing key, of the function name, the
//! query pairs in order and the expiry. Every field is length-prefixed in the MAC input, so no
//! two different (function, pairs, expiry) produce the same input: a client cannot move
//! bytes from a name into a value, split a pair or drop one without invalidating the MAC.
//!
//! The pairs are signed as the function will see them (percent-decoded), which is also how
//! the handshake reads them back, so any encoding of the same pairs verifies.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The query pair holding the expiry, in unix seconds.
pub const EXPIRES_PARAM: &str = "wsfn-expires";
/// The query pair holding the hex HMAC.
pub const SIGNATURE_PARAM: &str = "wsfn-signature";
/// The shortest signing key accepted: as long as the HMAC-SHA256 output.
pub const MIN_KEY_LEN: usize = 32;
/// The longest a signed URL may stay valid.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Tells this MAC input apart from any other use of the same key.
const DOMAIN: &[u8] = b"wsfn signed url v1\0";

/// The secret signed URLs are made with. Its bytes never appear in logs.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; only an empty key type could refuse.
        <HmacSha256 as Mac>::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({} bytes)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key is {0} bytes; it must be at least {MIN_KEY_LEN}")]
    TooShort(usize),
}

/// Why a signed URL could not be minted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("this host has no signing key: start it with --signing-key-file or WSFN_SIGNING_KEY")]
    NoKey,
    #[error("the time to live must be more than zero")]
    ZeroTtl,
    #[error("the time to live may be at most {} seconds", MAX_TTL.as_secs())]
    TtlTooLong,
    #[error("the query pair `{0}` is the host's own; choose another name")]
    ReservedName(String),
}

/// Why a connection's signed URL was refused (answered with 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("this function accepts only signed URLs")]
    Required,
    #[error("a signed URL needs both {EXPIRES_PARAM} and {SIGNATURE_PARAM}")]
    Incomplete,
    #[error("{0} appears more than once")]
    Repeated(&'static str),
    #[error("{EXPIRES_PARAM} is not a number of seconds")]
    BadExpiry,
    #[error("{SIGNATURE_PARAM} is not 64 hex digits")]
    BadSignature,
    #[error("the signed URL has expired")]
    Expired,
    #[error("the signature does not match")]
    Mismatch,
    #[error("this host does not accept signed URLs (it has no signing key)")]
    NoKey,
}

/// A freshly minted URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// `/<function>?...`, to put after the host's `ws://` or `wss://` address.
    pub path_and_query: String,
    /// When it stops being accepted, in unix seconds.
    pub expires_at: u64,
}

/// The host's signing policy: its key, if it has one, and which functions accept only signed
/// URLs.
#[derive(Debug, Default)]
pub struct UrlSigning {
    key: Option<SigningKey>,
    required: HashSet<String>,
}

impl UrlSigning {
    pub fn new(key: Option<SigningKey>, required: impl IntoIterator<Item = String>) -> Self {
        Self {
            key,
            required: required.into_iter().collect(),
        }
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Whether `function` refuses connections without a valid signature.
    pub fn is_required(&self, function: &str) -> bool {
        self.required.contains(function)
    }

    /// Mints a URL for `function` with `query`, valid for `ttl` from `now`.
    pub fn sign(
        &self,
        function: &str,
        query: &[(String, String)],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SignedUrl, SignError> {
        let key = self.key.as_ref().ok_or(SignError::NoKey)?;
        if ttl.is_zero() {
            return Err(SignError::ZeroTtl);
        }
        if ttl > MAX_TTL {
            return Err(SignError::TtlTooLong);
        }
        if let Some((name, _)) = query.iter().find(|(name, _)| is_reserved(name)) {
            return Err(SignError::ReservedName(name.clone()));
        }
        // Rounded up, so the URL lives at least `ttl`.
        let expiry = unix_ms(now).saturating_add(ttl.as_millis() as u64);
        let expires_at = expiry.div_ceil(1000);
        let pairs = query.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let signature = hex(&mac_of(key, function, pairs, expires_at)
            .finalize()
            .into_bytes());

        let mut encoded = form_urlencoded::Serializer::new(String::new());
        for (name, value) in query {
            encoded.append_pair(name, value);
        }
        encoded.append_pair(EXPIRES_PARAM, &expires_at.to_string());
        encoded.append_pair(SIGNATURE_PARAM, &signature);
        Ok(SignedUrl {
            path_and_query: format!("/{function}?{}", encoded.finish()),
            expires_at,
        })
    }

    /// Checks the decoded query pairs of a handshake to `function`.
    ///
    /// Ok(false): no signature and none needed. Ok(true): a valid signature; the caller
    /// removes the two `wsfn-` pairs before the function sees the query.
    pub fn verify(
        &self,
        function: &str,
        query: &[(&str, &str)],
        now: SystemTime,
    ) -> Result<bool, VerifyError> {
        let expires = single(query, EXPIRES_PARAM)?;
        let signature = single(query, SIGNATURE_PARAM)?;
        let (expires, signature) = match (expires, signature) {
            (None, None) if self.is_required(function) => return Err(VerifyError::Required),
            (None, None) => return Ok(false),
            (Some(expires), Some(signature)) => (expires, signature),
            _ => return Err(VerifyError::Incomplete),
        };
        let key = self.key.as_ref().ok_or(VerifyError::NoKey)?;
        let expires_at: u64 = expires
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| expires.parse().ok())
            .flatten()
            .ok_or(VerifyError::BadExpiry)?;
        let signature = unhex(signature).ok_or(VerifyError::BadSignature)?;
        let pairs = query.iter().copied().filter(|(name, _)| !is_reserved(name));
        // Constant-time comparison: a client learns nothing from how long a refusal takes.
        mac_of(key, function, pairs, expires_at)
            .verify_slice(&signature)
            .map_err(|_| VerifyError::Mismatch)?;
        // Checked after the MAC, so an expiry is only reported for URLs this host made.
        if unix_ms(now) >= expires_at.saturating_mul(1000) {
            return Err(VerifyError::Expired);
        }
        Ok(true)
    }
}

/// Whether a query pair is one the host adds to a signed URL.
pub fn is_reserved(name: &str) -> bool {
    name == EXPIRES_PARAM || name == SIGNATURE_PARAM
}

/// The value of the pair `name`, refusing a repeated one (which pair was signed would be
/// ambiguous).
fn single<'q>(
    query: &[(&str, &'q str)],
    name: &'static str,
) -> Result<Option<&'q str>, VerifyError> {
    let mut found = query
        .iter()
        .filter(|(key, _)| *key == name)
        .map(|(_, v)| *v);
    let first = found.next();
    if found.next().is_some() {
        return Err(VerifyError::Repeated(name));
    }
    Ok(first)
}

/// The MAC over the canonical encoding: the domain, then the function name, the number of
/// pairs, each name and value, each length-prefixed (u64, big-endian), and the expiry.
fn mac_of<'a>(
    key: &SigningKey,
    function: &str,
    pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    expires_at: u64,
) -> HmacSha256 {
    let mut mac = key.mac();
    let field = |mac: &mut HmacSha256, bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    mac.update(DOMAIN);
    field(&mut mac, function.as_bytes());
    mac.update(&(pairs.clone().count() as u64).to_be_bytes());
    for (name, value) in pairs {
        field(&mut mac, name.as_bytes());
        field(&mut mac, value.as_bytes());
    }
    mac.update(&expires_at.to_be_bytes());
    mac
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly 32 bytes written as 64 hex digits (either case).
fn unhex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(required: &[&str]) -> UrlSigning {
        let key = SigningKey::new(vec![7; 32]).unwrap();
        UrlSigning::new(Some(key), required.iter().map(|s| s.to_string()))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The decoded pairs a handshake would read from a minted URL.
    fn decoded(url: &SignedUrl) -> Vec<(String, String)> {
        let (_, query) = url.path_and_query.split_once('?').unwrap();
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn check(
        signing: &UrlSigning,
        function: &str,
        query: &[(String, String)],
        now: SystemTime,
    ) -> Result<bool, VerifyError> {
        let borrowed: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        signing.verify(function, &borrowed, now)
    }

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_minted_url_verifies_until_it_expires() {
        let signing = signing(&[]);
        let now = SystemTime::now();
        let url = signing
            .sign(
                "chat",
                &pairs(&[("room", "a b&c"), ("user", "ann")]),
                TTL,
                now,
            )
            .unwrap();
        assert!(
            url.path_and_query
                .starts_with("/chat?room=a+b%26c&user=ann&wsfn-expires=")
        );
        let query = decoded(&url);
        assert_eq!(check(&signing, "chat", &query, now), Ok(true));
        let later = UNIX_EPOCH + Duration::from_secs(url.expires_at);
        assert_eq!(
            check(&signing, "chat", &query, later),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let signing = signing(&[]);
        let now = SystemTime::now();
        let url = signing
            .sign("chat", &pairs(&[("room", "ab"), ("user", "c")]), TTL, now)
            .unwrap();
        let query = decoded(&url);
        assert_eq!(
            check(&signing, "other", &query, now),
            Err(VerifyError::Mismatch)
        );

        // Bytes moved between a value and the next name.
        let mut moved = query.clone();
        moved[0].1 = "a".into();
        moved[1].0 = "buser".into();
        assert_eq!(
            check(&signing, "chat", &moved, now),
            Err(VerifyError::Mismatch)
        );

        let mut added = query.clone();
        added.insert(0, ("admin".into(), "1".into()));
        assert_eq!(
            check(&signing, "chat", &added, now),
            Err(VerifyError::Mismatch)
        );

        let mut dropped = query.clone();
        dropped.remove(0);
        assert_eq!(
            check(&signing, "chat", &dropped, now),
            Err(VerifyError::Mismatch)
        );

        let mut extended = query.clone();
        extended[2].1 = (url.expires_at + 3600).to_string();
        assert_eq!(
            check(&signing, "chat", &extended, now),
            Err(VerifyError::Mismatch)
        );

        let other_key = UrlSigning::new(Some(SigningKey::new(vec![8; 32]).unwrap()), []);
        assert_eq!(
            check(&other_key, "chat", &query, now),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let signing = signing(&["locked"]);
        let now = SystemTime::now();
        let query = |list: &[(&str, &str)]| pairs(list);
        assert_eq!(check(&signing, "chat", &query(&[]), now), Ok(false));
        assert_eq!(
            check(&signing, "locked", &query(&[]), now),
            Err(VerifyError::Required)
        );
        assert_eq!(
            check(&signing, "chat", &query(&[(EXPIRES_PARAM, "1")]), now),
            Err(VerifyError::Incomplete)
        );
        let sig = "0".repeat(64);
        assert_eq!(
            check(
                &signing,
                "chat",
                &query(&[(EXPIRES_PARAM, "-1"), (SIGNATURE_PARAM, &sig)]),
                now
            ),
            Err(VerifyError::BadExpiry)
        );
        assert_eq!(
            check(
                &signing,
                "chat",
                &query(&[(EXPIRES_PARAM, "1"), (SIGNATURE_PARAM, "zz")]),
                now
            ),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            check(
                &signing,
                "chat",
                &query(&[
                    (EXPIRES_PARAM, "1"),
                    (EXPIRES_PARAM, "2"),
                    (SIGNATURE_PARAM, &sig)
                ]),
                now
            ),
            Err(VerifyError::Repeated(EXPIRES_PARAM))
        );
    }

    #[test]
    fn minting_checks_its_input() {
        let now = SystemTime::now();
        let none = UrlSigning::default();
        assert_eq!(none.sign("chat", &[], TTL, now), Err(SignError::NoKey));
        let signing = signing(&[]);
        assert_eq!(
            signing.sign("chat", &[], Duration::ZERO, now),
            Err(SignError::ZeroTtl)
        );
        assert_eq!(
            signing.sign("chat", &[], MAX_TTL + Duration::from_secs(1), now),
            Err(SignError::TtlTooLong)
        );
        assert_eq!(
            signing.sign("chat", &pairs(&[(SIGNATURE_PARAM, "x")]), TTL, now),
            Err(SignError::ReservedName(SIGNATURE_PARAM.into()))
        );
        assert!(matches!(
            SigningKey::new(vec![1; 31]),
            Err(KeyError::TooShort(31))
        ));
    }
}
