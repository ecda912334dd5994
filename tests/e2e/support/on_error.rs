//! The on-error runs of the `lifecycle` fixture, as it prints them into the host's log
//! (`on-error ID MESSAGE`) and records them in its key-value state. Reading the log needs a
//! host process (`start_process`).

use super::{Client, Host, poll_until};

/// What the `lifecycle` fixture prints first thing in on-error.
const ON_ERROR: &str = "on-error ";

/// Where guest output starts in a log line: the host logs it with the target `guest`.
const GUEST_TARGET: &str = " guest: ";

/// The fields the host appends to a guest's log line, after the text the guest printed.
const GUEST_FIELDS: &str = " function=";

/// One run of on-error as the fixture reported it, with the log line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnErrorRun {
    pub id: String,
    pub message: String,
    /// The line number in the host's log, to compare with other events.
    pub line: usize,
}

fn parse_on_error(line: usize, text: &str) -> Option<OnErrorRun> {
    let (_, guest_text) = text.split_once(GUEST_TARGET)?;
    let printed = guest_text.strip_prefix(ON_ERROR)?;
    let printed = printed
        .rsplit_once(GUEST_FIELDS)
        .map_or(printed, |(text, _)| text);
    let (id, message) = printed.split_once(' ').unwrap_or((printed, ""));
    Some(OnErrorRun {
        id: id.to_owned(),
        message: message.to_owned(),
        line,
    })
}

impl Host {
    /// Every on-error run the `lifecycle` fixture has logged so far, in log order.
    pub fn on_error_runs(&self) -> Vec<OnErrorRun> {
        self.log()
            .lines()
            .enumerate()
            .filter_map(|(number, text)| parse_on_error(number, text))
            .collect()
    }

    /// The on-error runs logged so far for the connection `id`.
    pub fn on_error_runs_of(&self, id: &str) -> Vec<OnErrorRun> {
        self.on_error_runs()
            .into_iter()
            .filter(|run| run.id == id)
            .collect()
    }

    /// Waits (bounded) until on-error has run for `id`, and returns that run. Fails if it ran
    /// more than once by then.
    pub async fn wait_for_on_error(&self, id: &str) -> OnErrorRun {
        let runs = poll_until(&format!("on-error has run for {id}"), async || {
            let runs = self.on_error_runs_of(id);
            (!runs.is_empty()).then_some(runs)
        })
        .await;
        assert_eq!(
            runs.len(),
            1,
            "on-error ran more than once for {id}: {runs:?}"
        );
        runs.into_iter().next().expect("one run")
    }

    /// The line of the host's log on which the `lifecycle` fixture reported on-close of `id`.
    pub fn on_close_line_of(&self, id: &str) -> Option<usize> {
        let prefix = format!("{GUEST_TARGET}on-close {id} ");
        self.log().lines().position(|line| line.contains(&prefix))
    }
}

impl Client {
    /// How often on-error has run for the connection `id`, as the fixture counted it.
    pub async fn errors_of(&mut self, id: &str) -> u64 {
        let text = self.ask(&format!("errors-of {id}")).await;
        text.parse()
            .unwrap_or_else(|error| panic!("errors-of should be a number, got {text:?}: {error}"))
    }

    /// The message on-error last received for the connection `id` (empty if it never ran).
    pub async fn error_info(&mut self, id: &str) -> String {
        self.ask(&format!("error-info {id}")).await
    }
}
