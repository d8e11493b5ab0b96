//! The input rate of each batch (Spark's `inputRowsPerSecond`): how many records arrived on
//! this member's partitions since the previous batch was cut, per second, measured from the
//! partitions' ends as the client last saw them (librdkafka's statistics, every second).

use std::collections::BTreeMap;
use std::time::Instant;

/// The partition ends at the last batch cut, to measure the next batch's rate against.
#[derive(Debug, Default)]
pub struct InputRate {
    base: Option<(Instant, BTreeMap<i32, i64>)>,
}

impl InputRate {
    /// Forgets the base (the assignment changed: other partitions, another rate).
    pub fn reset(&mut self) {
        self.base = None;
    }

    /// Records/s that arrived on `partitions` between the previous call and `now`, given the
    /// partitions' ends now; `None` on the first call, or when no partition's end was known
    /// both times. Makes `now` the base of the next call.
    pub fn measure(
        &mut self,
        now: Instant,
        ends: &BTreeMap<i32, i64>,
        partitions: impl IntoIterator<Item = i32>,
    ) -> Option<f64> {
        let mine: BTreeMap<i32, i64> = partitions
            .into_iter()
            .filter_map(|p| ends.get(&p).map(|&end| (p, end)))
            .collect();
        let previous = self.base.replace((now, mine.clone()));
        let (then, before) = previous?;
        let seconds = now.duration_since(then).as_secs_f64();
        let common: Vec<i64> = mine
            .iter()
            .filter_map(|(p, end)| before.get(p).map(|b| end - b))
            .collect();
        if common.is_empty() || seconds <= 0.0 {
            return None;
        }
        Some(common.iter().sum::<i64>() as f64 / seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_is_what_arrived_since_the_last_cut_per_second() {
        let t0 = Instant::now();
        let mut rate = InputRate::default();
        let ends = BTreeMap::from([(0, 100), (1, 50), (2, 7)]);
        assert_eq!(
            rate.measure(t0, &ends, [0, 1]),
            None,
            "nothing to compare yet"
        );
        let later = BTreeMap::from([(0, 130), (1, 60), (2, 1000)]);
        let r = rate.measure(t0 + Duration::from_secs(2), &later, [0, 1]);
        assert_eq!(r, Some(20.0), "40 records in 2 s; partition 2 is not ours");
        let same = rate.measure(t0 + Duration::from_secs(4), &later, [0, 1]);
        assert_eq!(same, Some(0.0), "nothing arrived");
    }

    #[test]
    fn a_partition_seen_only_once_is_left_out_and_a_reset_starts_over() {
        let t0 = Instant::now();
        let mut rate = InputRate::default();
        rate.measure(t0, &BTreeMap::from([(0, 10)]), [0, 1]);
        let r = rate.measure(
            t0 + Duration::from_secs(1),
            &BTreeMap::from([(0, 15), (1, 900)]),
            [0, 1],
        );
        assert_eq!(r, Some(5.0));
        rate.reset();
        let r = rate.measure(t0 + Duration::from_secs(2), &BTreeMap::from([(0, 20)]), [0]);
        assert_eq!(r, None);
    }
}
