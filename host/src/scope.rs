//! What belongs to a function name rather than to one deployed version: its groups and its
//! counters. Every version, instance and connection of the function shares one scope, so a
//! hot swap keeps groups intact, and a connection can be told apart from another function's
//! by comparing scopes.

use std::sync::Arc;

use crate::connections::Groups;
use crate::stats::FunctionStats;

#[derive(Debug)]
pub struct FunctionScope {
    pub name: Arc<str>,
    pub groups: Groups,
    pub stats: FunctionStats,
}

impl FunctionScope {
    pub fn new(name: Arc<str>) -> Self {
        Self {
            name,
            groups: Groups::default(),
            stats: FunctionStats::default(),
        }
    }
}
