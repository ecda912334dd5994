//! What `--redis` names: one server, the seed nodes of a Redis Cluster, or the Sentinels that
//! watch a primary.

/// The Redis deployment a host uses, as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// One URL. It may name a node of a Redis Cluster: connecting asks the server which it is.
    One(String),
    /// Several URLs: seed nodes of one Redis Cluster (any reachable one is enough).
    Cluster(Vec<String>),
    /// Sentinels (`redis://host:port/` each) watching the primary called `service`.
    Sentinel {
        sentinels: Vec<String>,
        service: String,
    },
}

/// Why a `--redis` value names no Redis.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("no Redis URL given")]
    Empty,
    /// The URL is not repeated: it may hold a password.
    #[error(
        "a Redis URL is not valid: use redis://[:PASSWORD@]HOST:PORT/[DB] (several, separated by commas, for a Redis Cluster's seed nodes)"
    )]
    NotAUrl,
    #[error(
        "a Sentinel URL names the primary after its hosts: redis+sentinel://host:port[,host:port...]/NAME"
    )]
    NoService,
    /// The host as written, less any `user:password@` part.
    #[error("`{0}` is not a Sentinel's host:port")]
    NotASentinel(String),
}

const SENTINEL_SCHEME: &str = "redis+sentinel://";

impl Address {
    /// Reads a `--redis` value: `redis://host:port/`, several of them separated by commas (a
    /// Redis Cluster's seeds), or `redis+sentinel://host:port[,host:port...]/NAME`.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix(SENTINEL_SCHEME) {
            return Self::parse_sentinel(rest);
        }
        let urls: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        for url in &urls {
            if redis::Client::open(url.as_str()).is_err() {
                return Err(AddressError::NotAUrl);
            }
        }
        match urls.len() {
            0 => Err(AddressError::Empty),
            1 => Ok(Self::One(urls.into_iter().next().unwrap_or_default())),
            _ => Ok(Self::Cluster(urls)),
        }
    }

    fn parse_sentinel(rest: &str) -> Result<Self, AddressError> {
        let (hosts, service) = rest.split_once('/').ok_or(AddressError::NoService)?;
        let service = service.trim_end_matches('/');
        if service.is_empty() || service.contains('/') {
            return Err(AddressError::NoService);
        }
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let url = format!("redis://{host}/");
            let valid = host
                .rsplit_once(':')
                .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok());
            if !valid || redis::Client::open(url.as_str()).is_err() {
                let shown = host.rsplit('@').next().unwrap_or_default();
                return Err(AddressError::NotASentinel(shown.to_owned()));
            }
            sentinels.push(url);
        }
        if sentinels.is_empty() {
            return Err(AddressError::Empty);
        }
        Ok(Self::Sentinel {
            sentinels,
            service: service.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_one_server_or_a_cluster_node() {
        assert_eq!(
            Address::parse(" redis://127.0.0.1:6379/ "),
            Ok(Address::One("redis://127.0.0.1:6379/".into()))
        );
    }

    #[test]
    fn several_urls_are_the_seeds_of_a_cluster() {
        assert_eq!(
            Address::parse("redis://127.0.0.1:7000/,redis://127.0.0.1:7001/,"),
            Ok(Address::Cluster(vec![
                "redis://127.0.0.1:7000/".into(),
                "redis://127.0.0.1:7001/".into()
            ]))
        );
    }

    #[test]
    fn a_sentinel_url_lists_hosts_then_the_primary_s_name() {
        assert_eq!(
            Address::parse("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/main/"),
            Ok(Address::Sentinel {
                sentinels: vec![
                    "redis://127.0.0.1:26379/".into(),
                    "redis://127.0.0.1:26380/".into()
                ],
                service: "main".into()
            })
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert_eq!(Address::parse(" , "), Err(AddressError::Empty));
        assert_eq!(Address::parse("localhost:6379"), Err(AddressError::NotAUrl));
        assert_eq!(
            Address::parse("redis+sentinel://127.0.0.1:26379"),
            Err(AddressError::NoService)
        );
        assert_eq!(
            Address::parse("redis+sentinel://127.0.0.1:26379/"),
            Err(AddressError::NoService)
        );
        assert_eq!(
            Address::parse("redis+sentinel://127.0.0.1/main"),
            Err(AddressError::NotASentinel("127.0.0.1".into()))
        );
        assert_eq!(
            Address::parse("redis+sentinel:///main"),
            Err(AddressError::Empty)
        );
        assert_eq!(
            Address::parse("redis+sentinel://ann:pass-word@127.0.0.1/main"),
            Err(AddressError::NotASentinel("127.0.0.1".into())),
            "no password in the message"
        );
    }
}
