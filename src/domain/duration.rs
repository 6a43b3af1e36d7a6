//! Human durations as users write them: "30s", "5m", "2h", "7d", "1h30m".

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
}
