//! Registering Prometheus metrics: every binary builds its metrics once at start-up from
//! fixed names, so a failure here is a programming error, reported with the metric's name.

use prometheus::core::Collector;
use prometheus::{opts, IntGaugeVec, Registry};

/// Registers `metric` in `registry` and hands it back, ready to use.
///
/// # Panics
/// When the metric is invalid or its name is already taken in `registry`: both are bugs in
/// the fixed metric definitions, caught by any test that builds them.
pub fn register<C: Collector + Clone + 'static>(registry: &Registry, metric: C) -> C {
    let names: Vec<String> = metric.desc().iter().map(|d| d.fq_name.clone()).collect();
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        panic!("registering metric {names:?}: {e}");
    }
    metric
}

/// What every binary exports besides its own metrics: `spine_build_info{version} 1` and the
/// standard `process_*` metrics (CPU seconds, resident memory, open file descriptors, start
/// time) of the process.
pub fn register_process_metrics(registry: &Registry) {
    let info = IntGaugeVec::new(
        opts!(
            "spine_build_info",
            "Always 1; the label says which version of spine this process runs"
        ),
        &["version"],
    )
    .expect("valid metric");
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    register(registry, info);
    #[cfg(target_os = "linux")]
    if let Err(e) = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    )) {
        panic!("registering the process_* metrics: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{opts, Encoder as _, IntCounter};

    #[test]
    fn a_registered_metric_is_exported() {
        let registry = Registry::new();
        let c = register(
            &registry,
            IntCounter::with_opts(opts!("spine_test_total", "help")).expect("valid"),
        );
        c.inc();
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .expect("encodes");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("spine_test_total 1"), "{text}");
    }

    #[test]
    fn every_binary_exports_its_version_and_process_metrics() {
        let registry = Registry::new();
        register_process_metrics(&registry);
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .expect("encodes");
        let text = String::from_utf8(text).expect("utf-8");
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("spine_build_info{{version=\"{version}\"}} 1")),
            "{text}"
        );
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }

    #[test]
    #[should_panic(expected = "spine_test_total")]
    fn a_name_registered_twice_names_the_metric() {
        let registry = Registry::new();
        let make = || IntCounter::with_opts(opts!("spine_test_total", "help")).expect("valid");
        register(&registry, make());
        register(&registry, make());
    }
}
