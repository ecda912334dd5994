//! Constructors and accessors for [`Message`].

#[cfg(feature = "json")]
use serde::Serialize;
#[cfg(feature = "json")]
use serde::de::DeserializeOwned;

use crate::Message;

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Vec<u8>>) -> Self {
        Message::Binary(bytes.into())
    }

    /// A text message holding `value` as JSON.
    ///
    /// Text rather than binary because that is what browser clients expect to `JSON.parse`.
    #[cfg(feature = "json")]
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Message::Text)
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// The text of a text message; `None` for a binary one.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
        }
    }

    /// The payload, whichever kind the message is (text as its UTF-8 bytes).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The payload as owned bytes, without copying.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Message::Text(text) => text.into_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// Parses the payload as JSON; works for text and binary messages alike.
    ///
    /// The error says what was wrong (and where), so it is fit to send back to the client.
    #[cfg(feature = "json")]
    pub fn parse_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.as_bytes())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Self {
        Message::Binary(bytes)
    }
}

impl From<&[u8]> for Message {
    fn from(bytes: &[u8]) -> Self {
        Message::Binary(bytes.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_pick_the_kind() {
        assert_eq!(Message::from("hi"), Message::Text("hi".into()));
        assert_eq!(Message::from(vec![1u8, 2]), Message::Binary(vec![1, 2]));
        assert_eq!(Message::from(&[3u8][..]), Message::Binary(vec![3]));
        assert!(Message::text("x").is_text());
        assert_eq!(Message::binary(vec![0u8]).as_text(), None);
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trip_from_text_and_binary() {
        let message = Message::json(&serde_json::json!({"n": 1})).map_err(|e| e.to_string());
        assert_eq!(message, Ok(Message::Text(r#"{"n":1}"#.into())));
        let value: serde_json::Value = Message::binary(&b"[1,2]"[..])
            .parse_json()
            .unwrap_or_default();
        assert_eq!(value, serde_json::json!([1, 2]));
        assert!(
            Message::text("{")
                .parse_json::<serde_json::Value>()
                .is_err()
        );
        assert_eq!(Message::text("ab").into_bytes(), b"ab".to_vec());
    }
}
