//! The URLs a client connects to: checked once up front, taken in turn by successive
//! attempts (so reconnects alternate between the nodes of a cluster), and given the query
//! parameters that ask for a session or name the one to resume.

use crate::Error;
use crate::transport::WsUrl;

/// The query parameters of the session protocol, which this client sets itself.
const SESSION_PARAM: &str = "wsfn-session";
const RESUME_PARAM: &str = "wsfn-resume";

/// The protocol version this client speaks.
const VERSION: &str = "1";

#[derive(Debug)]
pub(crate) struct Endpoints {
    urls: Vec<String>,
    /// How many attempts were made, which picks the URL of the next one.
    attempts: usize,
}

impl Endpoints {
    pub(crate) fn new(urls: &[String]) -> Result<Self, Error> {
        if urls.is_empty() {
            return Err(Error::NoUrl);
        }
        for url in urls {
            check(url)?;
        }
        Ok(Self {
            urls: urls.iter().map(|url| without_session_params(url)).collect(),
            attempts: 0,
        })
    }

    /// The URL of the next attempt.
    pub(crate) fn next(&mut self) -> &str {
        let url = &self.urls[self.attempts % self.urls.len()];
        self.attempts = self.attempts.wrapping_add(1);
        url
    }

    pub(crate) fn len(&self) -> usize {
        self.urls.len()
    }
}

fn check(url: &str) -> Result<(), Error> {
    WsUrl::parse(url)
        .map(|_| ())
        .map_err(|reason| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        })
}

/// `url` asking for a new session.
pub(crate) fn starting(url: &str) -> String {
    with_params(url, &[(SESSION_PARAM, VERSION)])
}

/// `url` asking to resume the session `id`.
pub(crate) fn resuming(url: &str, id: &str) -> String {
    with_params(url, &[(SESSION_PARAM, VERSION), (RESUME_PARAM, id)])
}

/// Appends query pairs (which need no escaping: the protocol's values are hex and digits).
fn with_params(url: &str, pairs: &[(&str, &str)]) -> String {
    let (base, fragment) = split_fragment(url);
    let mut out = base.to_owned();
    for (name, value) in pairs {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out.push_str(fragment);
    out
}

/// `url` without any `wsfn-session` or `wsfn-resume` pair the caller put there: the client
/// decides those on every attempt.
fn without_session_params(url: &str) -> String {
    let (base, fragment) = split_fragment(url);
    let Some((path, query)) = base.split_once('?') else {
        return url.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !pair.is_empty() && name != SESSION_PARAM && name != RESUME_PARAM
        })
        .collect();
    let mut out = path.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    out.push_str(fragment);
    out
}

fn split_fragment(url: &str) -> (&str, &str) {
    match url.find('#') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_session_parameters_to_any_query() {
        assert_eq!(starting("ws://h/f"), "ws://h/f?wsfn-session=1");
        assert_eq!(starting("ws://h/f?a=1"), "ws://h/f?a=1&wsfn-session=1");
        assert_eq!(
            resuming("ws://h/f?a=1", "abc"),
            "ws://h/f?a=1&wsfn-session=1&wsfn-resume=abc"
        );
    }

    #[test]
    fn rotates_through_the_urls_and_drops_stale_session_parameters() {
        let urls = [
            "ws://a/f?wsfn-session=1&x=1&wsfn-resume=old".to_owned(),
            "ws://b/f?wsfn-session=1".to_owned(),
        ];
        let mut endpoints = Endpoints::new(&urls).unwrap();
        assert_eq!(endpoints.next(), "ws://a/f?x=1");
        assert_eq!(endpoints.next(), "ws://b/f");
        assert_eq!(endpoints.next(), "ws://a/f?x=1");
    }

    #[test]
    fn refuses_what_is_not_a_websocket_url() {
        assert!(matches!(Endpoints::new(&[]), Err(Error::NoUrl)));
        for url in ["http://h/f", "not a url", ""] {
            assert!(
                matches!(
                    Endpoints::new(&[url.to_owned()]),
                    Err(Error::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
    }
}
