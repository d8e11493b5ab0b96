//! `GET /stream?tenant=&status=` (docs/contracts.md, "HTTP API"): Server-Sent Events. A new
//! subscriber gets `reset` (or, reconnecting with `Last-Event-ID`, the batches it missed) and
//! a `status`, then each committed batch's `batch` event, a `status` once a second and a
//! keep-alive comment every 15 s. One that falls behind the broadcast is closed: it reconnects
//! with `Last-Event-ID` and replays, and the server never buffers for it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::broadcast::{self, error::RecvError};

use super::event::{self, BatchEvent, Filter, Plan};
use super::{listener, Admission, Frame};
use crate::error::ApiError;
use crate::metrics::ApiMetrics;
use crate::params::Params;
use crate::AppState;

/// A comment line this often keeps proxies and clients from timing the stream out.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `Last-Event-ID` (header, else the `last_event_id` query parameter): a batch id.
pub fn last_event_id(header: Option<&str>, query: Option<&str>) -> Result<Option<i64>, ApiError> {
    let Some(raw) = header.or(query) else {
        return Ok(None);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(ApiError::BadRequest(format!(
            "Last-Event-ID must be a batch id (a whole number from 0), got {}",
            spine_core::event::quote_value(raw, 32)
        ))),
    }
}

fn reset(as_of_batch: i64, reason: &str) -> Event {
    Event::default()
        .event("reset")
        .id(as_of_batch.to_string())
        .data(format!(
            "{{\"as_of_batch\":{as_of_batch},\"reason\":\"{reason}\"}}"
        ))
}

fn batch(e: &BatchEvent, filter: &Filter) -> Event {
    Event::default()
        .event("batch")
        .id(e.id.to_string())
        .data(&*e.data(filter))
}

fn status(data: &str) -> Event {
    Event::default().event("status").data(data)
}

/// One subscriber's live part: what it reads, what it has seen, its place.
struct Live {
    rx: broadcast::Receiver<Arc<Frame>>,
    /// The newest batch id it was given; older frames are skipped.
    floor: i64,
    filter: Filter,
    metrics: ApiMetrics,
    _admission: Admission,
}

impl Live {
    async fn next(&mut self) -> Option<(&'static str, Event)> {
        loop {
            match self.rx.recv().await {
                Ok(frame) => match &*frame {
                    Frame::Batch(e) if e.id <= self.floor => continue,
                    Frame::Batch(e) => {
                        self.floor = e.id;
                        return Some(("batch", batch(e, &self.filter)));
                    }
                    Frame::Status(s) => return Some(("status", status(s))),
                    Frame::Reset {
                        as_of_batch,
                        reason,
                    } => {
                        self.floor = *as_of_batch;
                        return Some(("reset", reset(*as_of_batch, reason)));
                    }
                },
                Err(RecvError::Lagged(missed)) => {
                    self.metrics.stream_dropped.inc();
                    tracing::info!(
                        missed,
                        floor = self.floor,
                        "closed a /stream subscriber that fell behind (it reconnects and replays)"
                    );
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

pub async fn stream(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref(), &["tenant", "status", "last_event_id"])?;
    let filter = Filter {
        tenant: params.tenant()?.map(str::to_owned),
        status: params.status()?,
    };
    let header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::BadRequest("Last-Event-ID must be a batch id (a whole number from 0)".into())
        })?),
    };
    let last = last_event_id(header, params.get("last_event_id"))?;
    let hub = app.push.clone();
    let Some(admission) = hub.admit() else {
        return Err(ApiError::Unavailable(format!(
            "{} /stream subscribers already (API_STREAM_MAX_SUBSCRIBERS): retry shortly",
            hub.max_subscribers
        )));
    };
    // Subscribe before reading the newest batch: every later batch is in the channel.
    let rx = hub.tx.subscribe();
    let Some(newest) = hub.newest() else {
        return Err(ApiError::Unavailable(
            "the stream is starting: retry shortly".into(),
        ));
    };

    let mut first: Vec<(&'static str, Event)> = Vec::new();
    let mut floor = newest;
    match last {
        None => first.push(("reset", reset(newest, "subscribed"))),
        Some(n) => {
            let facts = if n < newest && newest - n <= event::MAX_BATCHES {
                let client = app.pool.get().await?;
                app.metrics.queries("stream_replay", 1);
                event::facts(&**client, n, newest).await.ok()
            } else {
                None
            };
            match event::plan(n, newest, facts) {
                Plan::Replay { from, to } if from <= to => {
                    let client = app.pool.get().await?;
                    app.metrics
                        .queries("stream_replay", event::BUILD_STATEMENTS);
                    for e in event::build(&**client, from, to).await? {
                        first.push(("batch", batch(&e, &filter)));
                    }
                    floor = to;
                }
                Plan::Replay { .. } => {}
                Plan::Reset(reason) => first.push(("reset", reset(newest, reason))),
            }
        }
    }
    let now = match hub.recent_status(Duration::from_millis(1500)) {
        Some(s) => s,
        None => {
            // A thousand subscribers arriving at once ask Postgres once.
            let _flight = hub.status_flight.lock().await;
            match hub.recent_status(Duration::from_millis(1500)) {
                Some(s) => s,
                None => listener::status(&app).await,
            }
        }
    };
    first.push(("status", status(&now)));

    let metrics = app.metrics.clone();
    let live = Live {
        rx,
        floor,
        filter,
        metrics: metrics.clone(),
        _admission: admission,
    };
    let live = futures::stream::unfold(live, |mut live| async move {
        let next = live.next().await?;
        Some((next, live))
    });
    let events = futures::stream::iter(first)
        .chain(live)
        .map(move |(kind, event)| {
            metrics.stream_events.with_label_values(&[kind]).inc();
            Ok::<_, Infallible>(event)
        })
        .take_until(hub.stop.clone().cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_is_a_batch_id_from_the_header_or_the_query() {
        assert_eq!(last_event_id(None, None).expect("none"), None);
        assert_eq!(last_event_id(Some("12"), None).expect("header"), Some(12));
        assert_eq!(last_event_id(None, Some("7")).expect("query"), Some(7));
        assert_eq!(last_event_id(Some("3"), Some("7")).expect("both"), Some(3));
        for bad in ["", "-1", "x", "1.5", "99999999999999999999"] {
            let e = last_event_id(Some(bad), None).expect_err(bad).to_string();
            assert!(e.starts_with("Last-Event-ID must be a batch id"), "{e}");
        }
    }
}
