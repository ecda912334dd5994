//! Host side of `wsfn:function/signing`: signed connection URLs minted by a function.
//!
//! A function can only mint URLs for itself: the name signed is that of the instance's scope,
//! never one the guest passes.

use std::time::{Duration, SystemTime};

use crate::runtime::InstanceState;
use crate::runtime::bindings::wsfn::function::signing::Host;

impl Host for InstanceState {
    fn signed_url(
        &mut self,
        query: Vec<(String, String)>,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<String, String>> {
        let env = &self.env;
        Ok(env
            .signing
            .sign(
                &env.scope.name,
                &query,
                Duration::from_millis(ttl_ms),
                SystemTime::now(),
            )
            .map(|url| url.path_and_query)
            .map_err(|error| error.to_string()))
    }
}
