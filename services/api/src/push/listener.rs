//! The one task that learns of each commit, and the one that says how the processor is doing
//! (docs/architecture.md, "One listener, many viewers").
//!
//! [`run`] holds one dedicated session (the API's role, outside the pool) doing
//! `LISTEN spine_batches`. On a notification for batch M, having published up to N, it builds
//! the events of N+1..M from the tables (notifications may coalesce, a reconnect may miss some:
//! the range is always filled) and publishes each once. When it cannot listen it polls
//! `max(batch_id)` every 250 ms instead (while anyone subscribes), says so in the log and in
//! `spine_api_stream_listener`, and tries to listen again with backoff. [`status_loop`]
//! publishes the processor's state once a second while anyone subscribes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use spine_core::backoff::Backoff;
use tokio::sync::{oneshot, watch};
use tokio_postgres::{AsyncMessage, Client, GenericClient, NoTls};
use tracing::{info, warn};

use super::event::{self, MAX_BATCHES};
use super::{Frame, Newest};
use crate::routes::batches::{standing, PartitionState};
use crate::routes::processor::Processor;
use crate::AppState;

/// The channel the processor's trigger notifies (migration V9).
pub const CHANNEL: &str = "spine_batches";
/// How often `max(batch_id)` is read when `LISTEN` cannot be had.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often the status is published while anyone subscribes.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

const NEWEST: &str = "SELECT coalesce(max(batch_id), 0)::bigint FROM stream_batches";

/// Starts the listener and the status task; both end when `app.push.stop` is cancelled.
pub fn start(app: &AppState) {
    tokio::spawn(run(app.clone()));
    tokio::spawn(status_loop(app.clone()));
}

/// A `LISTEN`ing session: its client, the newest batch id notified, and a signal when the
/// connection ends.
struct Listening {
    client: Client,
    notified: watch::Receiver<Option<i64>>,
    closed: oneshot::Receiver<String>,
}

/// Connects and listens. Each notification moves the hub's newest batch at once (the cache
/// answers by it), before any event is built.
async fn listen(app: &AppState) -> Result<Listening, tokio_postgres::Error> {
    let mut config = app.listen_config.clone();
    config.options(crate::db::session_options());
    config.connect_timeout(Duration::from_secs(2));
    let (client, mut connection) = config.connect(NoTls).await?;
    let (tx, notified) = watch::channel(None);
    let (done, closed) = oneshot::channel();
    let (hub, cache) = (app.push.clone(), app.cache.clone());
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        let why = loop {
            match messages.next().await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Ok(id) = n.payload().parse::<i64>() {
                        if hub.newest().is_some_and(|newest| id < newest) {
                            cache.clear();
                        }
                        hub.newest.send_replace(Some(Newest {
                            batch: id,
                            listening: true,
                        }));
                        tx.send_replace(Some(id));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "the connection closed".to_string(),
            }
        };
        let _ = done.send(why);
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listening {
        client,
        notified,
        closed,
    })
}

/// What the listener has published so far.
struct Publisher {
    app: AppState,
    /// The newest batch whose event is published (or was skipped: nobody subscribed).
    published: Option<i64>,
}

impl Publisher {
    /// Batch `newest` is the newest committed: publish the events of every batch after the
    /// last published one.
    async fn advance(&mut self, newest: i64, client: &impl GenericClient, listening: bool) {
        let hub = &self.app.push;
        let went_back = self.published.is_some_and(|p| newest < p);
        if went_back {
            // A database wiped and refilled under us: nothing kept or sent before still holds.
            self.app.cache.clear();
        }
        hub.newest.send_replace(Some(Newest {
            batch: newest,
            listening,
        }));
        let Some(published) = self.published else {
            self.published = Some(newest);
            return;
        };
        if went_back {
            warn!(
                newest,
                published, "batch ids went backwards: telling subscribers to reset"
            );
            let _ = hub.tx.send(Arc::new(Frame::Reset {
                as_of_batch: newest,
                reason: "database_reset",
            }));
            self.published = Some(newest);
            return;
        }
        if newest == published {
            return;
        }
        if !hub.has_subscribers() {
            self.published = Some(newest);
            return;
        }
        if newest - published > MAX_BATCHES {
            let _ = hub.tx.send(Arc::new(Frame::Reset {
                as_of_batch: newest,
                reason: "too_far_behind",
            }));
            self.published = Some(newest);
            return;
        }
        self.app
            .metrics
            .queries("stream_event", event::BUILD_STATEMENTS);
        match event::build(client, published + 1, newest).await {
            Ok(events) => {
                for e in events {
                    let _ = hub.tx.send(Arc::new(Frame::Batch(e)));
                }
                self.published = Some(newest);
            }
            // Tried again at the next notification or poll, from the same batch.
            Err(e) => {
                warn!(error = %e, from = published + 1, to = newest, "cannot build batch events")
            }
        }
    }
}

async fn newest(app: &AppState, client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    app.metrics.queries("stream_newest", 1);
    Ok(client.query_one(NEWEST, &[]).await?.get(0))
}

/// The listener: `LISTEN` while it can, poll while it cannot.
pub async fn run(app: AppState) {
    let stop = app.push.stop.clone();
    let mut publisher = Publisher {
        app: app.clone(),
        published: None,
    };
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut polling = false;
    while !stop.is_cancelled() {
        match listen(&app).await {
            Ok(mut l) => {
                backoff.reset();
                app.metrics.listener_mode("listen");
                info!(
                    channel = CHANNEL,
                    recovered = polling,
                    "listening for batch commits"
                );
                // Whatever committed while nobody listened.
                match newest(&app, &l.client).await {
                    Ok(m) => publisher.advance(m, &l.client, true).await,
                    Err(e) => warn!(error = %e, "cannot read the newest batch"),
                }
                let why = loop {
                    // Until the newest batch is known (the schema may not be there yet),
                    // ask again every second rather than wait for a commit.
                    let unknown = publisher.published.is_none();
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)), if unknown => {
                            if let Ok(m) = newest(&app, &l.client).await {
                                publisher.advance(m, &l.client, true).await;
                            }
                        }
                        changed = l.notified.changed() => {
                            if changed.is_err() {
                                break "the connection closed".to_string();
                            }
                            let m = *l.notified.borrow_and_update();
                            if let Some(m) = m {
                                publisher.advance(m, &l.client, true).await;
                            }
                        }
                        why = &mut l.closed => break why.unwrap_or_default(),
                    }
                };
                warn!(reason = %why, "lost the LISTEN session: polling until it is back");
            }
            Err(e) => {
                if !polling {
                    warn!(error = %e, every_ms = POLL_EVERY.as_millis() as u64,
                          "cannot LISTEN on spine_batches: polling max(batch_id) instead");
                }
            }
        }
        polling = true;
        app.metrics.listener_mode("poll");
        // Served from the database, never from a cache nobody invalidates.
        if let Some(n) = app.push.newest() {
            app.push.newest.send_replace(Some(Newest {
                batch: n,
                listening: false,
            }));
        }
        poll_until(&mut publisher, Instant::now() + backoff.next_delay()).await;
    }
}

/// Polls `max(batch_id)` every [`POLL_EVERY`] until `until`, while anyone subscribes (the
/// cache is bypassed meanwhile, so nobody else needs it).
async fn poll_until(publisher: &mut Publisher, until: Instant) {
    let app = publisher.app.clone();
    while Instant::now() < until {
        if app.push.has_subscribers() || app.push.newest().is_none() {
            match app.pool.get().await {
                Ok(client) => match newest(&app, &**client).await {
                    Ok(m) => publisher.advance(m, &**client, false).await,
                    Err(e) => warn!(error = %e, "cannot poll the newest batch"),
                },
                Err(e) => warn!(error = %e, "cannot poll the newest batch"),
            }
        }
        tokio::select! {
            _ = app.push.stop.cancelled() => return,
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// The data of `event: status`.
#[derive(Serialize)]
struct Status<'a> {
    processor: Option<&'a Processor>,
    partitions: Option<&'a [PartitionState]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// The status now, as `event: status` data, computed once for every subscriber:
/// `{"processor": …, "partitions": …}` as in `/batches`, or, when the database does not
/// answer, both `null` and an `error`: a viewer is told, never left guessing.
pub async fn status(app: &AppState) -> Arc<str> {
    let answer = match app.pool.get().await {
        Ok(client) => {
            app.metrics.queries("stream_status", 3);
            standing(app, &**client)
                .await
                .map_err(crate::error::ApiError::from)
        }
        Err(e) => Err(e.into()),
    };
    let json = match &answer {
        Ok((partitions, processor)) => serde_json::to_string(&Status {
            processor: Some(processor),
            partitions: Some(partitions),
            error: None,
        }),
        Err(e) => serde_json::to_string(&Status {
            processor: None,
            partitions: None,
            error: Some(&e.to_string()),
        }),
    };
    let json: Arc<str> = json.unwrap_or_else(|_| "{}".into()).into();
    *app.push.status.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((Instant::now(), json.clone()));
    json
}

/// Publishes [`status`] once a second while anyone subscribes.
pub async fn status_loop(app: AppState) {
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = app.push.stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if app.push.has_subscribers() {
            let s = status(&app).await;
            let _ = app.push.tx.send(Arc::new(Frame::Status(s)));
        }
    }
}
