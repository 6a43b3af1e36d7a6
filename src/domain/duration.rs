//! Human durations as users write them: "30s", "5m", "2h", "7d", "1h30m",
//! and as queuectl shows them (the CLI and the dashboard alike).

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// Parses a duration made of one or more `<integer><unit>` parts, where the
/// unit is `s`, `m`, `h` or `d`. A bare integer means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration (expected e.g. \"30s\", \"5m\", \"2h\", \"7d\")".into());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let shown = || super::echo::shown(text);
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "invalid duration \"{}\": unknown unit '{ch}' (use s, m, h or d)",
                    shown()
                ));
            }
        };
        let value: u64 = digits.parse().map_err(|_| {
            format!(
                "invalid duration \"{}\": expected a number before '{ch}'",
                shown()
            )
        })?;
        digits.clear();
        total = value
            .checked_mul(unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("invalid duration \"{}\": too large", shown()))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "invalid duration \"{}\": missing unit after {} (use s, m, h or d)",
            shown(),
            super::echo::shown(&digits)
        ));
    }
    Ok(Duration::from_secs(total))
}

/// "3s ago", "in 5m", for times near now (the same in every zone).
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = t.duration_since(now);
    let text = short_duration(delta.abs());
    if delta.is_negative() {
        format!("{text} ago")
    } else if delta.is_zero() {
        "now".into()
    } else {
        format!("in {text}")
    }
}

pub fn short_duration(d: SignedDuration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// "running 1m12s": how long a running attempt has run so far.
pub fn running_for(started: Timestamp, now: Timestamp) -> String {
    format!("running {}", elapsed(now.duration_since(started)))
}

/// How long something took: milliseconds under a second, else `elapsed`.
pub fn took(d: SignedDuration) -> String {
    if d.as_secs() == 0 {
        format!("{}ms", d.as_millis().max(0))
    } else {
        elapsed(d)
    }
}

/// A duration in its two largest units ("45s", "1m12s", "2h03m", "3d04h"),
/// for clocks that tick while a person looks.
pub fn elapsed(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("7d", 604_800),
            ("1h30m", 5400),
            ("0s", 0),
            ("45", 45),
            (" 10s ", 10),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_sum_of_parts_parses_to_its_total(d in 0u64..1000, h in 0u64..1000, m in 0u64..1000, s in 0u64..1000) {
            let text = format!("{d}d{h}h{m}m{s}s");
            let total = d * 86_400 + h * 3600 + m * 60 + s;
            proptest::prop_assert_eq!(parse_duration(&text), Ok(Duration::from_secs(total)));
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for text in [
            "",
            "s",
            "10x",
            "-5s",
            "1.5h",
            "5m3",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} should be rejected");
        }
    }

    #[test]
    fn elapsed_shows_two_units() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (72, "1m12s"),
            (3599, "59m59s"),
            (3600, "1h00m"),
            (7380, "2h03m"),
            (86_400, "1d00h"),
            (3 * 86_400 + 4 * 3600 + 59, "3d04h"),
            (-5, "0s"),
        ];
        for (secs, text) in cases {
            assert_eq!(elapsed(SignedDuration::from_secs(secs)), text, "{secs}s");
        }
    }

    #[test]
    fn running_for_counts_from_the_start() {
        let start = ts("2026-01-15T13:00:00Z");
        assert_eq!(
            running_for(start, ts("2026-01-15T13:01:12.9Z")),
            "running 1m12s"
        );
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }
}
