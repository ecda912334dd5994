//! How an import fails: with the WIT error its guest is told (a key that is too long, a
//! connection that is gone), or with a trap that ends the event (the guest passed a resource
//! it does not own). One type for both lets each import's host side use `?` on either; the
//! bindings hand the WIT error to the guest and raise the trap.

use wasmtime::component::ResourceTableError;

use super::bindings::wasi::keyvalue::store;
use super::bindings::wsfn::function::types::ConnectionError;

/// A failed import call.
#[derive(Debug)]
pub enum ImportError<E> {
    /// Returned to the guest as the import's error.
    Guest(E),
    /// Ends the event with a trap.
    Trap(wasmtime::Error),
}

/// A failed key-value import.
pub type KvError = ImportError<store::Error>;
/// A failed connection import.
pub type ConnectionFailure = ImportError<ConnectionError>;

impl<E> ImportError<E> {
    /// What the guest sees: its error, or a trap.
    pub fn into_guest(self) -> wasmtime::Result<E> {
        match self {
            ImportError::Guest(error) => Ok(error),
            ImportError::Trap(trap) => Err(trap),
        }
    }
}

impl From<store::Error> for KvError {
    fn from(error: store::Error) -> Self {
        ImportError::Guest(error)
    }
}

impl From<ConnectionError> for ConnectionFailure {
    fn from(error: ConnectionError) -> Self {
        ImportError::Guest(error)
    }
}

impl<E> From<wasmtime::Error> for ImportError<E> {
    fn from(trap: wasmtime::Error) -> Self {
        ImportError::Trap(trap)
    }
}

impl<E> From<ResourceTableError> for ImportError<E> {
    fn from(error: ResourceTableError) -> Self {
        ImportError::Trap(error.into())
    }
}
