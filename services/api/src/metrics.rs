//! `spine_api_requests_total{route,status}` and `spine_api_request_duration_seconds{route}`.

use prometheus::{histogram_opts, opts, HistogramVec, IntCounterVec, Registry};
use spine_core::metrics::register;

#[derive(Clone)]
pub struct ApiMetrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
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
        ApiMetrics {
            registry,
            requests,
            duration,
        }
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}
