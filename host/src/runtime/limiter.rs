//! Resource limits of one instance, remembering when a limit was hit so that the fault that
//! usually follows (a guest allocator aborting) can be reported as what it is: out of memory.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

use crate::config::Limits;

pub struct GuestLimiter {
    limits: StoreLimits,
    /// Set when a memory or table grow was refused during the current event.
    pub hit_limit: bool,
}

impl GuestLimiter {
    pub fn new(limits: &Limits) -> Self {
        Self {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.instance_memory)
                .instances(limits.instances_per_component)
                .tables(limits.tables_per_component)
                .memories(limits.memories_per_component)
                .table_elements(limits.table_elements)
                .build(),
            hit_limit: false,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        self.hit_limit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.table_growing(current, desired, maximum)?;
        self.hit_limit |= !allowed;
        Ok(allowed)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
