//! The real `spine-tui` in tmux watching a real spine (Tansu, a throwaway Postgres, the real
//! producer, processor and API): the processor is killed while events keep arriving, and the
//! screen must say `stalled` with a lag that grows; restarted, it must say `running` again with
//! the lag back near 0.
//!
//! The sibling binaries must be built first: `cargo build --workspace --bins`.

mod common;

use std::time::{Duration, Instant};

use common::services::{kafka_env, tails, Service};
use common::tmux::spine_tui;
use spine_testkit::{free_port, postgres, tansu, unique_name};

/// The lag in the Batches pane's title, if a number is shown.
fn batches_lag(screen: &str) -> Option<i64> {
    let at = screen.find("Batches · lag ")? + "Batches · lag ".len();
    screen[at..].split_whitespace().next()?.parse().ok()
}

/// The batch the Orders pane shows (`Orders #N`).
fn orders_batch(screen: &str) -> Option<i64> {
    let at = screen.find("Orders #")? + "Orders #".len();
    screen[at..].split_whitespace().next()?.parse().ok()
}

/// The age in the header's `last batch Ns ago`.
fn last_batch_age(screen: &str) -> Option<u64> {
    let line = processor_line(screen);
    let at = line.find("last batch ")? + "last batch ".len();
    line[at..].split("s ago").next()?.parse().ok()
}

/// The header's processor line: `Processor <state> · last batch Ns ago …`.
fn processor_line(screen: &str) -> &str {
    screen
        .lines()
        .find(|l| l.contains("Processor "))
        .unwrap_or_default()
}

#[test]
fn the_screen_says_stalled_when_the_processor_stops_and_running_when_it_is_back() {
    let logs = tempfile::Builder::new()
        .prefix("spine-tui-stall-")
        .tempdir()
        .expect("temp dir");
    let logs = logs.path();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(postgres().fresh_database());
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_stall");
    let group = unique_name("tui-stall");
    let api_port = free_port();
    let api_url = format!("http://127.0.0.1:{api_port}");
    let env = |extra: &[(&'static str, String)]| kafka_env(&bootstrap, &topic, extra);

    // Events keep arriving for the whole test (the producer creates the topic).
    let _producer = Service::start(
        "spine-producer",
        &env(&[
            ("TOPIC_PARTITIONS", "3".into()),
            ("TENANTS", "acme,globex,initech".into()),
            ("EVENTS_PER_SECOND", "100".into()),
        ]),
        &[],
        logs,
    );
    let processor_env = env(&[
        ("CONSUMER_GROUP", group.clone()),
        ("DATABASE_URL", db.url()),
        ("TRIGGER_INTERVAL_MS", "500".into()),
    ]);
    let mut processor = Service::start("spine-processor", &processor_env, &[], logs);
    let api = Service::start_api(
        &env(&[
            ("DATABASE_URL", db.url()),
            ("API_ADDR", format!("127.0.0.1:{api_port}")),
        ]),
        api_port,
        logs,
    );

    let tui_log = logs.join("spine-tui.log");
    let tmux = spine_tui(&api_url, &bootstrap, &topic, &tui_log);
    let service_logs = [processor.log.clone(), api.log.clone(), tui_log.clone()];
    let context = || tails(&service_logs);

    let running = tmux.wait_for(
        "the processor running",
        Duration::from_secs(120),
        context,
        |s| processor_line(s).contains("Processor running · last batch"),
    );
    eprintln!("running, at 80×24:\n{running}");
    // Some history for the sparklines: twenty batches or so.
    tmux.wait_for("twenty batches", Duration::from_secs(60), context, |s| {
        orders_batch(s).is_some_and(|b| b >= 20)
    });

    // SIGKILL: no goodbye, no last commit. Records keep arriving.
    processor.stop();
    let killed = Instant::now();
    let stalled = tmux.wait_for(
        "the processor stalled",
        Duration::from_secs(60),
        context,
        |s| {
            processor_line(s).contains("Processor stalled · last batch")
                && batches_lag(s).is_some_and(|l| l > 0)
        },
    );
    eprintln!(
        "stalled {:.0} s after the kill, at 80×24:\n{stalled}",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "stalled within 30 s of the kill"
    );
    let (first_lag, first_age) = (
        batches_lag(&stalled).expect("lag"),
        last_batch_age(&stalled).expect("age"),
    );
    // The lag grows while it stays stalled, and the age with it.
    let later = tmux.wait_for(
        "the lag and the age to grow",
        Duration::from_secs(30),
        context,
        |s| {
            processor_line(s).contains("Processor stalled")
                && batches_lag(s).is_some_and(|l| l > first_lag)
                && last_batch_age(s).is_some_and(|a| a >= first_age + 10)
        },
    );
    eprintln!("still stalled, at 80×24:\n{later}");

    // Back: the same group picks up where it committed.
    let _processor = Service::start("spine-processor", &processor_env, &[], logs);
    let back = tmux.wait_for(
        "the processor running again, caught up",
        Duration::from_secs(120),
        context,
        |s| {
            processor_line(s).contains("Processor running")
                && batches_lag(s).is_some_and(|l| (0..500).contains(&l))
        },
    );
    eprintln!("running again, at 80×24:\n{back}");
    assert!(!back.contains("stalled"), "{back}");

    tmux.keys("q");
    tmux.wait_for("the exit", Duration::from_secs(10), context, |s| {
        s.contains("exit=0")
    });
}
