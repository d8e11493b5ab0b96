//! One-off requests the UI makes when the user looks closer (docs/contracts.md, "spine-tui"):
//! an order's history, the dead letters, a seek of the tail. The event loop hands each
//! [`Effect`] over and goes on; the answer comes back on the sources' channel as a [`Msg`], so
//! `App::update` stays pure and a slow API never holds a key.

use std::io::Write as _;

use base64::Engine as _;
use tokio::sync::{mpsc, watch};

use super::api::ApiClient;
use crate::app::{Effect, Msg};
use crate::text::SafeText;

/// Where the event loop sends what an update asks for.
pub struct Outbox {
    /// The tenant the API poller asks `/orders` for.
    pub tenant: watch::Sender<Option<SafeText>>,
    /// Fetches and seeks, for [`run`] (none: dropped).
    pub requests: Option<mpsc::UnboundedSender<Effect>>,
    /// Puts text on the clipboard (the real terminal: [`osc52`]; none: dropped).
    #[allow(clippy::type_complexity)]
    pub clipboard: Option<Box<dyn FnMut(&str) -> std::io::Result<()> + Send>>,
}

impl From<watch::Sender<Option<SafeText>>> for Outbox {
    fn from(tenant: watch::Sender<Option<SafeText>>) -> Outbox {
        Outbox {
            tenant,
            requests: None,
            clipboard: None,
        }
    }
}

/// The OSC 52 sequence that asks the terminal to put `text` on the clipboard (it works over SSH
/// and in tmux with `set-clipboard on`).
pub fn osc52_sequence(text: &str) -> String {
    format!(
        "\x1b]52;c;{}\x07",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

/// Writes [`osc52_sequence`] to the terminal.
pub fn osc52(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(osc52_sequence(text).as_bytes())?;
    out.flush()
}

/// Serves requests until the UI has gone: each fetch on a task of its own, its answer sent back
/// as a message; seeks go to the topic thread.
pub async fn run(
    client: ApiClient,
    mut requests: mpsc::UnboundedReceiver<Effect>,
    tx: mpsc::Sender<Msg>,
    seeks: std::sync::mpsc::Sender<(i32, i64)>,
) {
    while let Some(request) = requests.recv().await {
        let (client, tx) = (client.clone(), tx.clone());
        match request {
            Effect::FetchOrder { tenant, order_id } => {
                tokio::spawn(async move {
                    let result = client
                        .order_history(tenant.as_str(), order_id.as_str())
                        .await;
                    let _ = tx
                        .send(Msg::OrderHistory {
                            tenant,
                            order_id,
                            result,
                        })
                        .await;
                });
            }
            Effect::FetchDeadLetters => {
                tokio::spawn(async move {
                    let _ = tx.send(Msg::DeadLetters(client.dead_letters().await)).await;
                });
            }
            Effect::Seek { partition, offset } => {
                if seeks.send((partition, offset)).is_err() {
                    return;
                }
            }
            Effect::TenantFilter(_) | Effect::Copy(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_is_base64_between_the_markers() {
        assert_eq!(osc52_sequence("{\"a\":1}"), "\x1b]52;c;eyJhIjoxfQ==\x07");
    }
}
