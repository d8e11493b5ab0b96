//! `-X key=value` / `KAFKA_PROPERTIES` reach both of the producer's Kafka clients (the admin
//! client that creates the topic, the producer), against a real broker (Tansu).

use std::process::Command;
use std::time::Duration;

use spine_core::config::parse_kafka_properties;
use spine_producer::publish::{create_producer, ensure_topic, Metrics};
use spine_testkit::{tansu, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_properties_reach_the_admin_client_and_the_producer() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("props");
    let unknown = parse_kafka_properties("no.such.property=1").expect("valid");
    let e = ensure_topic(&bootstrap, &unknown, &topic, 1)
        .await
        .expect_err("librdkafka refuses an unknown property");
    assert!(format!("{e:#}").contains("no.such.property"), "{e:#}");
    let e = create_producer(&bootstrap, &unknown, Metrics::new(&["acme".to_string()]))
        .err()
        .expect("refused");
    assert!(format!("{e:#}").contains("no.such.property"), "{e:#}");

    // TLS to a plaintext broker never gets an answer; without it, the same call succeeds.
    let tls = parse_kafka_properties("security.protocol=ssl").expect("valid");
    let attempt = tokio::time::timeout(
        Duration::from_secs(3),
        ensure_topic(&bootstrap, &tls, &topic, 1),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(()))),
        "created the topic over TLS on a plaintext port?"
    );
    ensure_topic(&bootstrap, &Default::default(), &topic, 1)
        .await
        .expect("created");
}

#[test]
fn a_malformed_entry_stops_the_binary_in_one_line_without_the_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_spine-producer"))
        .args(["--count", "1", "-X", "sasl.password=hunter2"])
        .env("KAFKA_PROPERTIES", "sasl.username=u,sasl.passwordhunter2")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "spine-producer: invalid KAFKA_PROPERTIES (--kafka-properties): entry 2: expected key=value, \
         a librdkafka property such as security.protocol=SASL_SSL (no '='); separate entries with ',' \
         and pass a value holding a comma with -X"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_spine-producer"))
        .args(["--count", "1", "-X", "sasl.passwordhunter2"])
        .env_remove("KAFKA_PROPERTIES")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("spine-producer: invalid --kafka-property: expected key=value"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
