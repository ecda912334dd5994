//! Where a connection is: held by this node, held by another live node of the cluster, or
//! gone — one rule, used by the guests' imports, the admin API and the commands other nodes
//! send.
//!
//! The rule: an id that does not parse is gone. A connection in this node's table is here if
//! the asker may reach it (a function reaches only its own connections, by name; the operator
//! reaches any), and so is the connection whose event is running even after it left the table
//! (its on-close can still read its attachment). Otherwise, in a cluster, a journaled
//! session's id is remote wherever it names (its journal routes it), and an id naming another
//! node that is alive is remote: commands for it are routed to that node, which applies the
//! same rule on arrival. Everything else is gone, and a connection of another function is
//! reported exactly like one that never existed, so functions cannot probe each other.
//!
//! Whether a connection that is here may still be sent to is its state's answer (see
//! `connections::Phase`), not this module's.

use std::sync::Arc;

use crate::cluster::{ClusterError, ClusterLink};
use crate::connections::{Connection, ConnectionId, ConnectionTable, NodeId};

/// Where a connection is.
#[derive(Debug)]
pub enum Reach {
    /// Held by this node.
    Here(Arc<Connection>),
    /// Held by another live node of the cluster.
    Remote { id: ConnectionId, node: NodeId },
    /// No such connection for this asker.
    Gone,
}

/// Who asks: a function reaches only its own connections, the operator any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asker<'a> {
    Function(&'a str),
    Operator,
}

impl Asker<'_> {
    fn may_reach(self, connection: &Connection) -> bool {
        match self {
            Asker::Function(name) => *connection.scope.name == *name,
            Asker::Operator => true,
        }
    }
}

/// Answers where connections are, for one asker.
pub struct Resolver<'a> {
    connections: &'a ConnectionTable,
    cluster: Option<&'a ClusterLink>,
    asker: Asker<'a>,
    /// The connection whose event is running, found even after it left the table.
    current: Option<&'a Arc<Connection>>,
}

impl<'a> Resolver<'a> {
    pub fn new(
        connections: &'a ConnectionTable,
        cluster: Option<&'a ClusterLink>,
        asker: Asker<'a>,
    ) -> Self {
        Self {
            connections,
            cluster,
            asker,
            current: None,
        }
    }

    /// Also finds `current`, the connection whose event is running.
    pub fn with_current(mut self, current: Option<&'a Arc<Connection>>) -> Self {
        self.current = current;
        self
    }

    /// Where the connection `id` (as text) is.
    pub fn resolve(&self, id: &str) -> Reach {
        if let Some(current) = self.current
            && current.id_str() == id
            && self.asker.may_reach(current)
        {
            return Reach::Here(current.clone());
        }
        match id.parse::<ConnectionId>() {
            Ok(id) => self.resolve_id(id),
            Err(_) => Reach::Gone,
        }
    }

    /// Where the connection `id` is.
    pub fn resolve_id(&self, id: ConnectionId) -> Reach {
        if let Some(current) = self.current
            && current.id == id
            && self.asker.may_reach(current)
        {
            return Reach::Here(current.clone());
        }
        if let Some(connection) = self.connections.get(id) {
            return if self.asker.may_reach(&connection) {
                Reach::Here(connection)
            } else {
                Reach::Gone
            };
        }
        match self.cluster {
            // A journaled session is reached through its journal, on whichever node serves
            // it now (or none, while it waits for a resume after its node died).
            Some(_) if id.is_journaled() => Reach::Remote {
                id,
                node: id.node(),
            },
            Some(cluster) if id.node() != cluster.node && cluster.is_live(id.node()) => {
                Reach::Remote {
                    id,
                    node: id.node(),
                }
            }
            _ => Reach::Gone,
        }
    }

    /// Like [`resolve`](Self::resolve), with a remote answer confirmed by the cluster's
    /// directory (one Redis round trip), so a connection that closed on another node is gone.
    /// For the admin API, where an operator should hear "no such connection"; an event does
    /// not wait for Redis and has its sends routed unconfirmed.
    pub async fn resolve_confirmed(&self, id: &str) -> Result<Reach, ClusterError> {
        let reach = self.resolve(id);
        let (Reach::Remote { id, .. }, Some(cluster)) = (&reach, self.cluster) else {
            return Ok(reach);
        };
        let confirmed = cluster
            .record(
                *id,
                match self.asker {
                    Asker::Function(name) => Some(name),
                    Asker::Operator => None,
                },
            )
            .await?
            .is_some_and(|record| match self.asker {
                Asker::Function(name) => record.function == name,
                Asker::Operator => true,
            });
        Ok(if confirmed { reach } else { Reach::Gone })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::SlowConsumerPolicy;
    use crate::connections::FunctionScope;

    fn connection(function: &str) -> Arc<Connection> {
        Arc::new(Connection::new(
            ConnectionId::random_on(NodeId::random()),
            Arc::new(FunctionScope::new(function.into())),
            SocketAddr::from(([127, 0, 0, 1], 1)),
            1024,
            SlowConsumerPolicy::Close,
            None,
        ))
    }

    fn is_here(reach: &Reach, expected: &Arc<Connection>) -> bool {
        matches!(reach, Reach::Here(found) if Arc::ptr_eq(found, expected))
    }

    #[test]
    fn a_function_reaches_its_own_connections_only() {
        let table = ConnectionTable::default();
        let chat = connection("chat");
        table.insert(chat.clone());
        let id = chat.id_str().to_owned();

        let by_chat = Resolver::new(&table, None, Asker::Function("chat"));
        assert!(is_here(&by_chat.resolve(&id), &chat));
        let by_echo = Resolver::new(&table, None, Asker::Function("echo"));
        assert!(matches!(by_echo.resolve(&id), Reach::Gone));
        let by_operator = Resolver::new(&table, None, Asker::Operator);
        assert!(is_here(&by_operator.resolve(&id), &chat));
    }

    #[test]
    fn unknown_and_malformed_ids_are_gone_without_a_cluster() {
        let table = ConnectionTable::default();
        let resolver = Resolver::new(&table, None, Asker::Operator);
        assert!(matches!(resolver.resolve("not an id"), Reach::Gone));
        let stranger = ConnectionId::random().to_string();
        assert!(matches!(resolver.resolve(&stranger), Reach::Gone));
    }

    #[test]
    fn the_running_event_s_connection_is_found_after_it_left_the_table() {
        let table = ConnectionTable::default();
        let closing = connection("chat");
        let id = closing.id_str().to_owned();
        let resolver =
            Resolver::new(&table, None, Asker::Function("chat")).with_current(Some(&closing));
        assert!(is_here(&resolver.resolve(&id), &closing));
        assert!(is_here(&resolver.resolve_id(closing.id), &closing));
        let other =
            Resolver::new(&table, None, Asker::Function("echo")).with_current(Some(&closing));
        assert!(matches!(other.resolve(&id), Reach::Gone));
    }
}
