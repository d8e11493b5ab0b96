//! Input can't take the processor down: a flood of big malformed records arriving within one
//! trigger is taken in batches bounded by bytes, each bad record stored once as a bounded dead
//! letter, and the real `spine-processor` binary's peak memory stays bounded meanwhile.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{event, raw, KillOnDrop};
use sha2::{Digest, Sha256};
use spine_core::event::EventType;
use spine_testkit::kafka::{create_topic, high_watermarks, produce, Raw};
use spine_testkit::{postgres, tansu, unique_name};

const PARTITIONS: i32 = 3;
/// Malformed records in the flood, and the size of each.
const BAD: usize = 600;
const BAD_BYTES: usize = 900_000;
/// Valid events mixed in.
const GOOD: usize = 300;
/// The processor's peak resident memory must stay under this (a 512 MiB pod keeps headroom).
const MAX_PEAK_RSS_KIB: u64 = 256 * 1024;

/// One 900 KB malformed record of three kinds: a JSON string (serde's error would quote it),
/// an event whose `amount_cents` is a huge string, and bytes that are not JSON at all.
fn bad_record(i: usize) -> Vec<u8> {
    let filler = |n: usize| -> String {
        // Distinct per record, so each has its own SHA-256.
        let seed = format!("record {i} ");
        seed.chars().cycle().take(n).collect()
    };
    let value = match i % 3 {
        0 => format!("\"{}\"", filler(BAD_BYTES - 2)),
        1 => {
            let head = r#"{"event_id":"1b4e28ba-2fa1-11d2-883f-0016d3cca427","tenant":"acme","event_type":"order_paid","order_id":"o","event_time":"2026-11-25T12:00:00Z","amount_cents":""#;
            let tail = "\"}";
            format!(
                "{head}{}{tail}",
                filler(BAD_BYTES - head.len() - tail.len())
            )
        }
        _ => filler(BAD_BYTES),
    };
    assert_eq!(value.len(), BAD_BYTES);
    value.into_bytes()
}

/// The process's peak resident set size so far, in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// The flood: good events and big bad records interleaved over every partition. Returns the
/// records, the good events' ids and the bad values.
fn flood() -> (Vec<Raw>, Vec<uuid::Uuid>, Vec<Vec<u8>>) {
    let mut records = Vec::new();
    let mut bad_values = Vec::new();
    let mut good_ids = Vec::new();
    for i in 0..BAD.max(GOOD) {
        let partition = (i % PARTITIONS as usize) as i32;
        if i < GOOD {
            let e = event(
                "acme",
                &format!("o{i}"),
                EventType::OrderPlaced,
                i as i64,
                i as u128 + 1,
            );
            good_ids.push(e.event_id);
            records.push(raw(partition, &e));
        }
        if i < BAD {
            let value = bad_record(i);
            bad_values.push(value.clone());
            records.push(Raw {
                partition,
                key: Some(format!("junk-{i}").into_bytes()),
                value: Some(value),
            });
        }
    }
    (records, good_ids, bad_values)
}

/// 600 malformed records of 900 KB (540 MB) and 300 good events, all received within one
/// 30 s trigger. Tansu takes about a minute to store 540 MB, longer than a trigger, so they
/// are produced first and the processor started after: it receives every one of them within
/// its first trigger, as a processor restarted after a crash would (the restart that, without
/// the bounds, crash-looped on the same records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_big_bad_records_in_one_trigger_keeps_memory_bounded() {
    let broker = tansu().bootstrap();
    let topic = unique_name("events");
    let group = unique_name("group");
    let db = postgres().fresh_database().await;
    create_topic(&broker, &topic, PARTITIONS).await;

    let (records, good_ids, bad_values) = flood();
    let started = Instant::now();
    produce(&broker, &topic, &records);
    eprintln!(
        "produced {} records ({} MB) in {:?}",
        records.len(),
        BAD * BAD_BYTES / 1_000_000,
        started.elapsed()
    );
    drop(records);
    let ends = high_watermarks(&broker, &topic, PARTITIONS);

    let mut env = common::env(&broker, &topic, &group, &db);
    env.retain(|(k, _)| k != "TRIGGER_INTERVAL_MS");
    env.push(("TRIGGER_INTERVAL_MS".into(), "30000".into()));
    let log_path = std::env::temp_dir()
        .join(unique_name("spine-flood"))
        .with_extension("log");
    let log = std::fs::File::create(&log_path).expect("log file");
    eprintln!("processor log: {}", log_path.display());
    let child = common::processor_command(&env)
        .env("LOG_FORMAT", "text")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn spine-processor");
    let child = KillOnDrop(child);
    let pid = child.0.id();

    let expected: Vec<i64> = ends.clone();
    let c = db.connect().await;
    common::eventually(Duration::from_secs(600), "every record written", || async {
        // Fails (not yet) until the processor has created the tables.
        c.query(
            "SELECT next_offset FROM stream_offsets WHERE consumer_group = $1
              ORDER BY kafka_partition",
            &[&group],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>() == expected)
        .unwrap_or(false)
    })
    .await;
    let peak = peak_rss_kib(pid);
    eprintln!(
        "peak RSS of spine-processor: {} MiB ({peak} KiB)",
        peak / 1024
    );

    let stored = common::stored(&db, &group, &topic).await;
    let good: BTreeSet<_> = good_ids.iter().copied().collect();
    let got: BTreeSet<_> = stored.events.keys().copied().collect();
    assert_eq!(got, good, "every good event stored");
    assert_eq!(
        stored.dead_letter_rows as usize, BAD,
        "every bad record one dead letter"
    );
    assert!(
        peak < MAX_PEAK_RSS_KIB,
        "peak RSS {} MiB, over the {} MiB bound",
        peak / 1024,
        MAX_PEAK_RSS_KIB / 1024
    );

    // Each dead letter: at most 64 KiB kept, with the full length and the whole's SHA-256.
    let rows = c
        .query(
            "SELECT length(payload), payload_length, payload_sha256, length(error)
               FROM dead_letters",
            &[],
        )
        .await
        .expect("dead letters");
    let expected_hashes: BTreeSet<Vec<u8>> = bad_values
        .iter()
        .map(|v| Sha256::digest(v).to_vec())
        .collect();
    let mut hashes = BTreeSet::new();
    for r in &rows {
        assert_eq!(
            r.get::<_, i32>(0),
            64 * 1024,
            "the first 64 KiB of the payload"
        );
        assert_eq!(r.get::<_, i32>(1), BAD_BYTES as i32, "its full length");
        assert!(r.get::<_, i32>(3) <= 1024, "a reason of at most 1 KiB");
        hashes.insert(r.get::<_, Vec<u8>>(2));
    }
    assert_eq!(hashes, expected_hashes, "the SHA-256 of each whole record");
    drop(child);
    let _ = std::fs::remove_file(&log_path);
}
