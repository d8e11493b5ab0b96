//! The API source as spine-tui runs it (docs/contracts.md, "spine-tui"): it rides on
//! `GET /stream`, the API pushing each committed batch, and polls once a second only while
//! the stream is unavailable, trying it again every [`RETRY_STREAM`]. Either way the UI gets
//! the same [`Msg::Api`] rounds, plus a [`Msg::Feed`] whenever the way they come changes.
//!
//! The stream's body is parsed by the `eventsource-stream` crate (the SSE parser
//! `reqwest-eventsource` is built on) over reqwest's `bytes_stream`; the reconnecting, the
//! `Last-Event-ID` and the fallback are ours, because falling back to polling is part of the
//! contract. What the events change is merged in [`Live`](super::live::Live).

use std::time::Duration;

use eventsource_stream::{Event, Eventsource as _};
use futures::StreamExt as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::{poll_for, ApiClient, PollEnd, BATCHES_LIMIT, ORDERS_LIMIT};
use super::live::{Applied, BatchEvent, Live, StatusEvent};
use super::wall_now;
use crate::app::{Feed, Msg};
use crate::text::SafeText;

/// The stream must send something this often: `status` comes about once a second and a
/// keep-alive every 15 s, so a silent stream is a dead one, reopened.
pub const STREAM_SILENCE: Duration = Duration::from_secs(5);
/// How long the stream may take to answer its head before polling takes over.
pub const STREAM_OPEN: Duration = Duration::from_secs(3);
/// While polling, how often the stream is tried again.
pub const RETRY_STREAM: Duration = Duration::from_secs(10);

/// Why one subscription ended.
enum End {
    Quit,
    TenantChanged,
    /// The stream could not be opened, or broke and could not be resumed: poll for a while.
    Unavailable(String),
}

/// Runs the API source until `cancel` or until the UI has gone.
pub async fn run(
    client: ApiClient,
    tx: mpsc::Sender<Msg>,
    mut tenant: watch::Receiver<Option<SafeText>>,
    cancel: CancellationToken,
) {
    let mut source = Source {
        client,
        tx,
        feed: None,
        was_up: None,
    };
    loop {
        let filter = tenant.borrow_and_update().clone();
        match source.push(&mut tenant, &cancel, filter).await {
            End::Quit => return,
            End::TenantChanged => continue,
            End::Unavailable(why) => {
                if source.feed != Some(Feed::Poll) {
                    info!(api = %source.client.base(), %why, "no stream from the API; polling once a second");
                }
            }
        }
        if !source.set_feed(Feed::Poll).await {
            return;
        }
        let until = tokio::time::Instant::now() + RETRY_STREAM;
        let end = poll_for(
            &source.client,
            &source.tx,
            &mut tenant,
            &cancel,
            Some(until),
            &mut source.was_up,
        )
        .await;
        if end == PollEnd::Quit {
            return;
        }
    }
}

struct Source {
    client: ApiClient,
    tx: mpsc::Sender<Msg>,
    feed: Option<Feed>,
    was_up: Option<bool>,
}

impl Source {
    /// Tells the UI how the data comes, when that changes. False: the UI has gone.
    async fn set_feed(&mut self, feed: Feed) -> bool {
        if self.feed == Some(feed) {
            return true;
        }
        self.feed = Some(feed);
        self.tx.send(Msg::Feed(feed)).await.is_ok()
    }

    async fn send(&self, msg: Msg) -> Result<(), End> {
        self.tx.send(msg).await.map_err(|_| End::Quit)
    }

    /// Rides on the stream until it ends, showing the orders of `filter` (a new filter opens
    /// the stream anew, whose `reset` loads that tenant's orders). A stream that breaks after it worked is
    /// reopened at once with `Last-Event-ID` (the API replays what was missed, or resets); one
    /// that cannot be opened ends the subscription.
    async fn push(
        &mut self,
        tenant: &mut watch::Receiver<Option<SafeText>>,
        cancel: &CancellationToken,
        filter: Option<SafeText>,
    ) -> End {
        let mut live: Option<Live> = None;
        let mut last_id: Option<String> = None;
        loop {
            let open = tokio::select! {
                _ = cancel.cancelled() => return End::Quit,
                changed = tenant.changed() => return on_change(changed),
                // Every tenant's: the stats of the stream follow its filter, and the screen
                // shows every tenant's (the tenant key cycles through them). The orders are
                // narrowed to the filter as they are merged.
                open = tokio::time::timeout(
                    STREAM_OPEN,
                    self.client.subscribe(None, last_id.as_deref()),
                ) => open,
            };
            let response = match open {
                Ok(Ok(response)) => response,
                Ok(Err(why)) => return End::Unavailable(why),
                Err(_) => {
                    return End::Unavailable(format!(
                        "GET /stream did not answer within {} s",
                        STREAM_OPEN.as_secs()
                    ))
                }
            };
            if !self.set_feed(Feed::Push).await {
                return End::Quit;
            }
            info!(api = %self.client.base(), ?filter, resume = ?last_id, "riding on the API's stream");
            let mut events = response.bytes_stream().eventsource();
            let mut heard = false;
            let why = loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return End::Quit,
                    changed = tenant.changed() => return on_change(changed),
                    next = tokio::time::timeout(STREAM_SILENCE, events.next()) => next,
                };
                let event = match next {
                    Ok(Some(Ok(event))) => event,
                    Ok(Some(Err(e))) => break e.to_string(),
                    Ok(None) => break "the API ended the stream".to_owned(),
                    Err(_) => break format!("nothing for {} s", STREAM_SILENCE.as_secs()),
                };
                heard = true;
                if !event.id.is_empty() {
                    last_id = Some(event.id.clone());
                }
                if let Err(end) = self.on_event(&filter, &mut live, event).await {
                    return end;
                }
            };
            // Reopened at once if it worked; if it broke before its first event or cannot be
            // reopened, polling takes over.
            if !heard {
                return End::Unavailable(why);
            }
            warn!(%why, resume = ?last_id, "the API's stream broke; reopening it");
        }
    }

    /// Applies one event and sends the screen's new state.
    async fn on_event(
        &mut self,
        filter: &Option<SafeText>,
        live: &mut Option<Live>,
        event: Event,
    ) -> Result<(), End> {
        match event.event.as_str() {
            "reset" => {
                debug!(data = %event.data, "stream reset: loading the answers afresh");
                self.reload(filter, live).await
            }
            "batch" => match serde_json::from_str::<BatchEvent>(&event.data) {
                Ok(batch) => {
                    let Some(view) = live.as_mut() else {
                        return self.reload(filter, live).await;
                    };
                    match view.apply_batch(batch) {
                        Applied::Old => Ok(()),
                        Applied::Merged => self.send(Msg::Api(view.poll(wall_now()))).await,
                        Applied::NeedsReload => self.reload(filter, live).await,
                    }
                }
                Err(e) => {
                    warn!(error = %e, "a batch event that does not parse: loading the answers afresh");
                    self.reload(filter, live).await
                }
            },
            "status" => match serde_json::from_str::<StatusEvent>(&event.data) {
                Ok(status) => match live.as_mut() {
                    Some(view) => {
                        view.apply_status(status);
                        self.send(Msg::Api(view.poll(wall_now()))).await
                    }
                    None => self.reload(filter, live).await,
                },
                Err(e) => {
                    warn!(error = %e, "a status event that does not parse: ignored");
                    Ok(())
                }
            },
            other => {
                debug!(event = other, "an event spine-tui does not use");
                Ok(())
            }
        }
    }

    /// Fetches `/orders`, `/stats` and `/batches` (one round, as the poller does) as the new
    /// ground for the events; sends it. A round that does not fully answer ends the stream:
    /// polling shows what went wrong.
    async fn reload(
        &mut self,
        filter: &Option<SafeText>,
        live: &mut Option<Live>,
    ) -> Result<(), End> {
        let snapshot = self.client.poll(filter.as_ref()).await;
        *live = Live::from_snapshot(&snapshot, ORDERS_LIMIT, BATCHES_LIMIT);
        let failed = live.is_none();
        self.was_up = Some(!failed);
        // Polling takes over: said before the failed round, so the header never shows the API
        // down while claiming push.
        if failed && !self.set_feed(Feed::Poll).await {
            return Err(End::Quit);
        }
        self.send(Msg::Api(snapshot)).await?;
        if failed {
            return Err(End::Unavailable(
                "the answers to load the stream on did not all come".into(),
            ));
        }
        Ok(())
    }
}

fn on_change(changed: Result<(), watch::error::RecvError>) -> End {
    match changed {
        Ok(()) => End::TenantChanged,
        Err(_) => End::Quit,
    }
}
