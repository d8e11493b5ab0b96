//! The order event: its wire format (UTF-8 JSON; docs/contracts.md, "The event") and its
//! validation.
//!
//! Validation is one pure function, [`parse_event`], from the raw record value to either an
//! [`Event`] or an [`InvalidEvent`] whose text is stored as the dead letter's reason. Every
//! value that reaches Postgres has passed it, so no record can make a batch's SQL fail and
//! stall its partition (Postgres text cannot hold NUL, hence the control-character rule).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// The largest `amount_cents` accepted: 10^12 cents (ten billion in the currency's unit).
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000_000_000;
/// The longest `tenant` and `order_id`, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// The longest reason a dead letter keeps, in bytes (longer texts are cut, see
/// [`truncate_text`]).
pub const MAX_REASON_BYTES: usize = 1024;

/// What happened to an order. The string forms are the wire format and the `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    OrderPlaced,
    OrderPaid,
    OrderShipped,
    OrderCancelled,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::OrderPlaced,
        EventType::OrderPaid,
        EventType::OrderShipped,
        EventType::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderPlaced => "order_placed",
            EventType::OrderPaid => "order_paid",
            EventType::OrderShipped => "order_shipped",
            EventType::OrderCancelled => "order_cancelled",
        }
    }

    /// Orders in these states count towards revenue (docs/contracts.md, "HTTP API", `/stats`).
    pub fn counts_as_revenue(self) -> bool {
        matches!(self, EventType::OrderPaid | EventType::OrderShipped)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(())
    }
}

/// An ISO 4217-style currency code: exactly three ASCII capital letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    pub fn parse(s: &str) -> Option<Currency> {
        let b = s.as_bytes();
        (b.len() == 3 && b.iter().all(u8::is_ascii_uppercase)).then(|| Currency([b[0], b[1], b[2]]))
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII capitals.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A valid order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event_id: Uuid,
    pub tenant: String,
    pub event_type: EventType,
    pub order_id: String,
    pub amount_cents: i64,
    pub currency: Currency,
    /// UTC, truncated to microseconds (what Postgres' timestamptz holds), so the order of two
    /// events is the same in Rust and in SQL.
    #[serde(serialize_with = "serialize_time")]
    pub event_time: DateTime<Utc>,
}

impl Event {
    /// The wire format: UTF-8 JSON as docs/contracts.md ("The event") shows it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing this struct cannot fail: every field is a string or an integer.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-25T12:00:00.123456Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn serialize_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

/// Truncates to whole microseconds and folds a leap second into the next one, giving the value
/// Postgres stores, so comparisons agree in both places.
pub fn to_postgres_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Why a record is a dead letter. The `Display` text is the stored reason: it names the field
/// and what was expected, and quotes at most a short, escaped piece of the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("empty record value")]
    Empty,
    #[error("not UTF-8: {0}")]
    NotUtf8(String),
    #[error("not a valid event JSON object: {0}")]
    Json(String),
    #[error("{field}: {problem}")]
    Field {
        field: &'static str,
        problem: String,
    },
}

fn field_error(field: &'static str, problem: impl Into<String>) -> InvalidEvent {
    InvalidEvent::Field {
        field,
        problem: problem.into(),
    }
}

/// A bad value, quoted for an error message: escaped (no control characters reach a log or a
/// terminal) and cut to `max_chars` characters.
pub fn quote_value(s: &str, max_chars: usize) -> String {
    let cut: String = s.chars().take(max_chars).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn quote(s: &str) -> String {
    quote_value(s, 40)
}

/// `text` cut to at most `max_bytes` bytes, at a character boundary, ending in `…` when cut.
pub fn truncate_text(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes {
        return Cow::Borrowed(text);
    }
    let mut end = max_bytes.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

fn default_currency() -> Cow<'static, str> {
    Cow::Borrowed("USD")
}

/// The record as it arrives. Strings borrow from the payload where they can. A missing field,
/// a wrong type and a `null` are all serde errors; `currency` alone may be absent.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    tenant: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    amount_cents: Amount,
    #[serde(borrow, default = "default_currency")]
    currency: Cow<'a, str>,
    #[serde(borrow)]
    event_time: Cow<'a, str>,
}

/// `amount_cents` as it arrives. Its own visitor only so that a string in its place is
/// quoted short: serde's own message would embed the whole string, however long.
struct Amount(i64);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = i64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("i64")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
                Ok(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
                i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
                let quoted = format!("string {}", quote(v));
                Err(E::invalid_type(Unexpected::Other(&quoted), &self))
            }
        }
        d.deserialize_i64(AmountVisitor).map(Amount)
    }
}

/// Validates one record value. `Ok` is an event every table accepts; `Err` is the dead
/// letter's reason.
pub fn parse_event(payload: &[u8]) -> Result<Event, InvalidEvent> {
    if payload.is_empty() {
        return Err(InvalidEvent::Empty);
    }
    let text = std::str::from_utf8(payload).map_err(|e| InvalidEvent::NotUtf8(e.to_string()))?;
    if text.trim_start().starts_with('"') {
        // serde's message for a string where the object belongs quotes the whole string.
        return Err(InvalidEvent::Json(
            "invalid type: string, expected an event object".into(),
        ));
    }
    let raw: RawEvent<'_> = serde_json::from_str(text)
        .map_err(|e| InvalidEvent::Json(truncate_text(&e.to_string(), 256).into_owned()))?;
    let amount_cents = raw.amount_cents.0;

    let event_id = Uuid::parse_str(&raw.event_id).map_err(|_| {
        field_error(
            "event_id",
            format!("expected a UUID, got {}", quote(&raw.event_id)),
        )
    })?;
    let tenant = identifier("tenant", raw.tenant)?;
    let event_type = EventType::from_str(&raw.event_type).map_err(|()| {
        field_error(
            "event_type",
            format!(
                "expected order_placed, order_paid, order_shipped or order_cancelled, got {}",
                quote(&raw.event_type)
            ),
        )
    })?;
    let order_id = identifier("order_id", raw.order_id)?;
    if !(0..=MAX_AMOUNT_CENTS).contains(&amount_cents) {
        return Err(field_error(
            "amount_cents",
            format!("expected an integer from 0 to {MAX_AMOUNT_CENTS}, got {amount_cents}"),
        ));
    }
    let currency = Currency::parse(&raw.currency).ok_or_else(|| {
        field_error(
            "currency",
            format!(
                "expected three capital letters, got {}",
                quote(&raw.currency)
            ),
        )
    })?;
    let event_time = DateTime::parse_from_rfc3339(&raw.event_time)
        .map_err(|_| {
            field_error(
                "event_time",
                format!(
                    "expected RFC 3339 with an offset, got {}",
                    quote(&raw.event_time)
                ),
            )
        })?
        .with_timezone(&Utc);

    Ok(Event {
        event_id,
        tenant,
        event_type,
        order_id,
        amount_cents,
        currency,
        event_time: to_postgres_precision(event_time),
    })
}

/// Why a string is not a valid identifier (a tenant or an order id), if it is not: the one rule
/// the events, the API's parameters and the producer's settings share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierProblem {
    /// Not 1 to [`MAX_ID_CHARS`] characters; holds the length in characters.
    Length(usize),
    /// Holds a control character (Postgres text cannot hold NUL; a terminal must not get ESC).
    ControlCharacter,
}

/// Checks the identifier rule: 1 to [`MAX_ID_CHARS`] characters, no control characters.
pub fn check_identifier(value: &str) -> Result<(), IdentifierProblem> {
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        Err(IdentifierProblem::Length(chars))
    } else if value.chars().any(char::is_control) {
        Err(IdentifierProblem::ControlCharacter)
    } else {
        Ok(())
    }
}

fn identifier(field: &'static str, value: Cow<'_, str>) -> Result<String, InvalidEvent> {
    match check_identifier(&value) {
        Ok(()) => Ok(value.into_owned()),
        Err(IdentifierProblem::Length(chars)) => Err(field_error(
            field,
            format!("expected 1 to {MAX_ID_CHARS} characters, got {chars}"),
        )),
        Err(IdentifierProblem::ControlCharacter) => Err(field_error(
            field,
            format!("must not contain control characters, got {}", quote(&value)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "tenant": "acme",
 "event_type": "order_paid", "order_id": "ord-4711", "amount_cents": 12999,
 "currency": "USD", "event_time": "2026-11-25T12:00:00.123456Z"}"#;

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).expect("good json");
        v[field] = value;
        serde_json::to_vec(&v).expect("serializes")
    }

    fn without(field: &str) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).expect("good json");
        v.as_object_mut().expect("object").remove(field);
        serde_json::to_vec(&v).expect("serializes")
    }

    fn reason(payload: &[u8]) -> String {
        parse_event(payload)
            .expect_err("should be a dead letter")
            .to_string()
    }

    #[test]
    fn the_spec_example_is_valid_and_round_trips() {
        let e = parse_event(GOOD.as_bytes()).expect("valid");
        assert_eq!(e.tenant, "acme");
        assert_eq!(e.event_type, EventType::OrderPaid);
        assert_eq!(e.order_id, "ord-4711");
        assert_eq!(e.amount_cents, 12999);
        assert_eq!(e.currency, Currency::USD);
        assert_eq!(format_time(&e.event_time), "2026-11-25T12:00:00.123456Z");
        assert_eq!(parse_event(&e.to_json()).expect("round trip"), e);
    }

    #[test]
    fn currency_defaults_to_usd_only_when_absent() {
        assert_eq!(
            parse_event(&without("currency")).expect("valid").currency,
            Currency::USD
        );
        assert!(reason(&with("currency", serde_json::Value::Null)).contains("null"));
        assert!(reason(&with("currency", "usd".into()))
            .starts_with("currency: expected three capital letters"));
        assert!(reason(&with("currency", "EURO".into())).starts_with("currency:"));
        assert_eq!(
            parse_event(&with("currency", "EUR".into()))
                .expect("valid")
                .currency
                .as_str(),
            "EUR"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        assert!(parse_event(&with("note", "hello".into())).is_ok());
    }

    #[test]
    fn each_class_of_bad_input_has_its_reason() {
        assert_eq!(reason(b""), "empty record value");
        assert!(reason(b"not json").starts_with("not a valid event JSON object"));
        assert!(reason(b"\xff\xfe{}").starts_with("not UTF-8"));
        assert!(reason(b"[1,2]").starts_with("not a valid event JSON object"));
        assert!(reason(b"{\"event_id\": \"x\"").starts_with("not a valid event JSON object"));
        for field in [
            "event_id",
            "tenant",
            "event_type",
            "order_id",
            "amount_cents",
            "event_time",
        ] {
            let r = reason(&without(field));
            assert!(r.contains(&format!("missing field `{field}`")), "{r}");
            let r = reason(&with(field, serde_json::Value::Null));
            assert!(r.contains("invalid type: null"), "{field}: {r}");
        }
        assert!(reason(&with("amount_cents", "12".into())).contains("invalid type: string"));
        assert!(reason(&with("amount_cents", serde_json::json!(12.5)))
            .contains("invalid type: floating point"));
        assert!(reason(&with("tenant", serde_json::json!(7))).contains("invalid type: integer"));
        assert!(
            reason(&with("event_id", "not-a-uuid".into())).starts_with("event_id: expected a UUID")
        );
        assert!(reason(&with("amount_cents", serde_json::json!(-1)))
            .starts_with("amount_cents: expected an integer from 0"));
        assert!(reason(&with(
            "amount_cents",
            serde_json::json!(MAX_AMOUNT_CENTS + 1)
        ))
        .starts_with("amount_cents:"));
        assert!(parse_event(&with("amount_cents", serde_json::json!(MAX_AMOUNT_CENTS))).is_ok());
        assert!(parse_event(&with("amount_cents", serde_json::json!(0))).is_ok());
        assert!(reason(&with("event_type", "order_refunded".into()))
            .starts_with("event_type: expected order_placed"));
        assert!(reason(&with("event_time", "yesterday".into()))
            .starts_with("event_time: expected RFC 3339"));
        assert!(
            reason(&with("event_time", "2026-11-25T12:00:00".into())).starts_with("event_time:"),
            "no offset"
        );
        assert!(reason(&with("tenant", "".into()))
            .starts_with("tenant: expected 1 to 64 characters, got 0"));
        assert!(reason(&with("order_id", "x".repeat(65).into()))
            .starts_with("order_id: expected 1 to 64"));
        assert!(
            parse_event(&with("order_id", "é".repeat(64).into())).is_ok(),
            "characters, not bytes"
        );
        assert!(reason(&with("tenant", "a\u{0}b".into()))
            .starts_with("tenant: must not contain control characters"));
    }

    #[test]
    fn hostile_text_is_kept_as_text() {
        let e = parse_event(&with("tenant", "<img src=x onerror=alert(1)>".into())).expect("valid");
        assert_eq!(e.tenant, "<img src=x onerror=alert(1)>");
    }

    #[test]
    fn reasons_quote_bad_values_escaped_and_short() {
        let r = reason(&with(
            "event_type",
            format!("\u{1b}[31m{}", "x".repeat(500)).into(),
        ));
        assert!(!r.contains('\u{1b}'), "{r}");
        assert!(r.chars().count() < 200, "{r}");
    }

    #[test]
    fn a_huge_bad_value_is_never_echoed_whole() {
        let huge = "x".repeat(900_000);
        for payload in [
            with("amount_cents", huge.clone().into()),
            serde_json::to_vec(&huge).expect("a JSON string"),
            format!("  \"{huge}").into_bytes(), // not even a whole JSON string
            serde_json::to_vec(&serde_json::json!([
                "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                "acme",
                "order_paid",
                "o",
                huge
            ]))
            .expect("an array"),
        ] {
            let r = reason(&payload);
            assert!(r.len() <= 300, "{} bytes: {}…", r.len(), &r[..200]);
            assert!(
                r.starts_with("not a valid event JSON object: invalid type: string"),
                "{r}"
            );
        }
        let r = reason(&with("amount_cents", "12".into()));
        assert!(
            r.contains("invalid type: string \"12\", expected i64"),
            "{r}"
        );
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_text("short", 10), "short");
        let long = "é".repeat(1000);
        let cut = truncate_text(&long, MAX_REASON_BYTES);
        assert!(
            cut.len() <= MAX_REASON_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert_eq!(truncate_text("abcdef", 4), "a…");
    }

    #[test]
    fn times_are_normalised_to_utc_microseconds() {
        let e = parse_event(&with(
            "event_time",
            "2026-11-25T13:00:00.123456789+01:00".into(),
        ))
        .expect("valid");
        assert_eq!(format_time(&e.event_time), "2026-11-25T12:00:00.123456Z");
        let e =
            parse_event(&with("event_time", "2016-12-31T23:59:60.5Z".into())).expect("leap second");
        assert_eq!(format_time(&e.event_time), "2017-01-01T00:00:00.500000Z");
    }
}
