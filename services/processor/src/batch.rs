//! One micro-batch as it accumulates: every record polled since the last commit, already
//! parsed, with the offset range it covers in each partition.
//!
//! What a batch holds is bounded whatever arrives: it counts the bytes it took (so the loop
//! cuts it at `MAX_BATCH_BYTES`), and a dead letter keeps at most [`MAX_DEAD_LETTER_BYTES`] of
//! its key and payload (with the full length and a SHA-256 of the whole) and a reason of at
//! most [`MAX_REASON_BYTES`].

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use spine_core::event::{parse_event, truncate_text, Event, MAX_REASON_BYTES};

/// The most of a dead letter's key, and of its payload, that is kept (64 KiB).
pub const MAX_DEAD_LETTER_BYTES: usize = 64 * 1024;

use crate::gaps::Gap;

/// A valid event and where it was read.
#[derive(Debug, Clone)]
pub struct Located {
    pub event: Event,
    pub partition: i32,
    pub offset: i64,
}

/// A record that is not a valid event: its key and payload as [`Kept`] (byte for byte up to
/// [`MAX_DEAD_LETTER_BYTES`]), and why it is not an event.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Kept>,
    pub payload: Option<Kept>,
    /// At most [`MAX_REASON_BYTES`].
    pub error: String,
}

/// A dead letter's key or payload as stored: its first [`MAX_DEAD_LETTER_BYTES`] bytes (all
/// of it when shorter), its full length, and the SHA-256 of the whole, so a cut value can
/// still be matched against the record on the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub head: Vec<u8>,
    pub length: usize,
    pub sha256: [u8; 32],
}

impl Kept {
    pub fn new(bytes: &[u8]) -> Kept {
        Kept {
            head: bytes[..bytes.len().min(MAX_DEAD_LETTER_BYTES)].to_vec(),
            length: bytes.len(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// Whether `head` is all of it.
    pub fn is_whole(&self) -> bool {
        self.head.len() == self.length
    }
}

/// The offsets `[start, end)` a batch covers in one partition. `start` is where the stored
/// offset stood when the batch began (the fence); `end` is one past the last record read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    pub start: i64,
    pub end: i64,
}

/// An empty batch is `Batch::default()`; it reads no clock (the first [`Batch::push`] does).
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Located>,
    pub dead_letters: Vec<DeadLetter>,
    pub ranges: BTreeMap<i32, OffsetRange>,
    /// Where copies of an event id already in this batch were read (the first copy is the one
    /// written).
    pub in_batch_duplicates: Vec<(i32, i64)>,
    ids: HashSet<uuid::Uuid>,
    /// The key and payload bytes of every record taken, as read (what `MAX_BATCH_BYTES`
    /// bounds). Records dropped by [`Batch::advance_partition`] stay counted.
    input_bytes: usize,
    /// When the batch's first record was taken (`None` while it is empty).
    pub started_at: Option<DateTime<Utc>>,
    /// Time spent polling and parsing this batch's records (idle waiting excluded).
    pub fetch_time: Duration,
    /// Offsets skipped in or before this batch (`ON_DATA_LOSS=continue`), written to
    /// `stream_gaps` in its transaction.
    pub gaps: Vec<Gap>,
    /// Partitions this batch reads after a gap at its start: the stored offset the fence must
    /// find there (the gap's `from_offset`), which is not the range's start.
    pub fence_starts: BTreeMap<i32, i64>,
    /// The newest broker (record) timestamp among the records taken.
    pub max_broker_timestamp: Option<DateTime<Utc>>,
    /// Records/s that arrived on the batch's partitions since the previous batch, when the
    /// loop could measure it (see `stream::rates`).
    pub input_rate: Option<f64>,
}

impl Batch {
    /// Records taken (valid, duplicate and dead), the batch's `input_rows`.
    pub fn input_rows(&self) -> usize {
        self.events.len() + self.dead_letters.len() + self.in_batch_duplicates.len()
    }

    /// The key and payload bytes of the records taken, as read.
    pub fn input_bytes(&self) -> usize {
        self.input_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Where the next record of `partition` must be, if this batch already read from it.
    pub fn next_offset(&self, partition: i32) -> Option<i64> {
        self.ranges.get(&partition).map(|r| r.end)
    }

    /// The stored offset the fence expects for `partition`: its range's start, unless the
    /// batch begins after a gap ([`Batch::start_after_gap`]).
    pub fn fence_start(&self, partition: i32) -> Option<i64> {
        let range = self.ranges.get(&partition)?;
        Some(
            self.fence_starts
                .get(&partition)
                .copied()
                .unwrap_or(range.start),
        )
    }

    /// Records a gap before this batch's first record of `gap.partition`: the stored offset is
    /// still `gap.from_offset` (the fence checks it), the range starts at `gap.to_offset`
    /// (pass it as the `position` of that first [`Batch::push`]).
    pub fn start_after_gap(&mut self, gap: Gap) {
        self.fence_starts.insert(gap.partition, gap.from_offset);
        self.gaps.push(gap);
    }

    /// Adds one record. `position` is the stored offset of its partition, used as the range's
    /// start when this is the batch's first record from that partition.
    pub fn push(
        &mut self,
        partition: i32,
        offset: i64,
        position: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) {
        if self.started_at.is_none() {
            self.started_at = Some(Utc::now());
        }
        let range = self.ranges.entry(partition).or_insert(OffsetRange {
            start: position,
            end: position,
        });
        range.end = offset + 1;
        self.input_bytes += key.map_or(0, <[u8]>::len) + payload.map_or(0, <[u8]>::len);
        match parse_event(payload.unwrap_or_default()) {
            Ok(event) => {
                if self.ids.insert(event.event_id) {
                    self.events.push(Located {
                        event,
                        partition,
                        offset,
                    });
                } else {
                    self.in_batch_duplicates.push((partition, offset));
                }
            }
            Err(reason) => self.dead_letters.push(DeadLetter {
                partition,
                offset,
                key: key.map(Kept::new),
                payload: payload.map(Kept::new),
                error: truncate_text(&reason.to_string(), MAX_REASON_BYTES).into_owned(),
            }),
        }
    }

    /// Notes a record's broker timestamp (milliseconds since the epoch; `None` when the record
    /// carries none).
    pub fn saw_broker_timestamp(&mut self, millis: Option<i64>) {
        let Some(t) = millis.and_then(DateTime::<Utc>::from_timestamp_millis) else {
            return;
        };
        if self.max_broker_timestamp.is_none_or(|max| t > max) {
            self.max_broker_timestamp = Some(t);
        }
    }

    /// Drops what another writer already committed: records of `partition` below `from`, and
    /// moves that partition's range start to `from` (the range disappears if nothing is left).
    pub fn advance_partition(&mut self, partition: i32, from: i64) {
        let Some(range) = self.ranges.get_mut(&partition) else {
            return;
        };
        // The other writer read the same log: it recorded the gaps before `from` itself.
        self.fence_starts.remove(&partition);
        self.gaps
            .retain(|g| g.partition != partition || g.from_offset >= from);
        if from >= range.end {
            self.ranges.remove(&partition);
        } else {
            range.start = from;
        }
        let before = self.events.len();
        self.events
            .retain(|e| e.partition != partition || e.offset >= from);
        if self.events.len() != before {
            self.ids = self.events.iter().map(|e| e.event.event_id).collect();
        }
        self.dead_letters
            .retain(|d| d.partition != partition || d.offset >= from);
        self.in_batch_duplicates
            .retain(|&(p, offset)| p != partition || offset >= from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(id: u128, order: &str) -> Vec<u8> {
        format!(
            r#"{{"event_id":"{}","tenant":"acme","event_type":"order_placed","order_id":"{order}","amount_cents":1,"event_time":"2026-01-01T00:00:00Z"}}"#,
            uuid::Uuid::from_u128(id)
        )
        .into_bytes()
    }

    #[test]
    fn ranges_start_at_the_stored_offset_and_end_past_the_last_record() {
        let mut b = Batch::default();
        b.push(0, 10, 10, None, Some(&good(1, "a")));
        b.push(0, 11, 10, None, Some(b"garbage"));
        b.push(2, 7, 5, Some(b"k"), Some(&good(2, "b")));
        assert_eq!(b.ranges[&0], OffsetRange { start: 10, end: 12 });
        assert_eq!(
            b.ranges[&2],
            OffsetRange { start: 5, end: 8 },
            "a gap before the first record stays covered"
        );
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.dead_letters.len(), 1);
        let kept = b.dead_letters[0].payload.as_ref().expect("payload");
        assert_eq!((kept.head.as_slice(), kept.length), (&b"garbage"[..], 7));
        assert!(kept.is_whole());
        assert_eq!(b.input_rows(), 3);
        let json = good(1, "a").len() + good(2, "b").len();
        assert_eq!(b.input_bytes(), json + b"garbage".len() + b"k".len());
    }

    #[test]
    fn a_big_dead_letter_keeps_its_head_length_and_hash() {
        let mut b = Batch::default();
        let key = vec![b'k'; 100_000];
        let payload: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
        b.push(0, 0, 0, Some(&key), Some(&payload));
        let d = &b.dead_letters[0];
        let p = d.payload.as_ref().expect("payload");
        assert_eq!(p.head, payload[..MAX_DEAD_LETTER_BYTES]);
        assert_eq!(p.length, 900_000);
        assert_eq!(p.sha256, <[u8; 32]>::from(Sha256::digest(&payload)));
        assert!(!p.is_whole());
        let k = d.key.as_ref().expect("key");
        assert_eq!((k.head.len(), k.length), (MAX_DEAD_LETTER_BYTES, 100_000));
        assert_eq!(b.input_bytes(), 1_000_000, "counted as read");
    }

    #[test]
    fn a_reason_is_at_most_a_kibibyte() {
        let mut b = Batch::default();
        let huge = format!("{{\"{}\": 1", "x".repeat(900_000)); // cut short: syntax error
        b.push(0, 0, 0, None, Some(huge.as_bytes()));
        let payload = serde_json::to_vec(&"y".repeat(900_000)).expect("json");
        b.push(0, 1, 0, None, Some(&payload));
        for d in &b.dead_letters {
            assert!(d.error.len() <= MAX_REASON_BYTES, "{} bytes", d.error.len());
            assert!(
                !d.error.contains(&"y".repeat(100)),
                "the value is not echoed"
            );
        }
    }

    #[test]
    fn a_batch_starts_when_its_first_record_is_taken() {
        let mut b = Batch::default();
        assert_eq!(b.started_at, None);
        b.push(0, 0, 0, None, Some(&good(1, "a")));
        let first = b.started_at.expect("set by the first record");
        b.push(0, 1, 0, None, Some(&good(2, "a")));
        assert_eq!(b.started_at, Some(first), "later records leave it alone");
    }

    #[test]
    fn the_newest_broker_timestamp_is_kept() {
        let mut b = Batch::default();
        b.saw_broker_timestamp(None);
        assert_eq!(b.max_broker_timestamp, None);
        b.saw_broker_timestamp(Some(1_764_000_002_000));
        b.saw_broker_timestamp(Some(1_764_000_001_000));
        assert_eq!(
            b.max_broker_timestamp.map(|t| t.timestamp_millis()),
            Some(1_764_000_002_000)
        );
    }

    #[test]
    fn a_repeated_event_id_is_written_once() {
        let mut b = Batch::default();
        b.push(0, 0, 0, None, Some(&good(1, "a")));
        b.push(1, 0, 0, None, Some(&good(1, "a")));
        assert_eq!(b.events.len(), 1);
        assert_eq!(b.in_batch_duplicates, vec![(1, 0)]);
        assert_eq!(b.input_rows(), 2);
    }

    #[test]
    fn a_tombstone_is_a_dead_letter() {
        let mut b = Batch::default();
        b.push(0, 0, 0, Some(b"acme"), None);
        assert_eq!(b.dead_letters[0].error, "empty record value");
        assert_eq!(b.dead_letters[0].payload, None);
        assert_eq!(b.dead_letters[0].key.as_ref().map(|k| k.length), Some(4));
    }

    #[test]
    fn advancing_a_partition_drops_what_another_writer_committed() {
        let mut b = Batch::default();
        for offset in 0..10 {
            b.push(0, offset, 0, None, Some(&good(offset as u128, "a")));
        }
        b.push(1, 3, 3, None, Some(&good(100, "b")));
        b.advance_partition(0, 6);
        assert_eq!(b.ranges[&0], OffsetRange { start: 6, end: 10 });
        assert_eq!(b.events.iter().filter(|e| e.partition == 0).count(), 4);
        b.advance_partition(1, 9);
        assert!(!b.ranges.contains_key(&1));
        assert!(b.events.iter().all(|e| e.partition == 0));
    }
}
