//! What a test can see of a running host from outside: the on-close runs the `lifecycle`
//! fixture prints into the host's log, the host's memory, and the sockets it holds.
//!
//! The log is the one witness of on-close that survives everything: the fixture prints a line
//! before touching any state, so a run is visible even while the host is exiting or after the
//! function and its key-value state were removed. The log and the memory are a process's, so
//! the tests that read them start the host with `start_process`; the sockets are found in
//! whichever process holds them, the host's or the test's own.

use std::fs;

use super::{Host, poll_until};

/// What the `lifecycle` fixture prints first thing in on-close: `on-close ID CODE REASON`.
const ON_CLOSE: &str = "on-close ";

/// Where guest output starts in a log line: the host logs it with the target `guest`.
const GUEST_TARGET: &str = " guest: ";

/// The fields the host appends to a guest's log line, after the text the guest printed.
const GUEST_FIELDS: &str = " function=";

/// One run of on-close as the fixture reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCloseRun {
    pub id: String,
    pub code: u16,
    pub reason: String,
}

/// Finds the on-close runs in a host's log, in the order they were logged.
pub fn on_close_runs_in(log: &str) -> Vec<OnCloseRun> {
    log.lines().filter_map(parse_on_close).collect()
}

fn parse_on_close(line: &str) -> Option<OnCloseRun> {
    let (_, guest_text) = line.split_once(GUEST_TARGET)?;
    let printed = guest_text.strip_prefix(ON_CLOSE)?;
    // The reason may contain spaces; the host's fields follow it.
    let printed = printed
        .rsplit_once(GUEST_FIELDS)
        .map_or(printed, |(text, _)| text);
    let mut parts = printed.splitn(3, ' ');
    let id = parts.next()?.to_owned();
    let code = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or_default().to_owned();
    Some(OnCloseRun { id, code, reason })
}

impl Host {
    /// Every on-close run the `lifecycle` fixture has logged so far.
    pub fn on_close_runs(&self) -> Vec<OnCloseRun> {
        on_close_runs_in(&self.log())
    }

    /// The on-close runs logged so far for the connection `id`.
    pub fn on_close_runs_of(&self, id: &str) -> Vec<OnCloseRun> {
        self.on_close_runs()
            .into_iter()
            .filter(|run| run.id == id)
            .collect()
    }

    /// Waits (bounded) until on-close has run for `id`, and returns that run. Fails if it ran
    /// more than once by then.
    pub async fn wait_for_on_close(&self, id: &str) -> OnCloseRun {
        let runs = poll_until(&format!("on-close has run for {id}"), async || {
            let runs = self.on_close_runs_of(id);
            (!runs.is_empty()).then_some(runs)
        })
        .await;
        assert_eq!(
            runs.len(),
            1,
            "on-close ran more than once for {id}: {runs:?}"
        );
        runs.into_iter().next().expect("one run")
    }

    /// The host's resident memory in bytes (`VmRSS` of `/proc/PID/status`).
    pub fn resident_memory(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            fs::read_to_string(&path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"));
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS line in {path}:\n{status}"));
        kib * 1024
    }

    /// Whether the host still has an open socket for the TCP connection that the client
    /// bound to `client_port` made to its WebSocket listener. A socket the host has closed
    /// may linger in the kernel while unsent data drains, but no longer belongs to the host.
    pub fn holds_connection_from(&self, client_port: u16) -> bool {
        self.websocket_sockets(Some(client_port)) > 0
    }

    /// How many sockets of accepted WebSocket connections the host has open (its listener
    /// and the admin API's connections are not counted).
    pub fn open_websocket_sockets(&self) -> usize {
        self.websocket_sockets(None)
    }

    /// Counts the host's open sockets whose local port is the WebSocket listener's and whose
    /// remote port is `client_port`, or any remote port.
    fn websocket_sockets(&self, client_port: Option<u16>) -> usize {
        let pid = self.socket_owner_pid();
        let host_port = self.addr().port();
        let inodes: Vec<String> = ["tcp", "tcp6"]
            .iter()
            .filter_map(|table| fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter_map(|row| connection_inode(row, host_port, client_port))
                    .collect::<Vec<_>>()
            })
            .collect();
        let fd_dir = format!("/proc/{pid}/fd");
        fs::read_dir(&fd_dir)
            .unwrap_or_else(|error| panic!("cannot list {fd_dir}: {error}"))
            .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| {
                let target = target.to_string_lossy();
                inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]"))
            })
            .count()
    }
}

/// The inode of a `/proc/net/tcp` row for a connection (not a listener) whose local port is
/// `local_port` and whose remote port is `remote_port` (any, if `None`). Rows look like
/// `0: 0100007F:1F90 0100007F:D2A4 01 ... uid timeout inode`; state `0A` is LISTEN.
fn connection_inode(row: &str, local_port: u16, remote_port: Option<u16>) -> Option<String> {
    const LISTEN: &str = "0A";
    let columns: Vec<&str> = row.split_whitespace().collect();
    let port = |address: &str| {
        let (_, port) = address.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    };
    let local = port(columns.get(1)?)?;
    let remote = port(columns.get(2)?)?;
    let state = *columns.get(3)?;
    let inode = *columns.get(9)?;
    let matches = local == local_port
        && remote_port.is_none_or(|wanted| remote == wanted)
        && state != LISTEN
        && inode != "0";
    matches.then(|| inode.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_on_close_runs_among_other_log_lines() {
        let log = "\
2026-11-22T04:02:09.639886Z  INFO wsfn_host: serving function `lifecycle` at ws://127.0.0.1:1/lifecycle
2026-11-22T04:02:12.660830Z  INFO guest: on-close a70b 4000 bye now function=lifecycle connection=a70b stream=\"stdout\"
2026-11-22T04:02:12.665218Z  INFO guest: on-close 9bae 1006  function=lifecycle connection=9bae stream=\"stdout\"
2026-11-22T04:02:12.665218Z  INFO guest: something else function=lifecycle connection=9bae stream=\"stdout\"
";
        assert_eq!(
            on_close_runs_in(log),
            [
                OnCloseRun {
                    id: "a70b".into(),
                    code: 4000,
                    reason: "bye now".into()
                },
                OnCloseRun {
                    id: "9bae".into(),
                    code: 1006,
                    reason: String::new()
                },
            ]
        );
    }
}
