//! The processor's Prometheus metrics (docs/contracts.md, "Metrics").

use prometheus::{
    histogram_opts, opts, Histogram, IntCounter, IntCounterVec, IntGaugeVec, Registry,
};

use spine_core::metrics::register;

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
    /// Gaps skipped with ON_DATA_LOSS=continue, counted when recorded (see [`crate::gaps`]).
    pub data_loss: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let batches = register(
            &registry,
            IntCounter::with_opts(opts!(
                "spine_processor_batches_total",
                "Micro-batches committed"
            ))
            .expect("valid metric"),
        );
        let rows = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_processor_rows_total",
                    "Records processed, by outcome: inserted, duplicate, stale, dead_letter"
                ),
                &["outcome"],
            )
            .expect("valid metric"),
        );
        let batch_duration = register(
            &registry,
            Histogram::with_opts(histogram_opts!(
                "spine_processor_batch_duration_seconds",
                "Time to fetch and write one micro-batch",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
            ))
            .expect("valid metric"),
        );
        let lag = register(
            &registry,
            IntGaugeVec::new(
                opts!(
                    "spine_processor_lag",
                    "Records between the committed offset and the partition's end"
                ),
                &["partition"],
            )
            .expect("valid metric"),
        );
        let write_retries = register(
            &registry,
            IntCounter::with_opts(opts!(
                "spine_processor_write_retries_total",
                "Batch writes retried after a transient Postgres error"
            ))
            .expect("valid metric"),
        );
        let fenced = register(
            &registry,
            IntCounter::with_opts(opts!(
                "spine_processor_fenced_total",
                "Batch writes refused because another writer moved the stored offsets"
            ))
            .expect("valid metric"),
        );
        let data_loss = register(
            &registry,
            IntCounterVec::new(
                opts!(
                    "spine_processor_data_loss_total",
                    "Gaps of offsets whose records were gone, skipped and recorded in stream_gaps \
                     (ON_DATA_LOSS=continue), by partition"
                ),
                &["partition"],
            )
            .expect("valid metric"),
        );
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
            data_loss,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_registered_and_each_outcome_shows_from_the_start() {
        let m = Metrics::new();
        m.lag.with_label_values(&["0"]).set(3);
        let families = m.registry.gather();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for name in [
            "spine_processor_batches_total",
            "spine_processor_rows_total",
            "spine_processor_batch_duration_seconds",
            "spine_processor_lag",
            "spine_processor_write_retries_total",
            "spine_processor_fenced_total",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let rows = families
            .iter()
            .find(|f| f.name() == "spine_processor_rows_total")
            .expect("rows");
        assert_eq!(
            rows.get_metric().len(),
            4,
            "inserted, duplicate, stale, dead_letter"
        );
    }
}
