//! Host side of `wsfn:function/signing`: signed connection URLs minted by a function.

use crate::runtime::InstanceState;
use crate::runtime::bindings::wsfn::function::signing::Host;

impl Host for InstanceState {
    fn signed_url(
        &mut self,
        _query: Vec<(String, String)>,
        _ttl_ms: u64,
    ) -> wasmtime::Result<Result<String, String>> {
        Ok(Err("this host has no signing key configured".into()))
    }
}
