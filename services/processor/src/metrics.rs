//! The processor's Prometheus metrics (SPEC.md "Metrics").

use prometheus::{
    histogram_opts, opts, Histogram, IntCounter, IntCounterVec, IntGaugeVec, Registry,
};

use crate::sink::Committed;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub batches: IntCounter,
    pub rows: IntCounterVec,
    pub batch_duration: Histogram,
    pub lag: IntGaugeVec,
    pub write_retries: IntCounter,
    pub fenced: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let batches = IntCounter::with_opts(opts!(
            "spine_processor_batches_total",
            "Micro-batches committed"
        ))
        .expect("valid metric");
        let rows = IntCounterVec::new(
            opts!(
                "spine_processor_rows_total",
                "Records processed, by outcome: inserted, duplicate, stale, dead_letter"
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let batch_duration = Histogram::with_opts(histogram_opts!(
            "spine_processor_batch_duration_seconds",
            "Time to fetch and write one micro-batch",
            vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
        ))
        .expect("valid metric");
        let lag = IntGaugeVec::new(
            opts!(
                "spine_processor_lag",
                "Records between the committed offset and the partition's end"
            ),
            &["partition"],
        )
        .expect("valid metric");
        let write_retries = IntCounter::with_opts(opts!(
            "spine_processor_write_retries_total",
            "Batch writes retried after a transient Postgres error"
        ))
        .expect("valid metric");
        let fenced = IntCounter::with_opts(opts!(
            "spine_processor_fenced_total",
            "Batch writes refused because another writer moved the stored offsets"
        ))
        .expect("valid metric");
        for c in [
            Box::new(batches.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rows.clone()),
            Box::new(batch_duration.clone()),
            Box::new(lag.clone()),
            Box::new(write_retries.clone()),
            Box::new(fenced.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        // Every outcome shows from the start, at 0.
        for outcome in ["inserted", "duplicate", "stale", "dead_letter"] {
            rows.with_label_values(&[outcome]);
        }
        Metrics {
            registry,
            batches,
            rows,
            batch_duration,
            lag,
            write_retries,
            fenced,
        }
    }

    pub fn record(&self, c: &Committed, seconds: f64) {
        self.batches.inc();
        self.rows
            .with_label_values(&["inserted"])
            .inc_by(c.events_inserted as u64);
        self.rows
            .with_label_values(&["duplicate"])
            .inc_by(c.duplicates as u64);
        self.rows
            .with_label_values(&["stale"])
            .inc_by(c.stale_skipped as u64);
        self.rows
            .with_label_values(&["dead_letter"])
            .inc_by(c.dead_lettered as u64);
        self.batch_duration.observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
