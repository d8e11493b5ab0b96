//! Query-string parameters, checked strictly: an unknown, repeated or malformed parameter is a
//! 400 that names it, so a typo never silently returns unfiltered data.

use std::collections::BTreeMap;

use spine_core::event::{check_identifier, EventType, MAX_ID_CHARS};

use crate::error::ApiError;

/// The parameters of one request, each known and given at most once.
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

/// A value quoted for an error message: escaped and cut short.
fn quote(s: &str) -> String {
    spine_core::event::quote_value(s, 32)
}

/// An identifier (a tenant or an order id, from the query or the path) checked by the one rule
/// events follow; a 400 naming `name` otherwise.
pub fn identifier<'a>(name: &str, value: &'a str) -> Result<&'a str, ApiError> {
    match check_identifier(value) {
        Ok(()) => Ok(value),
        Err(_) => Err(ApiError::BadRequest(format!(
            "{name} must be 1 to {MAX_ID_CHARS} characters without control characters, got {}",
            quote(value)
        ))),
    }
}

impl Params {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let mut params = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                let expected = if allowed.is_empty() {
                    "this route takes none".to_string()
                } else {
                    format!("expected {}", allowed.join(", "))
                };
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter {}: {expected}",
                    quote(&key)
                )));
            }
            if params.insert(key.to_string(), value.into_owned()).is_some() {
                return Err(ApiError::BadRequest(format!(
                    "query parameter {} given more than once",
                    quote(&key)
                )));
            }
        }
        Ok(Params(params))
    }

    /// The raw value of one parameter, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit`: an integer within `1..=max`, `default` when absent.
    pub fn limit(&self, default: i64, max: i64) -> Result<i64, ApiError> {
        match self.0.get("limit") {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "limit must be an integer from 1 to {max}, got {}",
                    quote(v)
                ))),
            },
        }
    }

    /// `tenant`: a tenant name as events carry it.
    pub fn tenant(&self) -> Result<Option<&str>, ApiError> {
        match self.0.get("tenant") {
            None => Ok(None),
            Some(t) => identifier("tenant", t).map(Some),
        }
    }

    /// `status`: one of the four event types.
    pub fn status(&self) -> Result<Option<EventType>, ApiError> {
        match self.0.get("status") {
            None => Ok(None),
            Some(s) => s.parse::<EventType>().map(Some).map_err(|()| {
                ApiError::BadRequest(format!(
                    "status must be one of order_placed, order_paid, order_shipped, order_cancelled, got {}",
                    quote(s)
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str, allowed: &[&str]) -> String {
        match Params::parse(Some(raw), allowed) {
            Err(e) => e.to_string(),
            Ok(p) => match (p.limit(100, 1000), p.tenant(), p.status()) {
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => e.to_string(),
                _ => panic!("{raw} should be rejected"),
            },
        }
    }

    const ORDERS: &[&str] = &["tenant", "status", "limit"];

    #[test]
    fn good_parameters_parse() {
        let p =
            Params::parse(Some("tenant=acme&status=order_paid&limit=5"), ORDERS).expect("valid");
        assert_eq!(p.limit(100, 1000).expect("limit"), 5);
        assert_eq!(p.tenant().expect("tenant"), Some("acme"));
        assert_eq!(p.status().expect("status"), Some(EventType::OrderPaid));
        let p = Params::parse(None, ORDERS).expect("none");
        assert_eq!(p.limit(100, 1000).expect("default"), 100);
        let p = Params::parse(Some("tenant=%3Cimg%20src%3Dx%3E"), ORDERS).expect("encoded");
        assert_eq!(p.tenant().expect("tenant"), Some("<img src=x>"));
    }

    #[test]
    fn every_bad_parameter_is_named() {
        assert!(err("limit=0", ORDERS)
            .starts_with("limit must be an integer from 1 to 1000, got \"0\""));
        assert!(err("limit=abc", ORDERS).starts_with("limit must be"));
        assert!(err("limit=100000", ORDERS).starts_with("limit must be"));
        assert!(err("limit=-1", ORDERS).starts_with("limit must be"));
        assert!(err("limit=", ORDERS).starts_with("limit must be"));
        assert!(err("status=nope", ORDERS).starts_with("status must be one of"));
        assert!(err("tenant=", ORDERS).starts_with("tenant must be 1 to 64"));
        let long = format!("tenant={}", "a".repeat(10_000));
        let e = err(&long, ORDERS);
        assert!(e.starts_with("tenant must be") && e.len() < 200, "{e}");
        assert!(err("limt=5", ORDERS)
            .starts_with("unknown query parameter \"limt\": expected tenant, status, limit"));
        assert!(err("limit=1&limit=2", ORDERS)
            .starts_with("query parameter \"limit\" given more than once"));
        assert!(err("x=1", &[]).contains("this route takes none"));
    }
}
