//! The table of every open connection on this host, by id.
//!
//! Sharded, so events on different connections do not contend on one lock.

use std::sync::Arc;

use dashmap::DashMap;

use super::connection::Connection;
use super::id::ConnectionId;
use crate::connections::FunctionScope;

#[derive(Debug, Default)]
pub struct ConnectionTable {
    connections: DashMap<ConnectionId, Arc<Connection>>,
}

impl ConnectionTable {
    pub fn insert(&self, connection: Arc<Connection>) {
        self.connections.insert(connection.id, connection);
    }

    /// Removes a connection from the table and from its groups, so nothing can reach it any
    /// more. Returns the groups it left.
    pub fn remove(&self, connection: &Connection) -> Vec<Box<str>> {
        self.connections.remove(&connection.id);
        connection.scope.groups.leave_all(connection)
    }

    pub fn get(&self, id: ConnectionId) -> Option<Arc<Connection>> {
        self.connections.get(&id).map(|c| c.clone())
    }

    /// Every open connection (used at shutdown and by the admin API).
    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.connections.iter().map(|c| c.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// The open connections of one function.
    pub fn of(&self, scope: &Arc<FunctionScope>) -> Vec<Arc<Connection>> {
        self.connections
            .iter()
            .filter(|c| Arc::ptr_eq(&c.scope, scope))
            .map(|c| c.clone())
            .collect()
    }

    /// How many open connections belong to a function.
    pub fn count_for(&self, scope: &Arc<FunctionScope>) -> usize {
        self.connections
            .iter()
            .filter(|c| Arc::ptr_eq(&c.scope, scope))
            .count()
    }
}
