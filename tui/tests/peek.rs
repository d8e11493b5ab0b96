//! `spine-tui peek` with kcat's and rpk's flags, the real binary against the real Tansu
//! broker: where it starts (`-o`), which partition (`-p`), how many (`-n`), following (`-f`),
//! and the client properties (`-X`) reaching the client.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{event_json, raw};
use serde_json::Value;
use spine_testkit::kafka::{create_topic, produce};
use spine_testkit::{tansu, unique_name};

/// A topic of 3 partitions: 10 records in partition 0 (`p0-0`…`p0-9`), 4 in partition 1.
async fn topic_with_records() -> (String, String) {
    let bootstrap = tansu().bootstrap();
    let topic = unique_name("tui_peek_o");
    create_topic(&bootstrap, &topic, 3).await;
    let mut records: Vec<_> = (0..10)
        .map(|i| {
            raw(
                0,
                "acme",
                &event_json("acme", "order_placed", &format!("p0-{i}"), i),
            )
        })
        .collect();
    records.extend((0..4).map(|i| {
        raw(
            1,
            "acme",
            &event_json("acme", "order_paid", &format!("p1-{i}"), i),
        )
    }));
    produce(&bootstrap, &topic, &records);
    (bootstrap, topic)
}

fn peek(bootstrap: &str, topic: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spine-tui"))
        .args(["peek", "-b", bootstrap, "-t", topic, "--timeout-secs", "10"])
        .args(args)
        .env("RUST_LOG", "off")
        .env_remove("KAFKA_PROPERTIES")
        .output()
        .expect("runs")
}

/// (partition, offset) of each JSON line printed, in the order printed.
fn printed(bootstrap: &str, topic: &str, args: &[&str]) -> Vec<(i64, i64)> {
    let output = peek(bootstrap, topic, args);
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            (
                v["partition"].as_i64().expect("p"),
                v["offset"].as_i64().expect("o"),
            )
        })
        .collect()
}

fn p0(offsets: &[i64]) -> Vec<(i64, i64)> {
    offsets.iter().map(|&o| (0, o)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_starts_where_kcat_and_rpk_would() {
    let (b, t) = topic_with_records().await;
    assert_eq!(
        printed(&b, &t, &["-p", "0", "-o", "beginning", "-n", "3"]),
        p0(&[0, 1, 2])
    );
    assert_eq!(
        printed(&b, &t, &["-p", "0", "-o", "-5"]),
        p0(&[5, 6, 7, 8, 9])
    );
    assert_eq!(
        printed(&b, &t, &["-p", "0", "--offset=-5", "-n", "2"]),
        p0(&[5, 6])
    );
    assert_eq!(printed(&b, &t, &["-p", "0", "-o", "7"]), p0(&[7, 8, 9]));
    assert_eq!(
        printed(&b, &t, &["-p", "0", "-o", "700"]),
        p0(&[]),
        "past the end: nothing"
    );
    assert_eq!(printed(&b, &t, &["-p", "0", "-o", "end"]), p0(&[]));
    assert_eq!(
        printed(&b, &t, &["-p", "1", "-o", "beginning"]).len(),
        4,
        "to the end"
    );
    // Without -p, every partition from there (each in offset order).
    let mut last_two = printed(&b, &t, &["-o", "-2"]);
    last_two.sort();
    assert_eq!(last_two, [(0, 8), (0, 9), (1, 2), (1, 3)]);
    // By timestamp: from the start of time is the first record. (Tansu answers offset 0 to any
    // timestamp, so a later time cannot be told apart here; see the README.)
    assert_eq!(
        printed(&b, &t, &["-p", "0", "-o", "@0", "-n", "2"]),
        p0(&[0, 1])
    );
    // No -o: the newest 5 of the topic, as before.
    assert_eq!(printed(&b, &t, &[]).len(), 5);
    assert_eq!(printed(&b, &t, &["-p", "1", "-n", "2"]), [(1, 2), (1, 3)]);
    // The lines are whole records.
    let out = peek(&b, &t, &["-p", "0", "-o", "beginning", "-n", "1"]);
    let line: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(line["topic"], t.as_str());
    assert!(line["value"]
        .as_str()
        .expect("value")
        .contains("\"order_id\":\"p0-0\""));

    // A partition the topic does not have: one line, non-zero exit.
    let out = peek(&b, &t, &["-p", "9"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("spine-tui: partition 9 does not exist in topic {t} (it has 3 partitions, 0 to 2)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_properties_reach_the_client() {
    let (b, t) = topic_with_records().await;
    // A property librdkafka does not know: the client refuses it, so it was applied.
    let out = peek(&b, &t, &["-X", "no.such.property=1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no.such.property"), "{err}");
    // TLS against a plaintext broker: it cannot connect, whether from -X or KAFKA_PROPERTIES,
    // before or after `peek`.
    for (args, env) in [
        (vec!["-X", "security.protocol=ssl"], None),
        (vec![], Some("security.protocol=ssl")),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_spine-tui"));
        command
            .args([
                "-X",
                "socket.connection.setup.timeout.ms=2000",
                "peek",
                "-b",
                &b,
                "-t",
                &t,
                "--timeout-secs",
                "3",
            ])
            .args(&args)
            .env("RUST_LOG", "off");
        if let Some(env) = env {
            command.env("KAFKA_PROPERTIES", env);
        }
        let out = command.output().expect("runs");
        assert!(
            !out.status.success(),
            "{args:?} {env:?}: connected over TLS to a plaintext broker?"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("spine-tui: cannot reach the broker"),
            "{err}"
        );
    }
    // A malformed entry: one line naming the variable, the secret never shown.
    let out = Command::new(env!("CARGO_BIN_EXE_spine-tui"))
        .args(["peek", "-b", &b, "-t", &t])
        .env("KAFKA_PROPERTIES", "sasl.username=u,sasl.passwordhunter2")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("invalid KAFKA_PROPERTIES (--kafka-properties): entry 2: expected key=value"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_follows_new_records_until_ctrl_c() {
    let (b, t) = topic_with_records().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_spine-tui"))
        .args([
            "peek",
            "-b",
            &b,
            "-t",
            &t,
            "-p",
            "1",
            "-o",
            "beginning",
            "-f",
        ])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if tx.send(v["offset"].as_i64().expect("offset")).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no line for {what}"))
    };
    let history: Vec<i64> = (0..4).map(|_| next("history")).collect();
    assert_eq!(history, [0, 1, 2, 3]);
    // It is still running past the end, and prints what arrives.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("status").is_none(),
        "stopped at the end"
    );
    for i in 4..6 {
        produce(
            &b,
            &t,
            &[raw(
                1,
                "acme",
                &event_json("acme", "order_paid", &format!("p1-{i}"), i),
            )],
        );
        assert_eq!(next("a new record"), i);
    }
    // Ctrl-C ends it.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let status = child.wait().expect("exits");
    assert!(!status.success());
    assert!(
        rx.recv_timeout(Duration::from_secs(1)).is_err(),
        "nothing more"
    );
}
