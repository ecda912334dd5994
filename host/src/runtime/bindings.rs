//! Rust bindings for the `wsfn:function/function` world, generated from `wit/`.
//!
//! Only the generated code lives here. Imports that may touch a remote store are `async`:
//! the key-value imports, and the connection imports that read what other nodes of a cluster
//! hold (group members, a remote attachment, the member count of a publish). The others only
//! queue frames or commands and never wait, so they stay synchronous. Imports that fail with
//! a WIT error return it through [`ImportError`], so their host side is written with `?`.
//! Exports take borrowed arguments so a frame's payload is lowered straight into guest memory
//! without an owned copy on the host.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wsfn:function/function",
    ownership: Borrowing { duplicate_if_necessary: true },
    imports: {
        "wasi:keyvalue": async | trappable,
        "wsfn:function/keyvalue-ext": async | trappable,
        "wsfn:function/connections.publish": async | trappable,
        "wsfn:function/connections.group-members": async | trappable,
        "wsfn:function/connections.get-attachment": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    trappable_error_type: {
        "wasi:keyvalue/store.error" => crate::runtime::KvError,
        "wsfn:function/types.connection-error" => crate::runtime::ConnectionFailure,
    },
    with: {
        "wasi:keyvalue/store.bucket": crate::state::BucketId,
    },
});
