//! `GET /dead_letters?limit=&partition=`: the records that were not valid events, newest
//! first, with the reason and the bytes shown safely (docs/contracts.md, "HTTP API").

use axum::extract::{RawQuery, State};
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::ApiError;
use crate::params::Params;
use crate::AppState;

#[derive(Debug, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    #[serde(serialize_with = "super::rfc3339")]
    pub received_at: DateTime<Utc>,
    pub reason: String,
    pub key: Option<String>,
    pub key_encoding: Option<Encoding>,
    pub payload: String,
    pub payload_encoding: Encoding,
    /// The stored payload's length in bytes.
    pub payload_bytes: i64,
    /// `payload` shows only the first bytes of it.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Utf8,
    Base64,
}

#[derive(Debug, Serialize)]
pub struct DeadLettersResponse {
    pub dead_letters: Vec<DeadLetter>,
    pub as_of_batch: i64,
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;
/// The most text one key or payload is shown as (4 KiB): that many bytes of UTF-8, or the
/// base64 of [`BASE64_BYTES`] bytes.
pub const TEXT_BYTES: usize = 4096;
pub const BASE64_BYTES: usize = TEXT_BYTES / 4 * 3;

/// Only the first [`TEXT_BYTES`] of each key and payload leave the database.
pub fn sql(partition: bool) -> String {
    format!(
        "WITH b AS ({as_of})
         SELECT b.as_of, d.id, d.topic, d.kafka_partition, d.kafka_offset, d.received_at, d.error,
                substring(d.key FROM 1 FOR {TEXT_BYTES}),
                substring(d.payload FROM 1 FOR {TEXT_BYTES}),
                coalesce(d.payload_length::bigint, octet_length(d.payload), 0)::bigint
           FROM b LEFT JOIN LATERAL (
                SELECT * FROM dead_letters {filter} ORDER BY id DESC LIMIT $1) d ON true
          ORDER BY d.id DESC",
        as_of = super::AS_OF_BATCH,
        filter = if partition {
            "WHERE kafka_partition = $2"
        } else {
            ""
        },
    )
}

/// `bytes` (the first of `total` bytes) as text: UTF-8 where the bytes shown are UTF-8 (a
/// character cut at the end of a truncated payload is left out), else base64. Returns the
/// text, its encoding and whether it shows less than `total` bytes.
pub fn show(bytes: &[u8], total: usize) -> (String, Encoding, bool) {
    let cut = bytes.len() < total;
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), Encoding::Utf8, cut),
        Err(e) if cut && e.error_len().is_none() => {
            let text = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            (text.to_owned(), Encoding::Utf8, true)
        }
        Err(_) => {
            let shown = &bytes[..bytes.len().min(BASE64_BYTES)];
            (
                base64::engine::general_purpose::STANDARD.encode(shown),
                Encoding::Base64,
                shown.len() < total,
            )
        }
    }
}

/// `partition`: a partition number, 0 or more.
fn partition(params: &Params) -> Result<Option<i32>, ApiError> {
    match params.get("partition") {
        None => Ok(None),
        Some(v) => match v.trim().parse::<i32>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::BadRequest(format!(
                "partition must be an integer from 0 to {}, got {}",
                i32::MAX,
                spine_core::event::quote_value(v, 32)
            ))),
        },
    }
}

pub async fn dead_letters(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<DeadLettersResponse>, ApiError> {
    let params = Params::parse(raw.as_deref(), &["limit", "partition"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let partition = partition(&params)?;

    let client = app.pool.get().await?;
    let stmt = client.prepare_cached(&sql(partition.is_some())).await?;
    let rows = match &partition {
        Some(p) => client.query(&stmt, &[&limit, p]).await?,
        None => client.query(&stmt, &[&limit]).await?,
    };
    let as_of_batch = rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let dead_letters = rows
        .iter()
        .filter(|r| r.get::<_, Option<i64>>(1).is_some())
        .map(|r| {
            let key: Option<Vec<u8>> = r.get(7);
            let key = key.map(|k| show(&k, k.len()));
            let payload: Option<Vec<u8>> = r.get(8);
            let payload_bytes: i64 = r.get(9);
            let (payload, payload_encoding, truncated) = show(
                payload.as_deref().unwrap_or_default(),
                usize::try_from(payload_bytes).unwrap_or(0),
            );
            DeadLetter {
                id: r.get(1),
                topic: r.get(2),
                partition: r.get(3),
                offset: r.get(4),
                received_at: r.get(5),
                reason: r.get(6),
                key_encoding: key.as_ref().map(|k| k.1),
                key: key.map(|k| k.0),
                payload,
                payload_encoding,
                payload_bytes,
                truncated,
            }
        })
        .collect();
    Ok(Json(DeadLettersResponse {
        dead_letters,
        as_of_batch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_shown_as_text_and_bytes_as_base64_both_cut_at_4_kib() {
        assert_eq!(
            show(b"{\"a\":1}", 7),
            ("{\"a\":1}".into(), Encoding::Utf8, false)
        );
        assert_eq!(
            show(&[0xff, 0x00], 2),
            ("/wA=".into(), Encoding::Base64, false)
        );
        // A truncated payload whose last character is cut: the whole characters, as text.
        let mut euro = "€".repeat(TEXT_BYTES / 3).into_bytes();
        euro.push(0xe2);
        let (text, enc, cut) = show(&euro, 100_000);
        assert_eq!((enc, cut), (Encoding::Utf8, true));
        assert_eq!(text.len(), TEXT_BYTES / 3 * 3);
        // Binary: at most 4 KiB of base64.
        let bin = vec![0xfe_u8; TEXT_BYTES];
        let (text, enc, cut) = show(&bin, 9000);
        assert_eq!((enc, cut, text.len()), (Encoding::Base64, true, TEXT_BYTES));
        assert_eq!(show(&[], 0), (String::new(), Encoding::Utf8, false));
    }
}
