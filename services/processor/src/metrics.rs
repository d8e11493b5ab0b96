//! The processor's Prometheus metrics (docs/contracts.md, "Metrics").

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus::core::{Collector, Desc, Describer};
use prometheus::proto::MetricFamily;
use prometheus::{
    histogram_opts, opts, Gauge, Histogram, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use spine_core::metrics::{register, register_process_metrics};

use crate::sink::Committed;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub batches: IntCounter,
    pub rows: IntCounterVec,
    pub batch_duration: Histogram,
    /// Where a batch's time goes (docs/contracts.md, "Metrics"): from its newest record's
    /// broker timestamp to the start of its write, the write, and the COMMIT round trip.
    pub batch_queued: Histogram,
    pub batch_write: Histogram,
    pub batch_commit: Histogram,
    /// `spine_processor_lag_records{partition}`: the partition's end as this replica last saw
    /// it minus its next offset, refreshed every second (negative would mean a stored offset
    /// ahead of the log: never clamped).
    pub lag: IntGaugeVec,
    /// `spine_processor_lag_seconds`: now minus the newest event_time written.
    pub lag_seconds: SecondsSince,
    /// `spine_processor_last_batch_timestamp_seconds`: when the last batch committed.
    pub last_batch: Gauge,
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
        let phase = |name: &str, help: &str| {
            register(
                &registry,
                Histogram::with_opts(histogram_opts!(
                    name,
                    help,
                    vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0
                    ]
                ))
                .expect("valid metric"),
            )
        };
        let batch_queued = phase(
            "spine_processor_batch_queued_seconds",
            "From a batch's newest record's broker timestamp to the start of its write",
        );
        let batch_write = phase(
            "spine_processor_batch_write_seconds",
            "A batch's write, from its start to sending the last statement before COMMIT",
        );
        let batch_commit = phase(
            "spine_processor_batch_commit_seconds",
            "A batch's last round trip: its own rows and COMMIT",
        );
        let lag = register(
            &registry,
            IntGaugeVec::new(
                opts!(
                    "spine_processor_lag_records",
                    "Records between the committed offset and the partition's end, as this replica sees it"
                ),
                &["partition"],
            )
            .expect("valid metric"),
        );
        let lag_seconds = register(
            &registry,
            SecondsSince::new(
                "spine_processor_lag_seconds",
                "Seconds from the newest event_time written to now (absent until an event is written)",
            ),
        );
        let last_batch = register(
            &registry,
            Gauge::with_opts(opts!(
                "spine_processor_last_batch_timestamp_seconds",
                "When the last batch committed, in seconds since the Unix epoch"
            ))
            .expect("valid metric"),
        );
        register_process_metrics(&registry);
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
            batch_queued,
            batch_write,
            batch_commit,
            lag,
            lag_seconds,
            last_batch,
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
        if let Some(queued) = c.queued {
            self.batch_queued.observe(queued.as_secs_f64());
        }
        self.batch_write.observe(c.write_time.as_secs_f64());
        self.batch_commit.observe(c.commit_time.as_secs_f64());
        self.last_batch
            .set(Utc::now().timestamp_micros() as f64 / 1e6);
        if let Some(t) = c.max_event_time {
            self.lag_seconds.saw(t);
        }
    }
}

/// A gauge of the seconds since the newest of the instants it was shown, computed when
/// scraped, so it keeps growing while nothing new comes (a value set at each batch would
/// freeze when batches stop, which is exactly when it matters).
#[derive(Clone)]
pub struct SecondsSince {
    desc: Desc,
    opts: Opts,
    /// Microseconds since the epoch of the newest instant; `i64::MIN` for none yet.
    newest: Arc<AtomicI64>,
}

impl SecondsSince {
    pub fn new(name: &str, help: &str) -> SecondsSince {
        let opts = Opts::new(name, help);
        let desc = opts.describe().expect("valid metric");
        SecondsSince {
            desc,
            opts,
            newest: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }

    /// Keeps `t` if it is newer than what was seen.
    pub fn saw(&self, t: DateTime<Utc>) {
        self.newest
            .fetch_max(t.timestamp_micros(), Ordering::Relaxed);
    }

    /// Seconds since the newest instant, at `now`.
    pub fn seconds_at(&self, now: DateTime<Utc>) -> Option<f64> {
        let newest = self.newest.load(Ordering::Relaxed);
        (newest != i64::MIN).then(|| (now.timestamp_micros() - newest) as f64 / 1e6)
    }
}

impl Collector for SecondsSince {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(seconds) = self.seconds_at(Utc::now()) else {
            return Vec::new();
        };
        let gauge = Gauge::with_opts(self.opts.clone()).expect("valid metric");
        gauge.set(seconds);
        gauge.collect()
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
            "spine_processor_lag_records",
            "spine_processor_last_batch_timestamp_seconds",
            "spine_processor_write_retries_total",
            "spine_build_info",
            "process_cpu_seconds_total",
            "spine_processor_fenced_total",
            "spine_processor_batch_queued_seconds",
            "spine_processor_batch_write_seconds",
            "spine_processor_batch_commit_seconds",
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
        assert!(
            !names.contains(&"spine_processor_lag_seconds"),
            "no event written yet: no freshness to report"
        );
    }

    #[test]
    fn lag_seconds_grow_from_the_newest_event_time_written() {
        let m = Metrics::new();
        let t = Utc::now() - chrono::Duration::seconds(30);
        m.lag_seconds.saw(t);
        m.lag_seconds.saw(t - chrono::Duration::seconds(100)); // a late event changes nothing
        let later = t + chrono::Duration::seconds(42);
        assert_eq!(m.lag_seconds.seconds_at(later), Some(42.0));
        let family = m
            .registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "spine_processor_lag_seconds")
            .expect("exported once an event is written");
        let value = family.get_metric()[0].get_gauge().get_value();
        assert!((29.0..120.0).contains(&value), "about 30 s: {value}");
    }
}
