//! Deciding on a new connection: [`ConnectRequest`] and [`Decision`].

#[cfg(feature = "json")]
use crate::Error;
use crate::bindings::exports::wsfn::function::websocket_connection as raw;

/// What the client asked for in its upgrade request (the fields are public).
pub use raw::ConnectRequest;

impl ConnectRequest {
    /// The value of the first query pair named `name` (already percent-decoded), if any.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the first header named `name`, compared without regard to case (the
    /// host already lower-cases header names; this lets callers write `"Origin"`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the client offered `protocol` in `Sec-WebSocket-Protocol`.
    pub fn offers_subprotocol(&self, protocol: &str) -> bool {
        self.subprotocols.iter().any(|offered| offered == protocol)
    }
}

/// The answer to a [`ConnectRequest`]: accept (optionally shaped) or reject.
///
/// ```
/// use wsfn_guest::Decision;
///
/// let accepted = Decision::accept().subprotocol("chat.v1").join("room:1").attachment("ann");
/// assert!(accepted.is_accept());
/// let rejected = Decision::reject(401, "log in first");
/// assert!(!rejected.is_accept());
/// ```
///
/// The shaping methods ([`subprotocol`](Self::subprotocol), [`join`](Self::join),
/// [`attachment`](Self::attachment)) apply to an accept and leave a reject unchanged, so a
/// chain never has to branch on which one it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a Decision does nothing unless it is returned from on_connect"]
pub struct Decision(raw::Decision);

impl Decision {
    /// Accept with no subprotocol, no groups and no attachment.
    pub fn accept() -> Self {
        Decision(raw::Decision::Accept(raw::Accept {
            subprotocol: None,
            groups: Vec::new(),
            attachment: None,
        }))
    }

    /// Refuse the connection: the client gets HTTP `status` with `reason` as the body.
    ///
    /// The host only accepts statuses 400 to 599 and sends 403 for anything else.
    pub fn reject(status: u16, reason: impl Into<String>) -> Self {
        Decision(raw::Decision::Reject(raw::Reject {
            status,
            reason: reason.into(),
        }))
    }

    /// Confirm `protocol` to the client; it must be one the client offered.
    pub fn subprotocol(mut self, protocol: impl Into<String>) -> Self {
        if let raw::Decision::Accept(accept) = &mut self.0 {
            accept.subprotocol = Some(protocol.into());
        }
        self
    }

    /// Join `group` before the first message arrives (may be called several times).
    pub fn join(mut self, group: impl Into<String>) -> Self {
        if let raw::Decision::Accept(accept) = &mut self.0 {
            accept.groups.push(group.into());
        }
        self
    }

    /// Store `bytes` with the connection (at most 64 KiB); see [`Connection::attachment`].
    ///
    /// [`Connection::attachment`]: crate::Connection::attachment
    pub fn attachment(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let raw::Decision::Accept(accept) = &mut self.0 {
            accept.attachment = Some(bytes.into());
        }
        self
    }

    /// Store `value` as JSON with the connection; see [`Connection::attachment_json`].
    ///
    /// [`Connection::attachment_json`]: crate::Connection::attachment_json
    #[cfg(feature = "json")]
    pub fn attachment_json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, Error> {
        Ok(self.attachment(serde_json::to_vec(value)?))
    }

    /// Whether this accepts the connection.
    pub fn is_accept(&self) -> bool {
        matches!(self.0, raw::Decision::Accept(_))
    }

    /// The generated record, for callers that need to inspect or build it directly.
    pub fn into_raw(self) -> raw::Decision {
        self.0
    }
}

impl From<raw::Decision> for Decision {
    fn from(decision: raw::Decision) -> Self {
        Decision(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ConnectRequest {
        ConnectRequest {
            id: "c1".into(),
            path: "/chat".into(),
            query: vec![
                ("room".into(), "a b".into()),
                ("room".into(), "second".into()),
            ],
            headers: vec![("origin".into(), "https://app".into())],
            subprotocols: vec!["x".into(), "wsfn.v1".into()],
            remote_address: "127.0.0.1:5000".into(),
            signed: false,
        }
    }

    #[test]
    fn request_helpers_find_first_match() {
        let request = request();
        assert_eq!(request.query_param("room"), Some("a b"));
        assert_eq!(request.query_param("user"), None);
        assert_eq!(request.header("Origin"), Some("https://app"));
        assert!(request.offers_subprotocol("wsfn.v1"));
        assert!(!request.offers_subprotocol("wsfn"));
    }

    #[test]
    fn accept_builder_fills_every_field() {
        let decision = Decision::accept()
            .subprotocol("wsfn.v1")
            .join("a")
            .join("b")
            .attachment("who");
        assert_eq!(
            decision.into_raw(),
            raw::Decision::Accept(raw::Accept {
                subprotocol: Some("wsfn.v1".into()),
                groups: vec!["a".into(), "b".into()],
                attachment: Some(b"who".to_vec()),
            })
        );
    }

    #[test]
    fn shaping_a_reject_leaves_it_alone() {
        let decision = Decision::reject(401, "no").join("a").attachment("x");
        assert_eq!(
            decision.into_raw(),
            raw::Decision::Reject(raw::Reject {
                status: 401,
                reason: "no".into()
            })
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn attachment_json_serialises() {
        let decision = Decision::accept()
            .attachment_json(&serde_json::json!({"user": "ann"}))
            .map(Decision::into_raw);
        match decision {
            Ok(raw::Decision::Accept(accept)) => {
                assert_eq!(
                    accept.attachment.as_deref(),
                    Some(&br#"{"user":"ann"}"#[..])
                )
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
