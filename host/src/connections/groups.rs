//! Groups of one function: named sets of its connections that can be published to at once.
//!
//! Groups belong to a function name, not to a deployed version, so they survive a hot swap.
//! Members are stored as their records, so a publish reaches every member's queue without
//! looking each one up in the connection table.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;

use super::connection::Connection;
use super::id::ConnectionId;
use super::journal::PublishMark;
use super::outbound::Outbound;

/// The groups of one function.
#[derive(Debug, Default)]
pub struct Groups {
    members: DashMap<Box<str>, HashMap<ConnectionId, Arc<Connection>>>,
}

impl Groups {
    /// Adds a connection to a group.
    pub fn join(&self, connection: &Arc<Connection>, group: &str) {
        if connection.note_joined(group) {
            self.members
                .entry(group.into())
                .or_default()
                .insert(connection.id, connection.clone());
        }
    }

    /// Removes a connection from a group; empty groups are forgotten.
    pub fn leave(&self, connection: &Connection, group: &str) {
        connection.note_left(group);
        self.remove_member(connection.id, group);
    }

    fn remove_member(&self, id: ConnectionId, group: &str) {
        if let Some(mut members) = self.members.get_mut(group) {
            members.remove(&id);
        }
        self.members
            .remove_if(group, |_, members| members.is_empty());
    }

    /// Removes a connection from every group it is in; returns those groups.
    pub fn leave_all(&self, connection: &Connection) -> Vec<Box<str>> {
        let groups = connection.take_memberships();
        for group in &groups {
            self.remove_member(connection.id, group);
        }
        groups
    }

    /// Sends a frame to every member but `except` (see `Connection::send_fanout`); returns
    /// how many took it. Journaled sessions (in a cluster) take a publish only with its
    /// `mark`, which lets them take it once however many nodes deliver it: without one they
    /// are left to [`publish_journaled`](Self::publish_journaled), and counted as reached.
    pub fn publish(
        &self,
        group: &str,
        frame: &Outbound,
        except: Option<ConnectionId>,
        mark: Option<PublishMark>,
    ) -> u32 {
        let mut later = 0u32;
        let reaches = |member: &Connection| {
            let now = mark.is_some() || member.journal().is_none();
            later += u32::from(!now);
            now
        };
        let delivered = self.deliver(group, frame, except, mark, reaches);
        delivered.saturating_add(later)
    }

    /// Sends a publish to the journaled sessions among the members only.
    pub fn publish_journaled(
        &self,
        group: &str,
        frame: &Outbound,
        except: Option<ConnectionId>,
        mark: PublishMark,
    ) -> u32 {
        let reaches = |member: &Connection| member.journal().is_some();
        self.deliver(group, frame, except, Some(mark), reaches)
    }

    fn deliver(
        &self,
        group: &str,
        frame: &Outbound,
        except: Option<ConnectionId>,
        mark: Option<PublishMark>,
        mut reaches: impl FnMut(&Connection) -> bool,
    ) -> u32 {
        // Collected first: the sends write to sockets, and the group's lock would meanwhile
        // hold up every join and leave of the groups beside it.
        let members: Vec<Arc<Connection>> = match self.members.get(group) {
            Some(members) => members
                .iter()
                .filter(|(id, member)| Some(**id) != except && reaches(member))
                .map(|(_, member)| member.clone())
                .collect(),
            None => return 0,
        };
        // One message for all: its compressed form is made once for every member that
        // negotiated the same compression.
        let frame = if members.len() > 1 {
            frame.clone().shared()
        } else {
            frame.clone()
        };
        let delivered = members
            .iter()
            .filter(|member| member.send_published(frame.clone(), group, mark).is_ok())
            .count();
        u32::try_from(delivered).unwrap_or(u32::MAX)
    }

    pub fn members(&self, group: &str) -> Vec<ConnectionId> {
        self.members
            .get(group)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// How many members a group has here.
    pub fn member_count(&self, group: &str) -> usize {
        self.members.get(group).map_or(0, |m| m.len())
    }

    /// How many groups have at least one member.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}
