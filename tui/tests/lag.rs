//! The lag spine-tui shows, against a real Tansu broker: the topic source reads each
//! partition's end from the broker, and the lag on screen is that end minus the offset the
//! processor committed, even when the API's stored high watermark (and its lag) say 0.

mod common;

use std::time::{Duration, Instant};

use common::{event_json, raw};
use spine_testkit::kafka::{create_topic, high_watermarks, produce};
use spine_testkit::{tansu, unique_name};
use spine_tui::app::{ApiPoll, App, Connection, Lag, Msg};
use spine_tui::model::{BatchesResponse, PartitionLag};
use spine_tui::sources::topic::{self, TailConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn records(partition: i32, n: usize) -> Vec<spine_testkit::kafka::Raw> {
    (0..n)
        .map(|i| {
            raw(
                partition,
                "acme",
                &event_json("acme", "order_placed", &format!("o-{i}"), 1),
            )
        })
        .collect()
}

/// Feeds the tail's messages into `app` until the ends it read are `expected`.
async fn until_ends(app: &mut App, rx: &mut mpsc::Receiver<Msg>, expected: &[i64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ends: Vec<i64> = app
            .watermarks
            .iter()
            .flat_map(|w| w.ends.values().map(|e| e.high))
            .collect();
        if ends == expected {
            return;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(msg)) => {
                app.update(msg);
            }
            Ok(None) => panic!("the tail stopped"),
            Err(_) => panic!("timed out: ends {ends:?}, expected {expected:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_is_the_live_end_minus_the_committed_offset_per_partition() {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_lag");
    create_topic(&bootstrap, &topic, 3).await;
    let mut all = records(0, 10);
    all.extend(records(1, 7));
    produce(&bootstrap, &topic, &all);
    assert_eq!(high_watermarks(&bootstrap, &topic, 3), [10, 7, 0]);

    let mut app = App::new(
        Connection {
            api: "http://127.0.0.1:1".into(),
            brokers: bootstrap.as_str().into(),
            topic: topic.as_str().into(),
        },
        Instant::now(),
    );
    // What the API says: offsets 4 and 7 committed, and the ends stored at that commit, lag 0.
    let committed = |partition, next_offset| PartitionLag {
        topic: Some(topic.as_str().into()),
        partition,
        next_offset,
        high_watermark: Some(next_offset),
        lag: Some(0),
        ..PartitionLag::default()
    };
    let poll = ApiPoll {
        at: spine_tui::sources::wall_now(),
        tenant: None,
        orders: Err(spine_tui::app::FetchError::Status {
            code: 404,
            message: String::new(),
        }),
        stats: Err(spine_tui::app::FetchError::Status {
            code: 404,
            message: String::new(),
        }),
        batches: Ok(BatchesResponse {
            partitions: vec![committed(0, 4), committed(1, 7)],
            ..BatchesResponse::default()
        }),
    };
    app.update(Msg::Api(poll));

    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let _tail = topic::spawn(TailConfig::new(&bootstrap, &topic), tx, cancel.clone());

    // A quiet moment: the lag is exactly the end minus the committed offset.
    until_ends(&mut app, &mut rx, &[10, 7, 0]).await;
    let lags: Vec<(i32, Lag)> = app
        .lag_rows()
        .into_iter()
        .map(|r| (r.partition, r.lag))
        .collect();
    assert_eq!(
        lags,
        [
            (0, Lag::Records(6)),
            (1, Lag::Records(0)),
            (2, Lag::Records(0))
        ]
    );
    assert_eq!(app.lag_total(), Ok(Some(6)));

    // Records keep coming and nothing is committed: the lag grows, whatever the API stored.
    produce(&bootstrap, &topic, &records(1, 5));
    until_ends(&mut app, &mut rx, &[10, 12, 0]).await;
    assert_eq!(app.lag_total(), Ok(Some(11)));
    cancel.cancel();
}
