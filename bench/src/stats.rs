//! The arithmetic of a benchmark report: medians and percentiles of samples,
//! ratios against a baseline, and whether a figure meets its target. Pure
//! functions, so they are unit-tested without a clock.

use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The median of `samples` (the mean of the two middle values for an even
/// count); `None` when there are none.
pub fn median(samples: &[f64]) -> Option<f64> {
    let sorted = sorted(samples);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The `p`-th percentile (0–100) by the nearest-rank method: the smallest
/// sample such that at least p % of the samples are at or below it. With few
/// samples a high percentile is simply the maximum.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let sorted = sorted(samples);
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// Durations as milliseconds, the unit every latency is reported in.
pub fn millis(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

/// `figure / baseline`, or `None` when the baseline is zero or unknown.
pub fn ratio(figure: f64, baseline: Option<f64>) -> Option<f64> {
    baseline
        .filter(|b| *b != 0.0 && b.is_finite())
        .map(|b| figure / b)
}

/// What a target constrains: the figure itself or its ratio to the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Figure,
    Ratio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    AtLeast,
    AtMost,
    /// Strictly below (the "< 10 MiB").
    Below,
}

/// A goal from the performance issue, e.g. "ratio ≥ 0.85" or "figure ≤ 5 ms".
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Target {
    pub subject: Subject,
    pub bound: Bound,
    pub value: f64,
}

impl Target {
    pub fn ratio_at_least(value: f64) -> Target {
        Target {
            subject: Subject::Ratio,
            bound: Bound::AtLeast,
            value,
        }
    }

    pub fn ratio_at_most(value: f64) -> Target {
        Target {
            subject: Subject::Ratio,
            bound: Bound::AtMost,
            value,
        }
    }

    pub fn at_least(value: f64) -> Target {
        Target {
            subject: Subject::Figure,
            bound: Bound::AtLeast,
            value,
        }
    }

    pub fn at_most(value: f64) -> Target {
        Target {
            subject: Subject::Figure,
            bound: Bound::AtMost,
            value,
        }
    }

    pub fn below(value: f64) -> Target {
        Target {
            subject: Subject::Figure,
            bound: Bound::Below,
            value,
        }
    }

    /// Whether `figure` (and its `ratio`) meet the target. A ratio target
    /// without a ratio (no baseline) is not met.
    pub fn met(&self, figure: f64, ratio: Option<f64>) -> bool {
        let value = match self.subject {
            Subject::Figure => Some(figure),
            Subject::Ratio => ratio,
        };
        match value {
            Some(v) if v.is_finite() => match self.bound {
                Bound::AtLeast => v >= self.value,
                Bound::AtMost => v <= self.value,
                Bound::Below => v < self.value,
            },
            _ => false,
        }
    }

    /// The target as shown in the table, e.g. `ratio >= 0.85` or `<= 5 ms`.
    pub fn describe(&self, unit: &str) -> String {
        let op = match self.bound {
            Bound::AtLeast => ">=",
            Bound::AtMost => "<=",
            Bound::Below => "<",
        };
        match self.subject {
            Subject::Ratio => format!("ratio {op} {}", trim_number(self.value)),
            Subject::Figure => format!("{op} {} {unit}", trim_number(self.value)),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(""))
    }
}

/// A number with as many decimals as its size deserves: 120000, 812, 4.37,
/// 0.853, 0.0213.
pub fn trim_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    let text = if a >= 100.0 || a == a.trunc() {
        return format!("{x:.0}");
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.4}")
    };
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0), "NaN is ignored");
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).rev().collect();
        assert_eq!(percentile(&samples, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 99.0), Some(99.0));
        assert_eq!(percentile(&samples, 100.0), Some(100.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        // With few samples, p99 is the maximum.
        assert_eq!(percentile(&[5.0, 1.0, 3.0], 99.0), Some(5.0));
        assert_eq!(percentile(&[5.0, 1.0, 3.0], 50.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn ratio_needs_a_usable_baseline() {
        assert_eq!(ratio(850.0, Some(1000.0)), Some(0.85));
        assert_eq!(ratio(1.0, Some(0.0)), None);
        assert_eq!(ratio(1.0, None), None);
        assert_eq!(ratio(1.0, Some(f64::INFINITY)), None);
    }

    #[test]
    fn targets_are_evaluated_on_their_subject() {
        let throughput = Target::ratio_at_least(0.85);
        assert!(throughput.met(1.0, Some(0.85)));
        assert!(!throughput.met(1e9, Some(0.84)));
        assert!(!throughput.met(1.0, None), "no baseline, no verdict");

        let enqueue = Target::ratio_at_most(4.0);
        assert!(enqueue.met(0.0, Some(4.0)));
        assert!(!enqueue.met(0.0, Some(4.01)));

        let batch = Target::at_least(100_000.0);
        assert!(batch.met(100_000.0, None));
        assert!(!batch.met(99_999.0, Some(100.0)));

        let latency = Target::at_most(5.0);
        assert!(latency.met(5.0, None));
        assert!(!latency.met(5.1, None));
        assert!(!latency.met(f64::NAN, None));

        let rss = Target::below(10.0);
        assert!(rss.met(9.99, None));
        assert!(!rss.met(10.0, None));
    }

    #[test]
    fn targets_describe_themselves() {
        assert_eq!(
            Target::ratio_at_least(0.85).describe("jobs/s"),
            "ratio >= 0.85"
        );
        assert_eq!(Target::at_most(5.0).describe("ms"), "<= 5 ms");
        assert_eq!(Target::below(0.5).describe("%"), "< 0.5 %");
        assert_eq!(
            Target::at_least(100_000.0).describe("jobs/s"),
            ">= 100000 jobs/s"
        );
    }

    #[test]
    fn numbers_keep_sensible_precision() {
        assert_eq!(trim_number(123_456.7), "123457");
        assert_eq!(trim_number(12.34), "12.3");
        assert_eq!(trim_number(4.371), "4.37");
        assert_eq!(trim_number(0.8531), "0.853");
        assert_eq!(trim_number(0.00213), "0.0021");
        assert_eq!(trim_number(3.0), "3");
        assert_eq!(trim_number(0.5), "0.5");
        assert_eq!(trim_number(1.50), "1.5");
    }
}
