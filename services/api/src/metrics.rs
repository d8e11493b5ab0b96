//! `spine_api_requests_total{route,status}` and `spine_api_request_duration_seconds{route}`,
//! the stream's and the cache's figures, the API's own Postgres statements by purpose, plus what
//! every binary exports (`spine_build_info`, `process_*`) (docs/contracts.md, "Metrics").

use prometheus::{
    histogram_opts, opts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};
use spine_core::metrics::register;

#[derive(Clone)]
pub struct ApiMetrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    /// `/stream` subscribers connected now.
    pub stream_subscribers: IntGauge,
    /// Events written to subscribers, by `event` (`batch`, `reset`, `status`).
    pub stream_events: IntCounterVec,
    /// Subscribers whose stream was closed because they fell behind.
    pub stream_dropped: IntCounter,
    /// 1 for the mode the batch listener is in (`listen`, `poll`), 0 for the other.
    pub stream_listener: IntGaugeVec,
    /// Statements the API sent to Postgres, by `purpose`.
    pub db_queries: IntCounterVec,
    /// `/orders`, `/stats`, `/batches` answers by `outcome` (`hit`, `miss`, `bypass`).
    pub cache: IntCounterVec,
}

impl ApiMetrics {
    pub fn new() -> ApiMetrics {
        let registry = Registry::new();
        let requests = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_api_requests_total",
                    "HTTP requests answered, by route and status"
                ),
                &["route", "status"],
            )
            .expect("valid metric"),
        );
        let duration = register(
            &registry,
            HistogramVec::new(
                histogram_opts!(
                    "spine_api_request_duration_seconds",
                    "Time to answer a request, by route",
                    vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]
                ),
                &["route"],
            )
            .expect("valid metric"),
        );
        let stream_subscribers = register(
            &registry,
            IntGauge::new(
                "spine_api_stream_subscribers",
                "GET /stream subscribers connected now",
            )
            .expect("valid metric"),
        );
        let stream_events = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_api_stream_events_total",
                    "Events written to /stream subscribers, by event"
                ),
                &["event"],
            )
            .expect("valid metric"),
        );
        for event in ["batch", "reset", "status"] {
            stream_events.with_label_values(&[event]);
        }
        let stream_dropped = register(
            &registry,
            IntCounter::new(
                "spine_api_stream_dropped_total",
                "/stream subscribers closed because they fell behind",
            )
            .expect("valid metric"),
        );
        let stream_listener = register(
            &registry,
            IntGaugeVec::new(
                opts!(
                    "spine_api_stream_listener",
                    "1 for the batch listener's mode (listen: LISTEN spine_batches; poll: max(batch_id) every 250 ms)"
                ),
                &["mode"],
            )
            .expect("valid metric"),
        );
        for mode in ["listen", "poll"] {
            stream_listener.with_label_values(&[mode]);
        }
        let db_queries = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_api_db_queries_total",
                    "Statements the API sent to Postgres, by purpose"
                ),
                &["purpose"],
            )
            .expect("valid metric"),
        );
        let cache = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_api_cache_total",
                    "Answers of /orders, /stats and /batches by route and cache outcome"
                ),
                &["route", "outcome"],
            )
            .expect("valid metric"),
        );
        spine_core::metrics::register_process_metrics(&registry);
        ApiMetrics {
            registry,
            requests,
            duration,
            stream_subscribers,
            stream_events,
            stream_dropped,
            stream_listener,
            db_queries,
            cache,
        }
    }

    /// Counts `n` statements sent for `purpose`.
    pub fn queries(&self, purpose: &str, n: u64) {
        self.db_queries.with_label_values(&[purpose]).inc_by(n);
    }

    /// Says which mode the batch listener is in.
    pub fn listener_mode(&self, mode: &str) {
        for m in ["listen", "poll"] {
            self.stream_listener
                .with_label_values(&[m])
                .set(i64::from(m == mode));
        }
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}
