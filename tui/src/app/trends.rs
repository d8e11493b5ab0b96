//! The last minutes as numbers over time, for the sparklines: one [`Sample`] per API poll
//! (about one a second; rounds pushed by the stream closer together than [`MIN_SPACING`] are
//! folded into the next sample) of the records/s arriving on the topic (counted by the tail), the
//! records/s the processor committed (the rows of the batches new since the last poll), the
//! live lag and the duration of the newest batch.

use std::collections::VecDeque;

use super::WallTime;
use crate::model::BatchesResponse;

/// Samples kept: ten minutes at one a poll.
pub const CAPACITY: usize = 600;

/// The least time between two samples, in seconds: the stream pushes a round per batch (many a
/// second when batches are fast), polling one a second; samples stay about a second apart.
pub const MIN_SPACING: f64 = 0.9;

/// One poll's worth. `None` where it is not known (the API or the broker did not answer, or
/// no batch finished since the previous poll, for the duration).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Records/s that arrived on the topic.
    pub input: Option<f64>,
    /// Records/s the processor committed.
    pub processed: Option<f64>,
    pub lag: Option<i64>,
    /// The longest batch that finished since the previous poll, in ms (0: none finished).
    pub batch_ms: Option<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct Trends {
    pub samples: VecDeque<Sample>,
    last_at: Option<WallTime>,
    /// Live records the tail read since the last sample.
    arrived: u64,
    /// The newest batch id already counted.
    last_batch: Option<i64>,
}

impl Trends {
    /// Counts records the tail read live (not its backfill).
    pub(super) fn arrived(&mut self, records: u64) {
        self.arrived += records;
    }

    /// Takes a sample at `at`: `batches` is this poll's answer (`None` if it failed), `lag` the
    /// live lag now, `broker_up` whether the tail's counts are worth anything.
    pub(super) fn sample(
        &mut self,
        at: WallTime,
        batches: Option<&BatchesResponse>,
        lag: Option<i64>,
        broker_up: bool,
    ) {
        let newest = batches.and_then(|b| b.batches.iter().map(|b| b.batch_id).max());
        let Some(last_at) = self.last_at else {
            // The first poll: only a starting point (its batches are history).
            self.last_at = Some(at);
            self.arrived = 0;
            self.last_batch = newest;
            return;
        };
        let secs = (at - last_at).as_seconds_f64();
        if secs < MIN_SPACING {
            // Too soon: what arrived and what was committed count in the next sample.
            return;
        }
        self.last_at = Some(at);
        let arrived = std::mem::take(&mut self.arrived);
        let (processed, batch_ms) = match batches {
            None => (None, None),
            Some(b) => {
                let new: Vec<_> = b
                    .batches
                    .iter()
                    .filter(|b| self.last_batch.is_none_or(|last| b.batch_id > last))
                    .collect();
                let rows: i64 = new.iter().map(|b| b.input_rows).sum();
                let ms = new.iter().map(|b| b.total_ms).fold(0.0, f64::max);
                if let Some(n) = newest {
                    self.last_batch = Some(self.last_batch.map_or(n, |l| l.max(n)));
                }
                (Some(rows as f64 / secs), Some(ms))
            }
        };
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            input: broker_up.then_some(arrived as f64 / secs),
            processed,
            lag,
            batch_ms,
        });
    }

    /// One series of the newest samples folded into at most `cells` cells of `per_cell` samples
    /// each, oldest first, each the mean (or with `max`, the largest) of its known values
    /// (`None` if none is known). Fewer cells while there are fewer samples; the newest sample
    /// is always in the last cell.
    pub fn series(
        &self,
        cells: usize,
        per_cell: usize,
        max: bool,
        value: impl Fn(&Sample) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        let per_cell = per_cell.max(1);
        let wanted = cells * per_cell;
        let skip = self.samples.len().saturating_sub(wanted);
        let recent: Vec<Option<f64>> = self.samples.iter().skip(skip).map(&value).collect();
        let cells = recent.len().div_ceil(per_cell);
        let mut out = vec![None; cells];
        let offset = cells * per_cell - recent.len();
        for (i, v) in recent.iter().enumerate() {
            let cell = (offset + i) / per_cell;
            if let Some(v) = *v {
                out[cell] = Some(match out[cell] {
                    None => (v, 1),
                    Some((acc, n)) if max => (f64::max(acc, v), n),
                    Some((acc, n)) => (acc + v, n + 1),
                });
            }
        }
        out.into_iter()
            .map(|c: Option<(f64, u32)>| {
                c.map(|(acc, n)| if max { acc } else { acc / f64::from(n) })
            })
            .collect()
    }

    /// The mean of the newest `n` known values of a series.
    pub fn recent(&self, n: usize, value: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let known: Vec<f64> = self
            .samples
            .iter()
            .rev()
            .filter_map(value)
            .take(n)
            .collect();
        (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::fixtures::at;
    use crate::model::Batch;

    fn batches(ids: &[(i64, i64, f64)]) -> BatchesResponse {
        BatchesResponse {
            batches: ids
                .iter()
                .rev()
                .map(|&(batch_id, input_rows, total_ms)| Batch {
                    batch_id,
                    input_rows,
                    total_ms,
                    ..Batch::default()
                })
                .collect(),
            ..BatchesResponse::default()
        }
    }

    #[test]
    fn samples_count_what_arrived_and_what_was_committed_since_the_last_poll() {
        let mut t = Trends::default();
        t.arrived(999);
        t.sample(at(0), Some(&batches(&[(1, 500, 9.0)])), Some(0), true);
        assert!(t.samples.is_empty(), "the first poll is only a start");
        t.arrived(400);
        t.sample(
            at(2),
            Some(&batches(&[(1, 500, 9.0), (2, 100, 20.0), (3, 300, 30.0)])),
            Some(5),
            true,
        );
        assert_eq!(
            t.samples[0],
            Sample {
                input: Some(200.0),
                processed: Some(200.0),
                lag: Some(5),
                batch_ms: Some(30.0)
            }
        );
        // The processor stops: nothing new is committed while records keep arriving.
        t.arrived(100);
        t.sample(
            at(3),
            Some(&batches(&[(2, 100, 20.0), (3, 300, 30.0)])),
            Some(105),
            true,
        );
        assert_eq!(
            t.samples[1],
            Sample {
                input: Some(100.0),
                processed: Some(0.0),
                lag: Some(105),
                batch_ms: Some(0.0)
            }
        );
        // The API does not answer: nothing is known of the processor.
        t.sample(at(4), None, None, true);
        assert_eq!(t.samples[2].processed, None);
        assert_eq!(t.samples[2].batch_ms, None);
        assert_eq!(t.samples[2].input, Some(0.0));
        t.sample(at(5), None, None, false);
        assert_eq!(t.samples[3].input, None, "a dead broker is not a rate of 0");
    }

    #[test]
    fn rounds_pushed_closer_than_the_spacing_fold_into_the_next_sample() {
        let mut t = Trends::default();
        t.sample(at(0), Some(&batches(&[(1, 500, 9.0)])), Some(0), true);
        // Two batches pushed within the second: no sample yet, nothing lost.
        let ms = |m: i64| at(0) + chrono::Duration::milliseconds(m);
        t.arrived(60);
        t.sample(
            ms(300),
            Some(&batches(&[(1, 500, 9.0), (2, 40, 5.0)])),
            Some(20),
            true,
        );
        t.arrived(40);
        t.sample(
            ms(600),
            Some(&batches(&[(1, 500, 9.0), (2, 40, 5.0), (3, 60, 7.0)])),
            Some(0),
            true,
        );
        assert!(t.samples.is_empty(), "{:?}", t.samples);
        t.sample(
            at(1),
            Some(&batches(&[(2, 40, 5.0), (3, 60, 7.0)])),
            Some(0),
            true,
        );
        assert_eq!(
            t.samples.iter().copied().collect::<Vec<_>>(),
            [Sample {
                input: Some(100.0),
                processed: Some(100.0),
                lag: Some(0),
                batch_ms: Some(7.0)
            }],
            "one sample for the second, counting both batches and all that arrived"
        );
    }

    #[test]
    fn series_fold_the_newest_samples_into_cells() {
        let mut t = Trends::default();
        for lag in [1, 2, 3, 4, 5] {
            t.samples.push_back(Sample {
                lag: Some(lag),
                ..Sample::default()
            });
        }
        t.samples[3].lag = None;
        let lag = |s: &Sample| s.lag.map(|l| l as f64);
        assert_eq!(
            t.series(4, 2, false, lag),
            [Some(1.0), Some(2.5), Some(5.0)],
            "the newest last, means of the known values"
        );
        assert_eq!(t.series(2, 1, false, lag), [None, Some(5.0)]);
        assert_eq!(t.series(4, 2, true, lag), [Some(1.0), Some(3.0), Some(5.0)]);
        assert_eq!(t.recent(2, lag), Some(4.0));
    }
}
