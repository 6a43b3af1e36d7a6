//! The last hour as an SVG bar chart: one stacked bar per minute
//! (succeeded below, failed above), a y axis from 0 to a round maximum and
//! minute labels. `app.js` redraws the same bars from `last_hour`, reading
//! the plot's geometry from the `data-plot-*` attributes written here.

use super::parts::at;
use crate::store::dashboard::MinuteBucket;
use maud::{Markup, html};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
/// The plot area inside the drawing (room for the axis labels).
const LEFT: f64 = 40.0;
const RIGHT: f64 = 632.0;
const TOP: f64 = 12.0;
const BASE: f64 = 150.0;

/// The smallest of 1, 2, 5 × 10ⁿ at least `max` (at least 1): the y
/// axis's top (`niceMax` in app.js).
pub fn nice_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= max {
                return top;
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The chart of `buckets` (oldest first).
pub fn last_hour(buckets: &[MinuteBucket]) -> Markup {
    let most = buckets
        .iter()
        .map(|b| b.succeeded + b.failed)
        .max()
        .unwrap_or(0);
    let top = nice_max(most);
    let slot = (RIGHT - LEFT) / buckets.len().max(1) as f64;
    let bar = (slot - 1.0).max(1.0);
    let height = |n: u64| (BASE - TOP) * n as f64 / top as f64;
    let minutes = buckets.len();
    html! {
        svg.chart data-chart="last-hour" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-label="Attempts ended per minute over the last hour: succeeded and failed"
            data-plot-top=(TOP) data-plot-base=(BASE) {
            line.axis x1=(LEFT) y1=(BASE) x2=(RIGHT) y2=(BASE) {}
            line.grid x1=(LEFT) y1=(TOP) x2=(RIGHT) y2=(TOP) {}
            text.label x=(LEFT - 6.0) y=(TOP + 4.0) text-anchor="end" data-axis="max" { (top) }
            text.label x=(LEFT - 6.0) y=(BASE) text-anchor="end" { "0" }
            @for (i, bucket) in buckets.iter().enumerate() {
                @let x = LEFT + slot * i as f64;
                @let ok = height(bucket.succeeded);
                @let bad = height(bucket.failed);
                g data-minute=(i) {
                    title { (bucket_title(bucket)) }
                    rect.ok data-series="succeeded" x=(fmt(x)) width=(fmt(bar))
                        y=(fmt(BASE - ok)) height=(fmt(ok)) {}
                    rect.bad data-series="failed" x=(fmt(x)) width=(fmt(bar))
                        y=(fmt(BASE - ok - bad)) height=(fmt(bad)) {}
                }
            }
            @for back in [60usize, 45, 30, 15, 0] {
                @if minutes >= back {
                    @let x = LEFT + slot * (minutes - back) as f64;
                    text.label x=(fmt(x.min(RIGHT))) y=(BASE + 18.0)
                        text-anchor=(if back == 0 { "end" } else if back == minutes { "start" } else { "middle" }) {
                        @if back == 0 { "now" } @else { "−" (back) " min" }
                    }
                }
            }
        }
        p.legend {
            span.key.ok {} "succeeded " span.key.bad {} "failed (or timed out), per minute"
        }
    }
}

/// A bar's tooltip (`bucketTitle` in app.js).
fn bucket_title(bucket: &MinuteBucket) -> String {
    format!(
        "{}: {} succeeded, {} failed",
        at(bucket.start),
        bucket.succeeded,
        bucket.failed
    )
}

/// A coordinate with two decimals at most.
fn fmt(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_top_is_a_round_number_at_least_the_highest_bar() {
        for (max, top) in [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 5),
            (6, 10),
            (11, 20),
            (99, 100),
            (101, 200),
            (4999, 5000),
        ] {
            assert_eq!(nice_max(max), top, "{max}");
        }
        assert!(nice_max(u64::MAX) >= u64::MAX / 2);
    }

    #[test]
    fn bars_stack_failed_on_succeeded_and_scale_to_the_top() {
        let start = "2026-01-15T13:00:00Z".parse().unwrap();
        let buckets = vec![
            MinuteBucket {
                start,
                succeeded: 3,
                failed: 2,
            },
            MinuteBucket {
                start,
                succeeded: 0,
                failed: 0,
            },
        ];
        let svg = last_hour(&buckets).into_string();
        // Top 5: the first bar fills the plot (3/5 ok, 2/5 failed on top).
        assert!(svg.contains(r#"data-axis="max">5<"#), "{svg}");
        let ok = format!(r#"y="{}" height="{}""#, fmt(BASE - 82.8), fmt(82.8));
        assert!(svg.contains(&ok), "{svg}");
        let bad = format!(r#"y="{}" height="{}""#, fmt(TOP), fmt(55.2));
        assert!(svg.contains(&bad), "{svg}");
        assert!(svg.contains("2026-01-15 13:00:00 UTC: 3 succeeded, 2 failed"));
        assert_eq!(svg.matches("<g data-minute=").count(), 2);
    }
}
