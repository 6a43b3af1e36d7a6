//! Shared printing helpers: JSON, colour (only on a terminal), times, tables.

use jiff::{SignedDuration, Timestamp, Unit};
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

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// A time to the second, as RFC 3339.
pub fn time(t: Timestamp) -> String {
    t.round(Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// "3s ago", "in 5m", for times near now.
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
