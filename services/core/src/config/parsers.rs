//! Value parsers for clap: each error says what was expected, in words a user can act on,
//! and never echoes the value (the clap-error rewriting in [`super::errors`] decides that).

use std::net::SocketAddr;

/// Any value but an empty (or all-blank) one, trimmed.
pub fn parse_non_empty(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("expected a non-empty value".into())
    } else {
        Ok(s.to_owned())
    }
}

/// Kafka bootstrap servers: `host:port[,host:port...]`, each optionally `scheme://`-prefixed.
pub fn parse_bootstrap(s: &str) -> Result<String, String> {
    let expected = "expected host:port[,host:port...]";
    let s = s.trim();
    if s.is_empty() {
        return Err(expected.into());
    }
    for server in s.split(',') {
        let server = server.trim();
        let server = server.split_once("://").map_or(server, |(_, rest)| rest);
        let Some((host, port)) = server.rsplit_once(':') else {
            return Err(expected.into());
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(expected.into());
        }
    }
    Ok(s.to_owned())
}

/// Kafka's own rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`.
pub fn parse_topic(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("expected a Kafka topic name: 1 to 249 of letters, digits, '.', '_' or '-'".into())
    }
}

/// A TCP port to connect to: 1 to 65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("expected a port number from 1 to 65535".into()),
    }
}

/// An address to listen on (`METRICS_ADDR`, `API_ADDR`); port 0 picks a free one.
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| "expected ip:port, e.g. 0.0.0.0:8000".into())
}

/// A `RUST_LOG` filter, checked the way tracing's `EnvFilter` will read it.
pub fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| {
            format!("expected a tracing filter such as info or spine_processor=debug ({e})")
        })
}

/// A whole number within `min..=max`, for counts and durations.
pub fn parse_u64_in(s: &str, min: u64, max: u64, what: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected {what} from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_servers_need_a_host_and_a_port_each() {
        assert!(parse_bootstrap("localhost:9092").is_ok());
        assert!(parse_bootstrap("a:1, b:2").is_ok());
        assert!(parse_bootstrap("PLAINTEXT://broker:9092").is_ok());
        for bad in [
            "",
            "  ",
            "nohostport",
            ":9092",
            "host:",
            "host:notaport",
            "a:1,b",
        ] {
            assert!(parse_bootstrap(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn topic_names_follow_kafkas_rule() {
        assert!(parse_topic("events").is_ok());
        assert!(parse_topic("a.b_c-1").is_ok());
        assert!(parse_topic(&"x".repeat(249)).is_ok());
        for bad in ["", ".", "..", "bad topic", "ü", &"x".repeat(250)] {
            assert!(parse_topic(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ports_and_addresses() {
        assert_eq!(parse_port(" 5432 "), Ok(5432));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").is_err());
        assert_eq!(
            parse_socket_addr("127.0.0.1:0").map(|a| a.port()),
            Ok(0),
            "port 0 is allowed: it picks a free port"
        );
        assert!(parse_socket_addr("localhost").is_err());
    }

    #[test]
    fn numbers_in_a_range_name_what_they_count() {
        assert_eq!(parse_u64_in("7", 1, 10, "a count"), Ok(7));
        assert_eq!(
            parse_u64_in("11", 1, 10, "a count"),
            Err("expected a count from 1 to 10".into())
        );
        assert!(parse_u64_in("-1", 0, 10, "a count").is_err());
        assert!(parse_non_empty("  ").is_err());
        assert_eq!(parse_non_empty(" x "), Ok("x".into()));
        assert!(parse_log_filter("info,spine_core=debug").is_ok());
        assert!(parse_log_filter("info,[").is_err());
    }
}
