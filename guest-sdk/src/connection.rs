//! Reaching connections and groups.

#[cfg(feature = "json")]
use serde::Serialize;
#[cfg(feature = "json")]
use serde::de::DeserializeOwned;

#[cfg(feature = "json")]
use crate::Error;
use crate::bindings::wsfn::function::connections as host;
use crate::{ConnectionError, ConnectionId, Message};

/// A handle on one WebSocket connection, by id.
///
/// Handlers receive the connection their event is about; [`Connection::from_id`] makes a
/// handle for any other (for example an id kept in the key-value store). A handle is only an
/// id: the connection may close at any time, after which calls on it return
/// [`ConnectionError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    id: ConnectionId,
    // Set only for the connection whose `on_message` is running: the host's `reply` import
    // answers that connection without looking it up, which is the cheapest send there is.
    current: bool,
}

impl Connection {
    pub(crate) fn current(id: ConnectionId) -> Self {
        Connection { id, current: true }
    }

    /// A handle on the connection with this id.
    pub fn from_id(id: impl Into<ConnectionId>) -> Self {
        Connection {
            id: id.into(),
            current: false,
        }
    }

    /// The connection's id: unguessable, never reused, safe to give to clients.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id, by value.
    pub fn into_id(self) -> ConnectionId {
        self.id
    }

    /// Sends `message` to this connection and ignores whether it is still open.
    ///
    /// Text goes out as a text message, bytes as a binary one: `conn.reply("hi")`,
    /// `conn.reply(vec![1, 2])`, `conn.reply(message)`. Use [`send`](Self::send) to learn
    /// whether the connection was still there.
    pub fn reply(&self, message: impl Into<Message>) {
        let message = message.into();
        if self.current {
            host::reply(&message);
        } else {
            // A reply to a connection that has gone has nobody to read it; dropping it
            // silently matches the host's own `reply`.
            let _ = host::send(&self.id, &message);
        }
    }

    /// Sends `value` as a JSON text message, ignoring whether the connection is still open.
    ///
    /// Fails only if `value` cannot be serialised.
    #[cfg(feature = "json")]
    pub fn reply_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.reply(Message::json(value)?);
        Ok(())
    }

    /// Sends `message` to this connection.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), ConnectionError> {
        host::send(&self.id, &message.into())
    }

    /// Sends `value` to this connection as a JSON text message.
    #[cfg(feature = "json")]
    pub fn send_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        Ok(self.send(Message::json(value)?)?)
    }

    /// Closes the connection with `code` (1000, or 3000 to 4999) and `reason` (at most 123
    /// bytes). Its `on_close` runs once the close completes.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), ConnectionError> {
        host::close(&self.id, code, reason)
    }

    /// Adds the connection to `group` (group names are 1 to 128 bytes).
    pub fn join(&self, group: &str) -> Result<(), ConnectionError> {
        host::join(&self.id, group)
    }

    /// Removes the connection from `group`; does nothing if it was not a member.
    pub fn leave(&self, group: &str) {
        host::leave(&self.id, group)
    }

    /// The bytes stored with the connection, if any (readable in `on_close` too).
    pub fn attachment(&self) -> Result<Option<Vec<u8>>, ConnectionError> {
        host::get_attachment(&self.id)
    }

    /// The attachment as text; bytes that are not UTF-8 are replaced with U+FFFD.
    pub fn attachment_text(&self) -> Result<Option<String>, ConnectionError> {
        Ok(self
            .attachment()?
            .map(|bytes| match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }))
    }

    /// The attachment parsed as JSON; `None` if there is none.
    #[cfg(feature = "json")]
    pub fn attachment_json<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        match self.attachment()? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Replaces the attachment with `bytes` (at most 64 KiB).
    pub fn set_attachment(&self, bytes: impl AsRef<[u8]>) -> Result<(), ConnectionError> {
        host::set_attachment(&self.id, Some(bytes.as_ref()))
    }

    /// Replaces the attachment with `value` as JSON.
    #[cfg(feature = "json")]
    pub fn set_attachment_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        Ok(self.set_attachment(serde_json::to_vec(value)?)?)
    }

    /// Removes the attachment.
    pub fn clear_attachment(&self) -> Result<(), ConnectionError> {
        host::set_attachment(&self.id, None)
    }
}

/// A named group of connections, for broadcast.
///
/// Groups exist while they have members; connections join with [`Connection::join`] or
/// [`Decision::join`](crate::Decision::join) and leave automatically when they close.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    name: String,
}

impl Group {
    /// A handle on the group called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Group { name: name.into() }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `message` to every member; returns how many it was sent to.
    pub fn publish(&self, message: impl Into<Message>) -> u32 {
        host::publish(&self.name, &message.into(), None)
    }

    /// Sends `message` to every member but `except` (typically the sender).
    pub fn publish_except(&self, message: impl Into<Message>, except: &Connection) -> u32 {
        host::publish(&self.name, &message.into(), Some(except.id()))
    }

    /// Sends `value` as a JSON text message to every member.
    #[cfg(feature = "json")]
    pub fn publish_json<T: Serialize + ?Sized>(&self, value: &T) -> Result<u32, Error> {
        Ok(self.publish(Message::json(value)?))
    }

    /// Sends `value` as a JSON text message to every member but `except`.
    #[cfg(feature = "json")]
    pub fn publish_json_except<T: Serialize + ?Sized>(
        &self,
        value: &T,
        except: &Connection,
    ) -> Result<u32, Error> {
        Ok(self.publish_except(Message::json(value)?, except))
    }

    /// The ids of the current members.
    pub fn members(&self) -> Vec<ConnectionId> {
        host::group_members(&self.name)
    }
}

/// Sends the same message to many connections; returns how many were open.
///
/// One host call however many ids, which is why it takes ids rather than [`Connection`]s.
pub fn send_many(ids: &[ConnectionId], message: impl Into<Message>) -> u32 {
    host::send_many(ids, &message.into())
}
