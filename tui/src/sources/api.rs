//! The API poller: `/orders`, `/stats` and `/batches` together, once a second, each with a
//! short timeout, so a slow or dead API shows as such within a second and never delays the UI.
//! spine-tui polls only while `GET /stream` is unavailable (`stream.rs` decides); the client
//! here also opens that stream.

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::wall_now;
use crate::app::{ApiPoll, FetchError, Fetched, Msg};
use crate::inspect::{with_json, DeadLettersResponse, OrderHistory, WithJson};
use crate::text::SafeText;

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(800);
/// Rows asked of `/orders` and `/batches` (both well within the API's limits).
pub const ORDERS_LIMIT: u32 = 100;
pub const BATCHES_LIMIT: u32 = 20;
/// Dead letters asked of `/dead_letters` for the `d` view and a batch's detail.
pub const DEAD_LETTERS_LIMIT: u32 = 200;

#[derive(Clone, Debug)]
pub struct ApiClient {
    http: reqwest::Client,
    /// For `GET /stream`: no overall timeout (the answer never ends), only on connecting.
    streaming: reqwest::Client,
    base: String,
}

impl ApiClient {
    pub fn new(base: &str) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("spine-tui/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let streaming = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("spine-tui/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApiClient {
            http,
            streaming,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// One round: the three requests at once.
    pub async fn poll(&self, tenant: Option<&SafeText>) -> ApiPoll {
        let mut orders_query = vec![("limit", ORDERS_LIMIT.to_string())];
        if let Some(t) = tenant {
            orders_query.push(("tenant", t.as_str().to_owned()));
        }
        let batches_query = [("limit", BATCHES_LIMIT.to_string())];
        let (orders, stats, batches) = tokio::join!(
            self.get("/orders", &orders_query),
            self.get("/stats", &[]),
            self.get("/batches", &batches_query),
        );
        ApiPoll {
            at: wall_now(),
            tenant: tenant.cloned(),
            orders,
            stats,
            batches,
        }
    }

    /// Opens `GET /stream` for `tenant`, resuming after `last_event_id` if given. Ok once the
    /// answer's head says it is an event stream; its body is read by the caller.
    pub async fn subscribe(
        &self,
        tenant: Option<&SafeText>,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, String> {
        let mut request = self
            .streaming
            .get(format!("{}/stream", self.base))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(t) = tenant {
            request = request.query(&[("tenant", t.as_str())]);
        }
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.map_err(describe)?;
        let status = response.status();
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        match (status.is_success(), event_stream) {
            (true, true) => Ok(response),
            (true, false) => Err("GET /stream did not answer an event stream".into()),
            (false, _) => Err(format!("GET /stream: HTTP {}", status.as_u16())),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /orders/{tenant}/{order_id}` (each segment percent-encoded).
    pub async fn order_history(
        &self,
        tenant: &str,
        order_id: &str,
    ) -> Fetched<WithJson<OrderHistory>> {
        let mut url = reqwest::Url::parse(&self.base)
            .map_err(|e| FetchError::Unreachable(format!("bad API URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| FetchError::Unreachable("bad API URL".into()))?
            .pop_if_empty()
            .extend(["orders", tenant, order_id]);
        let json = self.get_url(url, &[]).await?;
        with_json(json).map_err(FetchError::Invalid)
    }

    /// `GET /dead_letters`, the newest [`DEAD_LETTERS_LIMIT`].
    pub async fn dead_letters(&self) -> Fetched<WithJson<DeadLettersResponse>> {
        let json = self
            .get(
                "/dead_letters",
                &[("limit", DEAD_LETTERS_LIMIT.to_string())],
            )
            .await?;
        with_json(json).map_err(FetchError::Invalid)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Fetched<T> {
        self.get_url(format!("{}{path}", self.base), query).await
    }

    async fn get_url<T: DeserializeOwned>(
        &self,
        url: impl reqwest::IntoUrl,
        query: &[(&str, String)],
    ) -> Fetched<T> {
        let response = self
            .http
            .get(url)
            .query(query)
            .send()
            .await
            .map_err(|e| FetchError::Unreachable(describe(e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| FetchError::Unreachable(describe(e)))?;
        if !status.is_success() {
            #[derive(serde::Deserialize)]
            struct ErrorBody {
                error: String,
            }
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_default();
            return Err(FetchError::Status {
                code: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| FetchError::Invalid(e.to_string()))
    }
}

/// A transport error in a few words: "timed out", or the innermost cause ("Connection refused
/// (os error 111)") rather than reqwest's "error sending request for url (...)".
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", REQUEST_TIMEOUT.as_millis());
    }
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let text = cause.to_string();
    if e.is_connect() && !text.is_empty() {
        text
    } else {
        e.without_url().to_string()
    }
}

/// Polls until `cancel`, at once when the tenant filter changes, and sends each round to the
/// UI. Ends when the UI has gone.
pub async fn run(
    client: ApiClient,
    tx: mpsc::Sender<Msg>,
    mut tenant: watch::Receiver<Option<SafeText>>,
    cancel: CancellationToken,
) {
    let mut was_up = None;
    loop {
        match poll_for(&client, &tx, &mut tenant, &cancel, None, &mut was_up).await {
            PollEnd::Quit => return,
            PollEnd::TenantChanged | PollEnd::Elapsed => {}
        }
    }
}

/// Why [`poll_for`] stopped polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollEnd {
    /// Cancelled, or the UI has gone.
    Quit,
    TenantChanged,
    /// `until` has passed.
    Elapsed,
}

/// Polls once a second, the first round at once, until `until` (never: `None`), a change of
/// the tenant filter or `cancel`. `was_up` remembers across calls whether the API answered,
/// so the log says so only when it changes.
pub async fn poll_for(
    client: &ApiClient,
    tx: &mpsc::Sender<Msg>,
    tenant: &mut watch::Receiver<Option<SafeText>>,
    cancel: &CancellationToken,
    until: Option<tokio::time::Instant>,
    was_up: &mut Option<bool>,
) -> PollEnd {
    // The filter as it is now is the one polled for; only a later change ends the polling.
    tenant.borrow_and_update();
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = async {
        match until {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return PollEnd::Quit,
            () = &mut deadline => return PollEnd::Elapsed,
            _ = tick.tick() => {}
            changed = tenant.changed() => {
                return if changed.is_err() { PollEnd::Quit } else { PollEnd::TenantChanged };
            }
        }
        let filter = tenant.borrow().clone();
        let poll = tokio::select! {
            _ = cancel.cancelled() => return PollEnd::Quit,
            poll = client.poll(filter.as_ref()) => poll,
        };
        let up = [
            poll.orders.is_ok(),
            poll.stats.is_ok(),
            poll.batches.is_ok(),
        ]
        .contains(&true);
        if *was_up != Some(up) {
            match (&poll.orders, up) {
                (_, true) => info!(api = %client.base, "API answers"),
                (Err(e), false) => {
                    info!(api = %client.base, error = %e, "API does not answer; retrying every second")
                }
                (Ok(_), false) => {}
            }
            *was_up = Some(up);
        }
        debug!(?filter, "API polled");
        if tx.send(Msg::Api(poll)).await.is_err() {
            return PollEnd::Quit;
        }
    }
}
