//! The crate-wide error type.

use core::fmt;

use crate::{ConnectionError, kv};

/// Why an operation of this crate failed.
///
/// It converts from each of its parts, so helpers that mix sends, JSON and key-value calls can
/// use `?` throughout and return `Result<_, wsfn_guest::Error>`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The host refused a call on a connection or group.
    Connection(ConnectionError),
    /// A value could not be turned into JSON, or a message or attachment was not the JSON
    /// that was expected.
    #[cfg(feature = "json")]
    Json(serde_json::Error),
    /// A key-value call failed.
    KeyValue(kv::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connection(e) => match e {
                ConnectionError::NotFound => f.write_str("connection not found"),
                ConnectionError::Invalid(why) => write!(f, "invalid argument: {why}"),
                ConnectionError::LimitExceeded(why) => write!(f, "limit exceeded: {why}"),
            },
            #[cfg(feature = "json")]
            Error::Json(e) => write!(f, "JSON: {e}"),
            Error::KeyValue(e) => write!(f, "key-value: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connection(e) => Some(e),
            #[cfg(feature = "json")]
            Error::Json(e) => Some(e),
            Error::KeyValue(e) => Some(e),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        Error::Connection(e)
    }
}

#[cfg(feature = "json")]
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

impl From<kv::Error> for Error {
    fn from(e: kv::Error) -> Self {
        Error::KeyValue(e)
    }
}
