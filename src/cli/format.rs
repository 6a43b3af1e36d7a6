//! Shared printing helpers: JSON, colour (only on a terminal), times, tables.

use jiff::tz::TimeZone;
use jiff::{Timestamp, Unit};
use queuectl::domain::JobState;
use queuectl::error::{Error, Result};
use serde::Serialize;
use std::io::Write;

pub fn print_json(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| Error::io("cannot write JSON", e.into()))?;
    writeln!(out).map_err(|e| Error::io("cannot write output", e))
}

#[derive(Clone, Copy, Debug)]
pub struct Painter {
    pub enabled: bool,
}

impl Painter {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// A state name padded to `width`, coloured by how it is doing.
    pub fn state(&self, state: JobState, width: usize) -> String {
        let text = format!("{:<width$}", state.as_str());
        let code = match state {
            JobState::Completed => "32",
            JobState::Failed => "33",
            JobState::Dead => "31",
            JobState::Processing => "36",
            JobState::Pending | JobState::Cancelled => return text,
        };
        self.paint(code, &text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// How times read: in the display zone (`$TZ` or the system's, or UTC with
/// `--utc`), to the second. JSON is not printed through this: it stays
/// RFC 3339 UTC for scripts.
#[derive(Clone, Debug)]
pub struct Times {
    zone: TimeZone,
}

impl Times {
    /// The zone people see: UTC when asked, else `$TZ`, else the system's.
    pub fn new(utc: bool) -> Times {
        let zone = if utc {
            TimeZone::UTC
        } else {
            // An unusable $TZ falls back to the system's zone (else
            // Etc/Unknown, read as UTC); every time printed names its zone,
            // so the fallback shows.
            TimeZone::system()
        };
        Times { zone }
    }

    /// "2026-03-01 14:05:09 CET": a time to the second, with its zone.
    pub fn at(&self, t: Timestamp) -> String {
        let t = t.round(Unit::Second).unwrap_or(t);
        t.to_zoned(self.zone.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }
}

pub use queuectl::domain::duration::{elapsed, relative, running_for, took};

/// A table as lines, header first: every column as wide as its widest cell
/// (header included), two spaces apart, the `right` ones aligned right
/// (numbers), the last one unpadded. Cells are plain text: colour codes
/// would count in the widths.
pub fn table<const N: usize>(
    header: [&str; N],
    right: [bool; N],
    rows: &[[String; N]],
) -> (String, Vec<String>) {
    let widths: [usize; N] = std::array::from_fn(|col| {
        rows.iter()
            .map(|row| row[col].chars().count())
            .chain([header[col].chars().count()])
            .max()
            .unwrap_or(0)
    });
    let line = |cells: [&str; N]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((cell, width), right)| {
                if right {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let lines = rows
        .iter()
        .map(|row| line(row.each_ref().map(String::as_str)))
        .collect();
    (line(header), lines)
}

/// Cuts `text` to `width` characters on one line.
pub fn clip(text: &str, width: usize) -> String {
    let line = text.replace(['\n', '\r', '\t'], " ");
    if line.chars().count() <= width {
        line
    } else {
        let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn times_read_in_the_display_zone_to_the_second() {
        let t = at("2026-01-15T13:05:09.600Z");
        let utc = Times {
            zone: TimeZone::UTC,
        };
        assert_eq!(utc.at(t), "2026-01-15 13:05:10 UTC");
        let paris = Times {
            zone: TimeZone::get("Europe/Paris").unwrap(),
        };
        assert_eq!(paris.at(t), "2026-01-15 14:05:10 CET");
        // Summer time is the zone's, not a fixed offset.
        assert_eq!(
            paris.at(at("2026-07-15T13:05:09Z")),
            "2026-07-15 15:05:09 CEST"
        );
    }

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            ["a".to_owned(), "7".to_owned(), "x".to_owned()],
            [
                "longer-name".to_owned(),
                "1234".to_owned(),
                "last".to_owned(),
            ],
        ];
        let (header, lines) = table(["NAME", "N", "NOTE"], [false, true, false], &rows);
        assert_eq!(header, "NAME            N  NOTE");
        assert_eq!(lines, ["a               7  x", "longer-name  1234  last"]);
    }
}
