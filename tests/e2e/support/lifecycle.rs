//! The text commands of the `lifecycle` fixture, as methods on a client connected to it.

use super::{Client, CloseInfo, poll_until};

/// How many connections the `lifecycle` fixture has counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub connects: u64,
    pub closes: u64,
}

impl Client {
    /// The id the host gave this connection.
    pub async fn connection_id(&mut self) -> String {
        let id = self.ask("id").await;
        assert!(!id.is_empty(), "a connection id is never empty");
        id
    }

    /// How often `on-connect` and `on-close` have run for the function.
    pub async fn stats(&mut self) -> Stats {
        let text = self.ask("stats").await;
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("stats should be JSON, got {text:?}: {error}"));
        let count = |field: &str| {
            json[field]
                .as_u64()
                .unwrap_or_else(|| panic!("stats should have a numeric {field:?}: {text}"))
        };
        Stats {
            connects: count("connects"),
            closes: count("closes"),
        }
    }

    /// How often `on-close` has run for the connection `id`.
    pub async fn closes_of(&mut self, id: &str) -> u64 {
        let text = self.ask(&format!("closes-of {id}")).await;
        text.parse()
            .unwrap_or_else(|error| panic!("closes-of should be a number, got {text:?}: {error}"))
    }

    /// The code and reason `on-close` received for the connection `id`, if it ran.
    pub async fn close_info(&mut self, id: &str) -> Option<CloseInfo> {
        let text = self.ask(&format!("close-info {id}")).await;
        if text.is_empty() {
            return None;
        }
        let (code, reason) = text.split_once(' ').unwrap_or((&text, ""));
        let code = code.parse().unwrap_or_else(|error| {
            panic!("close-info should start with a code: {text:?}: {error}")
        });
        Some(CloseInfo::new(code, reason))
    }

    /// Waits until `on-close` has run for the connection `id` and returns what it was told.
    ///
    /// `on-close` runs after the close handshake, so the client may see its connection end
    /// before the function has been told.
    pub async fn on_close_of(&mut self, id: &str) -> CloseInfo {
        poll_until(&format!("on-close has run for {id}"), async || {
            (self.closes_of(id).await > 0).then_some(())
        })
        .await;
        self.close_info(id)
            .await
            .unwrap_or_else(|| panic!("on-close ran for {id} but recorded no close info"))
    }
}
