//! What the detail views show, as lines of safe text: one record of the topic, one order's
//! history (`GET /orders/{tenant}/{order_id}`), one batch, one dead letter
//! (`GET /dead_letters`); and the JSON `y` copies (docs/contracts.md, "spine-tui").
//!
//! Everything here is pure: the views in `ui/detail.rs` only lay these lines out.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::{Batch, TailBody, TailRecord};
use crate::text::{SafeText, MAX_CHARS};

/// The most lines a detail view holds (a 4 KiB payload as hex is far fewer).
pub const MAX_LINES: usize = 2000;

/// `GET /orders/{tenant}/{order_id}`
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderHistory {
    pub tenant: SafeText,
    pub order_id: SafeText,
    #[serde(default)]
    pub current: Option<OrderCurrent>,
    #[serde(default)]
    pub events: Vec<HistoryEvent>,
    #[serde(default)]
    pub as_of_batch: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OrderCurrent {
    #[serde(default)]
    pub status: SafeText,
    #[serde(default)]
    pub amount_cents: i64,
    #[serde(default)]
    pub currency: SafeText,
    #[serde(default)]
    pub updated_at: SafeText,
    #[serde(default)]
    pub last_event_id: SafeText,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HistoryEvent {
    #[serde(default)]
    pub event_id: SafeText,
    #[serde(default)]
    pub event_type: SafeText,
    #[serde(default)]
    pub amount_cents: i64,
    #[serde(default)]
    pub currency: SafeText,
    #[serde(default)]
    pub event_time: SafeText,
    #[serde(default)]
    pub partition: i32,
    #[serde(default)]
    pub offset: i64,
    #[serde(default)]
    pub current: bool,
}

/// `GET /dead_letters`
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeadLettersResponse {
    pub dead_letters: Vec<DeadLetter>,
    #[serde(default)]
    pub as_of_batch: Option<i64>,
}

/// One dead letter. The payload is kept whole (up to the API's 4 KiB) and cleaned line by line
/// when shown: it is not a [`SafeText`], which would cut it at [`MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeadLetter {
    pub id: i64,
    #[serde(default)]
    pub topic: SafeText,
    pub partition: i32,
    pub offset: i64,
    #[serde(default)]
    pub received_at: SafeText,
    #[serde(default)]
    pub reason: SafeText,
    #[serde(default)]
    pub key: Option<SafeText>,
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub payload_encoding: SafeText,
    #[serde(default)]
    pub payload_bytes: i64,
    #[serde(default)]
    pub truncated: bool,
}

/// A detail fetched from the API: the typed answer and the JSON as it came (what `y` copies).
#[derive(Debug, Clone, PartialEq)]
pub struct WithJson<T> {
    pub data: T,
    pub json: Value,
}

/// Decodes an answer, keeping its JSON.
pub fn with_json<T: for<'de> Deserialize<'de>>(json: Value) -> Result<WithJson<T>, String> {
    let data = T::deserialize(&json).map_err(|e| e.to_string())?;
    Ok(WithJson { data, json })
}

/// One line of a detail view: a label (may be empty) and its text.
pub type DetailLine = (&'static str, SafeText);

/// Text of any length as safe lines of at most [`MAX_CHARS`] characters.
pub fn safe_lines(raw: &str) -> Vec<SafeText> {
    let mut out = Vec::new();
    for line in raw.split('\n') {
        let chars: Vec<char> = line.chars().collect();
        if chars.is_empty() {
            out.push(SafeText::default());
        }
        for chunk in chars.chunks(MAX_CHARS) {
            out.push(SafeText::new(&chunk.iter().collect::<String>()));
        }
        if out.len() >= MAX_LINES {
            out.truncate(MAX_LINES);
            out.push(SafeText::new("… (cut)"));
            break;
        }
    }
    out
}

/// Bytes shown safely: pretty JSON if they are JSON, the text if UTF-8, else a hex dump.
pub fn bytes_lines(raw: &[u8]) -> Vec<SafeText> {
    if let Ok(value) = serde_json::from_slice::<Value>(raw) {
        if let Ok(pretty) = serde_json::to_string_pretty(&value) {
            return safe_lines(&pretty);
        }
    }
    match std::str::from_utf8(raw) {
        Ok(text) => safe_lines(text),
        Err(_) => raw
            .chunks(16)
            .take(MAX_LINES)
            .enumerate()
            .map(|(i, chunk)| {
                let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                let ascii: String = chunk
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            b as char
                        } else {
                            '.'
                        }
                    })
                    .collect();
                SafeText::new(&format!("{:06x}  {:<47}  {ascii}", i * 16, hex.join(" ")))
            })
            .collect(),
    }
}

fn text_or_base64(raw: &[u8]) -> Value {
    match std::str::from_utf8(raw) {
        Ok(t) => Value::String(t.to_owned()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(raw) }),
    }
}

fn timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| format!("{} ({ms})", t.format("%Y-%m-%dT%H:%M:%S%.3fZ")))
        .unwrap_or_else(|| ms.to_string())
}

/// The detail of one topic record: its coordinates, then the value one JSON field a line.
pub fn record_lines(topic: &SafeText, r: &TailRecord) -> (Vec<DetailLine>, Vec<SafeText>) {
    let mut head: Vec<DetailLine> = vec![
        ("topic", topic.clone()),
        ("partition", SafeText::new(&r.partition.to_string())),
        ("offset", SafeText::new(&r.offset.to_string())),
        (
            "timestamp",
            SafeText::new(&r.raw.timestamp_ms.map_or("none".to_owned(), timestamp)),
        ),
        (
            "key",
            r.raw
                .key
                .as_deref()
                .map_or(SafeText::new("null"), SafeText::from_bytes),
        ),
    ];
    if r.raw.headers.is_empty() {
        head.push(("headers", SafeText::new("none")));
    }
    for (k, v) in &r.raw.headers {
        let v = v
            .as_deref()
            .map_or("null".into(), |v| String::from_utf8_lossy(v).into_owned());
        head.push(("header", SafeText::new(&format!("{k}: {v}"))));
    }
    if let TailBody::Malformed { reason, .. } = &r.body {
        head.push(("malformed", reason.clone()));
    }
    let body = match &r.raw.value {
        None => vec![SafeText::new("(no value: a tombstone)")],
        Some(v) => bytes_lines(v),
    };
    (head, body)
}

/// What `y` copies of a record.
pub fn record_json(topic: &SafeText, r: &TailRecord) -> Value {
    let value = r
        .raw
        .value
        .as_deref()
        .map(|v| serde_json::from_slice::<Value>(v).unwrap_or_else(|_| text_or_base64(v)));
    let mut out = json!({
        "topic": topic.as_str(),
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.raw.timestamp_ms,
        "key": r.raw.key.as_deref().map(text_or_base64),
        "headers": r.raw.headers.iter().map(|(k, v)| json!({
            "key": k, "value": v.as_deref().map(text_or_base64)
        })).collect::<Vec<_>>(),
        "value": value,
    });
    if let TailBody::Malformed { reason, .. } = &r.body {
        out["malformed"] = Value::String(reason.to_string());
    }
    out
}

/// The history of an order, oldest first, the event that set the current state marked `▶`.
pub fn order_lines(h: &OrderHistory) -> (Vec<DetailLine>, Vec<SafeText>) {
    let mut head: Vec<DetailLine> =
        vec![("tenant", h.tenant.clone()), ("order", h.order_id.clone())];
    if let Some(c) = &h.current {
        head.push((
            "current",
            SafeText::new(&format!(
                "{} {} {} at {}",
                c.status,
                crate::ui::money(c.amount_cents),
                c.currency,
                c.updated_at
            )),
        ));
    }
    if let Some(b) = h.as_of_batch {
        head.push(("as of batch", SafeText::new(&format!("#{b}"))));
    }
    let mut body = vec![SafeText::new(&format!(
        "{} events, oldest first (▶ set the current state; y copies them whole):",
        h.events.len()
    ))];
    for e in &h.events {
        // The time of day and the id's first characters keep a line within 80 columns.
        let id: String = e.event_id.as_str().chars().take(8).collect();
        body.push(SafeText::new(&format!(
            "{} {} {:<15} {:>9} {} p{}@{} {id}…",
            if e.current { "▶" } else { " " },
            crate::ui::time_of_day(&e.event_time),
            e.event_type.as_str(),
            crate::ui::money(e.amount_cents),
            e.currency,
            e.partition,
            e.offset,
        )));
    }
    (head, body)
}

/// A batch whole: its counts and durations, each partition's range, and (once fetched) the dead
/// letters whose offsets it read.
pub fn batch_lines(b: &Batch, dead: Option<&[DeadLetter]>) -> (Vec<DetailLine>, Vec<SafeText>) {
    let n = |v: i64| SafeText::new(&v.to_string());
    let head: Vec<DetailLine> = vec![
        ("batch", SafeText::new(&format!("#{}", b.batch_id))),
        ("started", b.started_at.clone()),
        ("finished", b.finished_at.clone()),
        ("input rows", n(b.input_rows)),
        ("inserted", n(b.events_inserted)),
        ("duplicates", n(b.duplicates)),
        ("upserted", n(b.orders_upserted)),
        ("stale", n(b.stale_skipped)),
        ("dead letters", n(b.dead_lettered)),
        (
            "ms",
            SafeText::new(&format!(
                "fetch {:.1}  write {:.1}  total {:.1}",
                b.fetch_ms, b.write_ms, b.total_ms
            )),
        ),
    ];
    let mut body = vec![SafeText::new("partition  offsets (end exclusive)  records")];
    for p in &b.partitions {
        body.push(SafeText::new(&format!(
            "{:>9}  {:>10}..{:<10}  {}",
            p.partition,
            p.start_offset,
            p.end_offset,
            p.end_offset - p.start_offset
        )));
    }
    if b.dead_lettered > 0 {
        body.push(SafeText::default());
        match dead {
            None => body.push(SafeText::new("dead letters: loading…")),
            Some(all) => {
                let mine: Vec<&DeadLetter> = all.iter().filter(|d| in_batch(b, d)).collect();
                body.push(SafeText::new(&format!(
                    "dead letters of this batch ({} of the newest {}):",
                    mine.len(),
                    all.len()
                )));
                for d in mine {
                    body.push(SafeText::new(&format!(
                        "p{}@{}: {}",
                        d.partition, d.offset, d.reason
                    )));
                }
            }
        }
    }
    (head, body)
}

/// Whether a dead letter's record is one the batch read.
pub fn in_batch(b: &Batch, d: &DeadLetter) -> bool {
    b.partitions
        .iter()
        .any(|p| p.partition == d.partition && (p.start_offset..p.end_offset).contains(&d.offset))
}

/// One dead letter whole: where it came from, why, and its payload shown safely.
pub fn dead_letter_lines(d: &DeadLetter) -> (Vec<DetailLine>, Vec<SafeText>) {
    let head: Vec<DetailLine> = vec![
        ("id", SafeText::new(&d.id.to_string())),
        ("topic", d.topic.clone()),
        ("partition", SafeText::new(&d.partition.to_string())),
        ("offset", SafeText::new(&d.offset.to_string())),
        ("received", d.received_at.clone()),
        ("reason", d.reason.clone()),
        ("key", d.key.clone().unwrap_or_else(|| "null".into())),
        (
            "payload",
            SafeText::new(&format!(
                "{} bytes, {}{}",
                d.payload_bytes,
                d.payload_encoding,
                if d.truncated { ", cut at 4 KiB" } else { "" }
            )),
        ),
    ];
    let body = if d.payload_encoding.as_str() == "base64" {
        match base64::engine::general_purpose::STANDARD.decode(&d.payload) {
            Ok(bytes) => bytes_lines(&bytes),
            Err(_) => safe_lines(&d.payload),
        }
    } else {
        bytes_lines(d.payload.as_bytes())
    };
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_shows_one_json_field_a_line_and_hostile_bytes_safely() {
        let good = br#"{"event_id":"e1","tenant":"acme","event_type":"order_paid","order_id":"o1","amount_cents":5,"event_time":"2026-11-25T12:00:00Z"}"#;
        let mut r = TailRecord::decode(2, 41, Some(b"acme"), Some(good));
        r.raw.timestamp_ms = Some(1_764_072_000_250);
        r.raw.headers = vec![("trace".into(), Some(b"\x1b[2J".to_vec()))];
        let (head, body) = record_lines(&"events".into(), &r);
        assert!(head.contains(&("offset", "41".into())));
        assert!(head.contains(&(
            "timestamp",
            "2025-11-25T12:00:00.250Z (1764072000250)".into()
        )));
        assert!(head.contains(&("header", "trace: ␛[2J".into())));
        let body: Vec<&str> = body.iter().map(SafeText::as_str).collect();
        assert!(body.contains(&r#"  "event_id": "e1","#), "{body:?}");
        assert!(body.contains(&r#"  "tenant": "acme""#), "{body:?}");

        let bad = TailRecord::decode(0, 7, None, Some(b"\xff\x1b[2J{"));
        let (head, body) = record_lines(&"events".into(), &bad);
        assert!(head
            .iter()
            .any(|(l, t)| *l == "malformed" && !t.as_str().is_empty()));
        assert_eq!(body.len(), 1);
        assert!(
            body[0].as_str().starts_with("000000  ff 1b 5b 32 4a 7b"),
            "{body:?}"
        );
        assert!(!body[0].as_str().chars().any(char::is_control));
        let copied = record_json(&"events".into(), &bad);
        assert_eq!(copied["value"]["base64"], "/xtbMkp7");
        assert_eq!(copied["offset"], 7);
    }

    #[test]
    fn the_api_shapes_decode_and_mark_the_current_event() {
        let json: Value = serde_json::from_str(
            r#"{"tenant":"acme","order_id":"ord-1","current":{"status":"order_paid","amount_cents":1299,
                "currency":"USD","updated_at":"2026-11-25T12:00:01Z","last_event_id":"e2"},
               "events":[{"event_id":"e1","event_type":"order_placed","amount_cents":1299,"currency":"USD",
                 "event_time":"2026-11-25T12:00:00Z","topic":"events","partition":0,"offset":41,
                 "ingested_at":"2026-11-25T12:00:02Z","current":false},
                {"event_id":"e2","event_type":"order_paid","amount_cents":1299,"currency":"USD",
                 "event_time":"2026-11-25T12:00:01Z","topic":"events","partition":0,"offset":42,
                 "ingested_at":"2026-11-25T12:00:02Z","current":true}],"as_of_batch":17}"#,
        )
        .expect("json");
        let h = with_json::<OrderHistory>(json).expect("history");
        let (_, body) = order_lines(&h.data);
        assert_eq!(
            body[1].as_str(),
            "  12:00:00.000Z order_placed        12.99 USD p0@41 e1…"
        );
        assert!(body[2].as_str().starts_with("▶ 12:00:01.000Z order_paid "));

        let dl: DeadLettersResponse = serde_json::from_str(
            r#"{"dead_letters":[{"id":12,"topic":"events","partition":1,"offset":77,"received_at":"t",
                "reason":"not a valid event JSON object","key":null,"key_encoding":null,
                "payload":"/w==","payload_encoding":"base64","payload_bytes":1,"truncated":false}],
               "as_of_batch":17}"#,
        )
        .expect("dead letters");
        let (head, body) = dead_letter_lines(&dl.dead_letters[0]);
        assert!(head.contains(&("reason", "not a valid event JSON object".into())));
        assert!(body[0].as_str().starts_with("000000  ff"));
    }
}
