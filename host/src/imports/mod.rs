//! The host side of each import a function calls: `connections` (send, close, groups,
//! attachments), `wasi:keyvalue` and `signing`. Each checks what the guest passed against the
//! host's limits and rules before it acts, and answers a typed error the guest can match on.

pub mod connections;
pub mod keyvalue;
pub mod signing;
