//! Taking over, for a resume that reached this node, a journaled session another node served
//! (or that waits with no node after its node died).
//!
//! The order is what makes every message arrive once and in order across the move:
//! 1. The session is set up here, detached, in its groups, and this node listens to its
//!    channel and its groups' channels. What its groups publish from now on is held here.
//! 2. The claim makes this node the session's home in the journal, trims what the client has,
//!    and gives back what it has not; the node it leaves hears of the move.
//! 3. That node stops reading the old socket, lets its function finish what it read, and says
//!    how many of the client's messages it handled, once everything it wrote is in Redis.
//!    Only then is the client told (in the resume's first frame) what to send again, and the
//!    publishes held here are appended: the journal skips those that node appended already,
//!    so each sender's publishes arrive once and in order.
//! 4. The journal's messages go out by position: the claim's, then what came on the channel.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::cluster::{ClaimRefusal, Claimed, ClusterLink};
use crate::connections::{Connection, ConnectionId, Session, SessionJournal};
use crate::functions::FunctionSlot;
use crate::host::Host;
use crate::protocol::session::Refusal;

/// What a resume claims: the session, its function, the client's proof and count.
pub struct Claim<'a> {
    pub function: &'a str,
    pub id: ConnectionId,
    pub secret: &'a str,
    pub received: u64,
    pub remote: SocketAddr,
    /// The subprotocol the session was opened with, as the handshake read it.
    pub subprotocol: Option<String>,
}

/// Takes the session over; it is then in this node's table, detached, ready for the resume's
/// socket.
pub async fn claim(
    host: &Host,
    claim: Claim<'_>,
) -> Result<(Arc<FunctionSlot>, Arc<Connection>), Refusal> {
    let Some(cluster) = host.cluster.clone() else {
        return Err(Refusal::Unknown);
    };
    let Some(slot) = host.functions.get(claim.function) else {
        return Err(Refusal::Unknown);
    };
    let connection = set_up_here(host, &cluster, &slot, &claim).await?;
    let claimed = cluster
        .claim_session(claim.id, claim.function, claim.secret, claim.received)
        .await;
    let claimed = match claimed {
        Ok(Ok(claimed)) => claimed,
        Ok(Err(refusal)) => {
            undo(host, &cluster, &connection);
            return Err(match refusal {
                ClaimRefusal::Unknown | ClaimRefusal::Gap => Refusal::Unknown,
                ClaimRefusal::Function => Refusal::Function,
                ClaimRefusal::Secret => Refusal::Secret,
            });
        }
        Err(error) => {
            undo(host, &cluster, &connection);
            return Err(unavailable(claim.id, &error));
        }
    };
    let Some(session) = connection.session.as_deref() else {
        return Err(Refusal::Unknown);
    };
    let (handled, let_go) = let_go(&cluster, &slot, &connection, &claimed, claim.function).await;
    if !let_go && claimed.previous_home != Some(cluster.node) {
        // No node delivered the groups' publishes to it since its node died (or left): they
        // are in the groups' histories.
        for group in connection.memberships() {
            replay_history(&cluster, &connection, claim.function, &group).await;
        }
    }
    session.set_handled(handled);
    // Everything the node it left appended is in the journal now: what this node heard of
    // the session's groups meanwhile goes after it (what is there already is skipped).
    session.stop_holding(|held| {
        let published = Some((&*held.group, held.mark));
        if SessionJournal::append(&*cluster, claim.id, &held.frame, published).is_err() {
            tracing::warn!(session = %claim.id, "the cluster link is backed up; a group publish held while taking a session over was dropped");
        }
    });
    if connection
        .start_journaled(claim.received + 1, claimed.replay)
        .is_some()
    {
        // Announced before this node listened, and trimmed from the claim's answer.
        host.catch_up_session(&connection).await;
    }
    if let Err(error) = cluster.session_moved_here(&connection) {
        tracing::warn!(session = %claim.id, "{error}");
    }
    slot.scope.metrics.open_connections.inc();
    tracing::debug!(session = %claim.id, handled, "session taken over from another node");
    Ok((slot, connection))
}

fn unavailable(id: ConnectionId, error: &crate::cluster::ClusterError) -> Refusal {
    tracing::warn!(session = %id, "cannot take a session over: {error}");
    Refusal::Unknown
}

/// Step 1: the session, detached, in this node's table and its groups, with this node
/// listening to its channel and its groups' channels.
async fn set_up_here(
    host: &Host,
    cluster: &Arc<ClusterLink>,
    slot: &Arc<FunctionSlot>,
    claim: &Claim<'_>,
) -> Result<Arc<Connection>, Refusal> {
    let groups = cluster
        .connection_groups(claim.function, claim.id)
        .await
        .map_err(|e| unavailable(claim.id, &e))?;
    let attachment = cluster
        .attachment(claim.function, claim.id)
        .await
        .map_err(|e| unavailable(claim.id, &e))?
        .flatten();
    let journal: Arc<dyn SessionJournal> = cluster.clone();
    let subprotocol = claim.subprotocol.as_deref().map(Into::into);
    let session = Session::taken_over(claim.secret, subprotocol, journal).ok_or(Refusal::Secret)?;
    let limits = &host.limits;
    let connection = Arc::new(
        Connection::new(
            claim.id,
            slot.scope.clone(),
            claim.remote,
            limits.outbound_queue_bytes,
            limits.slow_consumer,
            attachment,
        )
        .taken_over(
            session,
            host.functions.session_retention(claim.function),
            claim.received + 1,
        ),
    );
    host.connections.insert(connection.clone());
    join(cluster, slot, &connection, &groups);
    cluster.watch_session(claim.id);
    cluster
        .await_session_listening(claim.id, claim.function, &groups)
        .await;
    Ok(connection)
}

/// Step 3: waits for the node the session left, if it is alive, to let it go. Gives the
/// handled count to go on from, and whether that node let go (else what no node delivered
/// is read from the groups' histories).
async fn let_go(
    cluster: &ClusterLink,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    claimed: &Claimed,
    function: &str,
) -> (u64, bool) {
    let Some(previous) = claimed
        .previous_home
        .filter(|&previous| previous != cluster.node && cluster.is_live(previous))
    else {
        return (claimed.handled, false);
    };
    let Some(session) = connection.session.as_deref() else {
        return (claimed.handled, false);
    };
    let released = session
        .released(claimed.claim, cluster.settings.node_timeout)
        .await;
    if released.is_none() {
        tracing::warn!(session = %connection.id, node = %previous, "the node the session left did not let it go in time; going on with what its journal says");
    }
    // Groups joined there while the session moved are in the directory by now.
    if let Ok(now) = cluster.connection_groups(function, connection.id).await {
        join(cluster, slot, connection, &now);
    }
    match released {
        Some(released) => (claimed.handled.max(released), true),
        None => (claimed.handled, false),
    }
}

/// Appends to the session's journal what `group` published since the last publish it took
/// (the journal skips what it has).
async fn replay_history(
    cluster: &Arc<ClusterLink>,
    connection: &Connection,
    function: &str,
    group: &str,
) {
    let history = match cluster
        .read_group_history(connection.id, function, group)
        .await
    {
        Ok(history) => history,
        Err(error) => {
            tracing::warn!(session = %connection.id, %group, "cannot read a group's history: {error}");
            return;
        }
    };
    for (mark, publish) in history {
        if publish.except == Some(connection.id) {
            continue;
        }
        let published = Some((group, mark));
        if SessionJournal::append(&**cluster, connection.id, &publish.frame, published).is_err() {
            tracing::warn!(session = %connection.id, "the cluster link is backed up; a group publish from the history was dropped");
        }
    }
}

/// Puts the session in `groups` here, as it is in the directory.
fn join(
    cluster: &ClusterLink,
    slot: &FunctionSlot,
    connection: &Arc<Connection>,
    groups: &[String],
) {
    for group in groups {
        slot.scope.groups.join(connection, group);
        let _ = cluster.joined(connection, group);
    }
}

/// A claim that was refused: the session was never this node's.
fn undo(host: &Host, cluster: &ClusterLink, connection: &Arc<Connection>) {
    connection.outgoing.end();
    let groups = host.connections.remove(connection);
    for group in &groups {
        cluster.watch_group(&connection.scope, group);
    }
    cluster.watch_session(connection.id);
}
