//! Summaries of repeated measurements, and how numbers are written.

use std::fmt;
use std::time::Duration;

/// The median, fastest and slowest of a series of runs.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples to summarise");
        samples.sort();
        let n = samples.len();
        let median = if !n.is_multiple_of(2) {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        Stats {
            median,
            min: samples[0],
            max: samples[n - 1],
        }
    }

    /// How many times the floor's median this median is, e.g. `2.4×`.
    pub fn ratio_to(&self, floor: &Stats) -> String {
        ratio(self.median, floor.median)
    }
}

/// `median (min–max)`, all in milliseconds.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}–{})",
            ms(self.median),
            ms_bare(self.min),
            ms_bare(self.max)
        )
    }
}

/// A duration in milliseconds, with precision to suit its size.
pub fn ms(d: Duration) -> String {
    format!("{} ms", ms_bare(d))
}

fn ms_bare(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// The `pct`-th percentile of `samples` (nearest rank): `99.0` is the time
/// 99% of the samples took at most.
pub fn percentile(samples: &[Duration], pct: f64) -> Duration {
    assert!(!samples.is_empty(), "no samples to summarise");
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ratio(value: Duration, floor: Duration) -> String {
    if floor.is_zero() {
        return "–".into();
    }
    format!("{:.1}×", value.as_secs_f64() / floor.as_secs_f64())
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The change from `base` to `value` in percent, e.g. `-14.2%`.
pub fn change(value: u64, base: u64) -> String {
    if base == 0 {
        return "–".into();
    }
    format!(
        "{:+.1}%",
        (value as f64 - base as f64) * 100.0 / base as f64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_series() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect();
        let odd = Stats::of(ms(&[5, 1, 3]));
        assert_eq!(odd.median, Duration::from_millis(3));
        assert_eq!(
            (odd.min, odd.max),
            (Duration::from_millis(1), Duration::from_millis(5))
        );
        assert_eq!(
            Stats::of(ms(&[4, 1, 2, 3])).median,
            Duration::from_micros(2500)
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50.0), Duration::from_millis(100));
        assert_eq!(percentile(&ms, 99.0), Duration::from_millis(198));
        assert_eq!(percentile(&ms[..1], 99.0), Duration::from_millis(1));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(430023), "430,023");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000000), "1,000,000");
        assert_eq!(change(85, 100), "-15.0%");
        assert_eq!(ms(Duration::from_micros(850)), "0.85 ms");
        assert_eq!(ms(Duration::from_micros(14_240)), "14.2 ms");
        assert_eq!(ms(Duration::from_millis(312)), "312 ms");
    }
}
