//! `-X key=value` / `KAFKA_PROPERTIES` reach the processor's consumer: a property librdkafka
//! refuses stops the run with librdkafka's reason, so the property was applied.

mod common;

use spine_testkit::kafka::create_topic;
use spine_testkit::{postgres, tansu, unique_name};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_gets_the_client_properties() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("props");
    create_topic(&bootstrap, &topic, 1).await;
    let db = postgres().fresh_database().await;
    let group = unique_name("g");
    let args = common::args(
        &bootstrap,
        &topic,
        &group,
        &db,
        &["--available-now", "-X", "no.such.property=1"],
    );
    assert_eq!(
        args.kafka.client_properties().to_string(),
        "no.such.property=1"
    );
    let e = spine_processor::run(args, CancellationToken::new())
        .await
        .expect_err("librdkafka refuses an unknown property");
    assert!(format!("{e:#}").contains("no.such.property"), "{e:#}");

    // Without it, the same run succeeds.
    let args = common::args(&bootstrap, &topic, &group, &db, &["--available-now"]);
    spine_processor::run(args, CancellationToken::new())
        .await
        .expect("runs");
}
