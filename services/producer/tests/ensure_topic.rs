//! Creating the topic against a real broker (Tansu): retried while the broker is away, done
//! once it answers.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use spine_producer::publish::ensure_topic;
use spine_testkit::{tansu, unique_name, OwnedTansu};

fn partitions_of(bootstrap: &str, topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_is_created_once_and_an_existing_one_is_accepted() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("ensure");
    ensure_topic(&bootstrap, &Default::default(), &topic, 3)
        .await
        .expect("created");
    assert_eq!(partitions_of(&bootstrap, &topic), 3);
    ensure_topic(&bootstrap, &Default::default(), &topic, 3)
        .await
        .expect("an existing topic is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_is_away_is_waited_for() {
    let mut broker = OwnedTansu::start();
    broker.stop();
    let bootstrap = broker.bootstrap();
    let topic = unique_name("ensure_away");
    let creating = tokio::spawn({
        let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
        async move { ensure_topic(&bootstrap, &Default::default(), &topic, 2).await }
    });
    // Nobody listens: ensure_topic keeps trying rather than giving up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !creating.is_finished(),
        "ensure_topic returned while the broker was away"
    );
    broker.resume();
    tokio::time::timeout(Duration::from_secs(120), creating)
        .await
        .expect("created soon after the broker is back")
        .expect("no panic")
        .expect("created");
    assert_eq!(partitions_of(&bootstrap, &topic), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_succeed_fails_at_once_with_the_reason() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("ensure_bad");
    // Retrying forever would hang here; the timeout only turns a hang into a failure.
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        ensure_topic(&bootstrap, &Default::default(), &topic, -5),
    )
    .await
    .expect("ensure_topic gives up instead of retrying")
    .expect_err("-5 partitions cannot be created");
    let msg = format!("{err:#}");
    assert!(
        msg.starts_with(&format!(
            "cannot ask to create topic {topic} with -5 partitions: "
        )),
        "{msg}"
    );
}
