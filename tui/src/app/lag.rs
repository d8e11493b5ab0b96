//! The lag spine-tui shows: per partition, the end of the log as its own broker connection sees
//! it now, minus the offset the processor committed (from `/batches`). Neither a dead API nor
//! a high watermark stored at the last commit can make it read 0 while records wait, and an
//! offset past the end of the log is an error on screen, never clamped to 0
//! (docs/contracts.md, "spine-tui").

use std::collections::BTreeMap;

use super::WallTime;
use crate::model::PartitionLag;

/// One partition's log as the topic source last read it: its first offset and its end (the
/// high watermark: the offset the next record will get).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEnd {
    pub low: i64,
    pub high: i64,
}

/// The ends of the topic's partitions and when they were read.
#[derive(Clone, Debug, PartialEq)]
pub struct Watermarks {
    pub at: WallTime,
    pub ends: BTreeMap<i32, LogEnd>,
}

/// A partition's lag, or why there is none to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lag {
    Records(i64),
    /// The committed offset is past the end of a log read after it: something is wrong (the
    /// topic was re-created, or the offsets belong to another log).
    AheadOfLog {
        committed: i64,
        end: i64,
    },
    /// The committed offset is past an end read before it: the next read settles it.
    Pending,
    /// The end of the log is not known (the broker does not answer this screen).
    Unknown,
}

impl Lag {
    /// The cell text: a number, `?` (unknown), `…` (pending) or `ahead!`.
    pub fn cell(&self) -> String {
        match self {
            Lag::Records(n) => n.to_string(),
            Lag::AheadOfLog { .. } => "ahead!".into(),
            Lag::Pending => "…".into(),
            Lag::Unknown => "?".into(),
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            Lag::AheadOfLog { committed, end } => Some(format!(
                "committed offset {committed} is ahead of the log's end {end}"
            )),
            _ => None,
        }
    }
}

/// One row of the lag table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRow {
    pub partition: i32,
    /// The processor's committed next offset; `None` if it has committed none on it.
    pub committed: Option<i64>,
    /// The end of the log as this screen's connection read it.
    pub end: Option<i64>,
    pub lag: Lag,
}

/// The rows for every partition known to either side, by partition.
///
/// `committed_at` is when `/batches` answered, `ends` what the broker said and when (`None`
/// when the broker does not answer). A partition the processor never committed on waits from
/// the start of its log (the processor reads from the earliest offset).
pub fn rows(
    committed: &[&PartitionLag],
    committed_at: Option<WallTime>,
    ends: Option<&Watermarks>,
) -> Vec<PartitionRow> {
    let mut by_partition: BTreeMap<i32, (Option<i64>, Option<LogEnd>)> = BTreeMap::new();
    for p in committed {
        by_partition.entry(p.partition).or_default().0 = Some(p.next_offset);
    }
    if let Some(w) = ends {
        for (&p, &end) in &w.ends {
            by_partition.entry(p).or_default().1 = Some(end);
        }
    }
    by_partition
        .into_iter()
        .map(|(partition, (committed_offset, end))| {
            let lag = match (committed_offset, end) {
                (_, None) => Lag::Unknown,
                (Some(c), Some(e)) if c <= e.high => Lag::Records(e.high - c),
                (Some(c), Some(e)) => {
                    let read_after = match (ends.map(|w| w.at), committed_at) {
                        (Some(read), Some(committed)) => read > committed,
                        _ => false,
                    };
                    if read_after {
                        Lag::AheadOfLog {
                            committed: c,
                            end: e.high,
                        }
                    } else {
                        Lag::Pending
                    }
                }
                (None, Some(e)) => Lag::Records(e.high - e.low),
            };
            PartitionRow {
                partition,
                committed: committed_offset,
                end: end.map(|e| e.high),
                lag,
            }
        })
        .collect()
}

/// The sum of the rows' lags: `Ok(None)` if one is not known, `Err` naming the first
/// partition whose offset is ahead of its log.
pub fn total(rows: &[PartitionRow]) -> Result<Option<i64>, String> {
    let mut sum = Some(0i64);
    for r in rows {
        if let Some(e) = r.lag.error() {
            return Err(format!("partition {}: {e}", r.partition));
        }
        sum = match (sum, &r.lag) {
            (Some(s), Lag::Records(n)) => Some(s + n),
            _ => None,
        };
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::fixtures::at;

    fn committed(partition: i32, next_offset: i64, stored_end: i64) -> PartitionLag {
        PartitionLag {
            partition,
            next_offset,
            high_watermark: Some(stored_end),
            lag: Some(0),
            ..PartitionLag::default()
        }
    }

    fn ends(secs: u32, marks: &[(i32, i64)]) -> Watermarks {
        Watermarks {
            at: at(secs),
            ends: marks
                .iter()
                .map(|&(p, high)| (p, LogEnd { low: 0, high }))
                .collect(),
        }
    }

    #[test]
    fn lag_is_the_live_end_minus_the_committed_offset_whatever_the_api_stored() {
        // The API's stored watermark says 700 and lag 0; the log has moved on to 931.
        let c = [committed(0, 700, 700), committed(1, 50, 50)];
        let refs: Vec<&PartitionLag> = c.iter().collect();
        let rows = rows(
            &refs,
            Some(at(1)),
            Some(&ends(2, &[(0, 931), (1, 50), (2, 7)])),
        );
        let lags: Vec<Lag> = rows.iter().map(|r| r.lag.clone()).collect();
        assert_eq!(
            lags,
            [Lag::Records(231), Lag::Records(0), Lag::Records(7)],
            "partition 2 has no commit: its whole log waits"
        );
        assert_eq!(rows[2].committed, None);
        assert_eq!(total(&rows), Ok(Some(238)));
    }

    #[test]
    fn an_offset_ahead_of_the_log_is_an_error_not_zero() {
        let c = [committed(0, 940, 940)];
        let refs: Vec<&PartitionLag> = c.iter().collect();
        // The end was read after /batches answered: the offset really is past it.
        let r = rows(&refs, Some(at(1)), Some(&ends(2, &[(0, 931)])));
        assert_eq!(
            r[0].lag,
            Lag::AheadOfLog {
                committed: 940,
                end: 931
            }
        );
        assert_eq!(r[0].lag.cell(), "ahead!");
        assert_eq!(
            total(&r),
            Err("partition 0: committed offset 940 is ahead of the log's end 931".into())
        );
        // Read before: the log may have grown since, so it is not known yet, and not 0.
        let r = rows(&refs, Some(at(3)), Some(&ends(2, &[(0, 931)])));
        assert_eq!(r[0].lag, Lag::Pending);
        assert_eq!(total(&r), Ok(None));
    }

    #[test]
    fn without_the_broker_the_lag_is_unknown() {
        let c = [committed(0, 700, 700)];
        let refs: Vec<&PartitionLag> = c.iter().collect();
        let r = rows(&refs, Some(at(1)), None);
        assert_eq!(r[0].lag, Lag::Unknown);
        assert_eq!(r[0].lag.cell(), "?");
        assert_eq!(total(&r), Ok(None));
    }
}
