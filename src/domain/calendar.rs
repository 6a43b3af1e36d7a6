//! Calendar events as systemd's `OnCalendar=` writes them (systemd.time(7)),
//! the subset that schedules driven by workers can run: parse, the
//! normalized form (`Display`, as `systemd-analyze calendar` prints it) and
//! the next elapse after a time.
//!
//! The subset: the shorthands (`minutely` … `annually`), and
//! `[WEEKDAYS] [[YYYY-]MM-DD] [HH:MM[:SS]] [UTC|ZONE]` where each number
//! field is `*`, `n`, `a,b`, `a..b`, `a/n` or `a..b/n`. Days counted from
//! the end of a month (`~`), fractional seconds and `@timestamps` are
//! refused by name: systemd timers run them (`--driver systemd`).
//!
//! Pure: no clock; the host's zone is passed in. Named zones are looked up
//! in jiff's time zone database. Daylight saving follows systemd: a local
//! time the clocks skip does not elapse (the search resumes where the clocks
//! jumped to), a local time they repeat elapses once, the first time.
//! `tests/it/calendar.rs` checks all of it against `systemd-analyze`.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};
use std::fmt;

/// Years systemd's calendar accepts.
const MIN_YEAR: u32 = 1970;
const MAX_YEAR: u32 = 2199;
/// Elements of one field's list (systemd's limit is of the same order).
const MAX_ELEMENTS: usize = 240;

/// One parsed calendar event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    /// Bit 0 is Monday; `None`: every day of the week.
    weekdays: Option<u8>,
    year: Field,
    month: Field,
    day: Field,
    hour: Field,
    minute: Field,
    second: Field,
    zone: Zone,
}

/// Where the event's wall-clock times are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The zone of whoever evaluates it (systemd: the host's).
    Local,
    Utc,
    /// An IANA name, e.g. `Europe/Berlin`.
    Named(String),
}

/// A refused calendar expression, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarError {
    pub message: String,
}

impl fmt::Display for CalendarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CalendarError {}

fn refused(message: impl Into<String>) -> CalendarError {
    CalendarError {
        message: message.into(),
    }
}

/// A systemd feature outside the subset, named.
fn unsupported(what: &str) -> CalendarError {
    refused(format!(
        "{what} is not supported by schedules run by workers (use --driver systemd)"
    ))
}

/// One element of a field's list: `start`, `start..stop`, `start/repeat`
/// or `start..stop/repeat` (`repeat` 0: no repetition).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Element {
    start: u32,
    /// `None` sorts first, as systemd's -1 does.
    stop: Option<u32>,
    repeat: u32,
}

impl Element {
    fn single(value: u32) -> Element {
        Element {
            start: value,
            stop: None,
            repeat: 0,
        }
    }
}

/// A field's list; empty means `*`. A seconds field with `0/1` prints `*`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    elements: Vec<Element>,
    /// Which field of a [`Tm`] it is: 0 the year … 5 the second.
    index: usize,
}

impl Field {
    /// The least value at or after `value` that an element gives (systemd's
    /// `find_matching_component`): a repetition's next value may lie past
    /// the field's range; `*` keeps `value`.
    fn next_from(&self, value: i64) -> Option<i64> {
        if self.elements.is_empty() {
            return Some(value);
        }
        self.elements
            .iter()
            .filter_map(|e| {
                let (start, repeat) = (i64::from(e.start), i64::from(e.repeat));
                if start >= value {
                    return Some(start);
                }
                if repeat == 0 {
                    return None;
                }
                let k = start + repeat * (value - start + repeat - 1).div_euclid(repeat);
                e.stop.is_none_or(|stop| k <= i64::from(stop)).then_some(k)
            })
            .min()
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, width: usize, seconds: bool) -> fmt::Result {
        let star_second = [Element {
            start: 0,
            stop: None,
            repeat: 1,
        }];
        // systemd 252 prints `*` for any list of seconds holding 0/1.
        if self.elements.is_empty() || (seconds && self.elements.contains(&star_second[0])) {
            return f.write_str("*");
        }
        for (i, e) in self.elements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{:0width$}", e.start)?;
            if let Some(stop) = e.stop.filter(|&stop| stop > 0) {
                write!(f, "..{stop:0width$}")?;
            }
            if e.repeat > 0 && !(e.stop.is_some_and(|stop| stop > 0) && e.repeat == 1) {
                write!(f, "/{}", e.repeat)?;
            }
        }
        Ok(())
    }
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const WEEKDAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl Calendar {
    /// Parses one expression as `OnCalendar=` takes it.
    pub fn parse(text: &str) -> Result<Calendar, CalendarError> {
        if let Some(bad) = text.chars().find(|c| c.is_control()) {
            return Err(refused(format!(
                "a calendar expression must not contain control characters (found {})",
                bad.escape_default()
            )));
        }
        let (body, zone) = split_zone(text);
        // "Area/City" the database lacks: say so, not "malformed time".
        if let Some((_, word)) = body.rsplit_once(' ').filter(|_| zone == Zone::Local)
            && word.contains('/')
            && word.starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(refused(format!("unknown time zone '{word}'")));
        }
        if body.is_empty() {
            return Err(refused("empty calendar expression"));
        }
        let mut parts = Parts::default();
        if !parts.shorthand(body) {
            let mut rest = parts.weekdays(body)?;
            rest = parts.date(rest)?;
            parts.time(rest)?;
        }
        parts.build(zone)
    }

    /// The zone the expression names, if any.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The first elapse strictly after `after`, read in the expression's
    /// zone or else in `local`; `None` when it never elapses again (systemd
    /// stops at year 2199).
    pub fn next_after(&self, after: Timestamp, local: &TimeZone) -> Option<Timestamp> {
        let zone = match &self.zone {
            Zone::Local => local.clone(),
            Zone::Utc => TimeZone::UTC,
            Zone::Named(name) => TimeZone::get(name).ok()?,
        };
        let whole = Timestamp::from_second(after.as_second()).ok()?;
        let mut from = Tm::of(zone.to_datetime(whole));
        from.s += 1;
        loop {
            let civil = self.find_next(from, &zone)?.civil()?;
            let at = match zone.to_ambiguous_timestamp(civil).offset() {
                AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(civil).ok()?,
                // The clocks repeat it: the first time only.
                AmbiguousOffset::Fold { before, .. } => before.to_timestamp(civil).ok()?,
                // Normalized away by the search: not reached.
                AmbiguousOffset::Gap { after, .. } => after.to_timestamp(civil).ok()?,
            };
            // Never at or before `after` (a base in the second half of a
            // repeated hour would otherwise give the first half's times).
            if at > after {
                return Some(at);
            }
            from = Tm::of(civil);
            from.s += 1;
        }
    }

    /// The first matching wall-clock time from `c` on, found as systemd's
    /// `find_next` does: field by field from the year down, each moved to
    /// its next matching value (a repetition may run past the field's range,
    /// e.g. day 33), then normalized as `mktime` would (days past a month's
    /// end carry into the next, a time the clocks skip moves on by the
    /// jump) and, if normalizing moved it, only the field below the highest
    /// one that changed restarts. That last rule is systemd's and skips
    /// elapses after some carries across a year (`*-1/4` from 31 December
    /// finds 5 January): the workers fire what the timers fire.
    fn find_next(&self, mut c: Tm, zone: &TimeZone) -> Option<Tm> {
        for _ in 0..MAX_SEARCH_STEPS {
            c = c.normalized(zone)?;
            match step(&self.year, c.y, &mut c) {
                Step::Same | Step::Moved => {}
                Step::None => return None,
            }
            if !matches!(c.within(zone), Within::Yes) {
                return None;
            }
            macro_rules! field {
                ($field:ident, $value:expr, $on_none:expr) => {
                    let moved = match step(&self.$field, $value, &mut c) {
                        Step::None => None,
                        found => Some(matches!(found, Step::Moved)),
                    };
                    match moved.map(|_| c.within(zone)) {
                        None | Some(Within::Backward) => {
                            $on_none(&mut c);
                            continue;
                        }
                        Some(Within::Normalized(t)) => {
                            c = t;
                            continue;
                        }
                        Some(Within::Yes) => {}
                    }
                };
            }
            field!(month, c.mo, |c: &mut Tm| *c = Tm {
                y: c.y + 1,
                ..Tm::start()
            });
            field!(day, c.d, |c: &mut Tm| *c = Tm {
                y: c.y,
                mo: c.mo + 1,
                ..Tm::start()
            });
            if let Some(bits) = self.weekdays {
                let weekday = c.civil()?.weekday().to_monday_zero_offset();
                if bits & (1 << weekday) == 0 {
                    c = Tm {
                        d: c.d + 1,
                        h: 0,
                        mi: 0,
                        s: 0,
                        ..c
                    };
                    continue;
                }
            }
            field!(hour, c.h, |c: &mut Tm| *c = Tm {
                d: c.d + 1,
                h: 0,
                mi: 0,
                s: 0,
                ..*c
            });
            field!(minute, c.mi, |c: &mut Tm| *c = Tm {
                h: c.h + 1,
                mi: 0,
                s: 0,
                ..*c
            });
            field!(second, c.s, |c: &mut Tm| *c = Tm {
                mi: c.mi + 1,
                s: 0,
                ..*c
            });
            return Some(c);
        }
        None
    }
}

/// A bound on the search (systemd gives up after 1000 steps; this only
/// guards against a loop).
const MAX_SEARCH_STEPS: usize = 1_000_000;

/// A wall-clock time whose fields may run past their ranges, as C's
/// `struct tm` before `mktime` (month 1–12 when in range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tm {
    y: i64,
    mo: i64,
    d: i64,
    h: i64,
    mi: i64,
    s: i64,
}

/// What normalizing a [`Tm`] found.
enum Within {
    Yes,
    /// It moved forward; the search goes on from here.
    Normalized(Tm),
    /// It would move backward (or out of the years): the field has no
    /// usable value here.
    Backward,
}

/// What moving one field to its next matching value did.
enum Step {
    Same,
    Moved,
    None,
}

/// Moves the field of `c` whose value is `value` to the least value of
/// `field` at or after it (past the range, for a repetition), resetting
/// the fields below when it moved.
fn step(field: &Field, value: i64, c: &mut Tm) -> Step {
    let Some(next) = field.next_from(value) else {
        return Step::None;
    };
    if next == value {
        return Step::Same;
    }
    // Which field: the first whose value this is, from the top.
    let fields = [c.y, c.mo, c.d, c.h, c.mi, c.s];
    let lowest = [1970, 1, 1, 0, 0, 0];
    let index = field.index;
    let mut all = fields;
    all[index] = next;
    all[index + 1..].copy_from_slice(&lowest[index + 1..]);
    let [y, mo, d, h, mi, s] = all;
    *c = Tm { y, mo, d, h, mi, s };
    Step::Moved
}

impl Tm {
    fn start() -> Tm {
        Tm {
            y: 1970,
            mo: 1,
            d: 1,
            h: 0,
            mi: 0,
            s: 0,
        }
    }

    fn of(civil: DateTime) -> Tm {
        Tm {
            y: civil.year().into(),
            mo: civil.month().into(),
            d: civil.day().into(),
            h: civil.hour().into(),
            mi: civil.minute().into(),
            s: civil.second().into(),
        }
    }

    /// The fields as a time, carried as `mktime` carries them (months into
    /// years, then days, hours, minutes and seconds onward), without a zone.
    fn civil(self) -> Option<DateTime> {
        let months = self.y * 12 + self.mo - 1;
        let first = Date::new(
            i16::try_from(months.div_euclid(12)).ok()?,
            (months.rem_euclid(12) + 1) as i8,
            1,
        )
        .ok()?;
        let seconds = (self.d - 1) * 86_400 + self.h * 3600 + self.mi * 60 + self.s;
        first.at(0, 0, 0, 0).checked_add(seconds.seconds()).ok()
    }

    /// As `mktime` would leave it in `zone`: carried, and a time the clocks
    /// skip moved on by the jump.
    fn normalized(self, zone: &TimeZone) -> Option<Tm> {
        let civil = self.civil()?;
        let civil = match zone.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Gap { before, after } => civil
                .checked_add(i64::from(after.seconds() - before.seconds()).seconds())
                .ok()?,
            _ => civil,
        };
        Some(Tm::of(civil))
    }

    /// systemd's `tm_within_bounds`: whether normalizing changes the time;
    /// if it moves forward, the field below the highest one that changed
    /// restarts.
    fn within(self, zone: &TimeZone) -> Within {
        if self.y > i64::from(MAX_YEAR) {
            return Within::Backward;
        }
        let Some(mut t) = self.normalized(zone) else {
            return Within::Backward;
        };
        let before = [self.y, self.mo, self.d, self.h, self.mi, self.s];
        let after = [t.y, t.mo, t.d, t.h, t.mi, t.s];
        let Some(changed) = (0..6).find(|&i| before[i] != after[i]) else {
            return Within::Yes;
        };
        if after[changed] < before[changed] {
            return Within::Backward;
        }
        match changed {
            0 => t.mo = 1,
            1 => t.d = 1,
            2 => t.h = 0,
            3 => t.mi = 0,
            4 => t.s = 0,
            _ => {}
        }
        Within::Normalized(t)
    }
}

impl fmt::Display for Calendar {
    /// systemd's normalized form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(bits) = self.weekdays {
            write_weekdays(f, bits)?;
            f.write_str(" ")?;
        }
        self.year.write(f, 4, false)?;
        f.write_str("-")?;
        self.month.write(f, 2, false)?;
        f.write_str("-")?;
        self.day.write(f, 2, false)?;
        f.write_str(" ")?;
        self.hour.write(f, 2, false)?;
        f.write_str(":")?;
        self.minute.write(f, 2, false)?;
        f.write_str(":")?;
        self.second.write(f, 2, true)?;
        match &self.zone {
            Zone::Local => Ok(()),
            Zone::Utc => f.write_str(" UTC"),
            Zone::Named(name) => write!(f, " {name}"),
        }
    }
}

/// Runs of three or more days as `a..b`, of two as `a,b`.
fn write_weekdays(f: &mut fmt::Formatter<'_>, bits: u8) -> fmt::Result {
    let mut first = true;
    let mut day = 0;
    while day < 7 {
        if bits & (1 << day) == 0 {
            day += 1;
            continue;
        }
        let mut end = day;
        while end + 1 < 7 && bits & (1 << (end + 1)) != 0 {
            end += 1;
        }
        if !first {
            f.write_str(",")?;
        }
        first = false;
        f.write_str(WEEKDAYS[day])?;
        match end - day {
            0 => {}
            1 => write!(f, ",{}", WEEKDAYS[end])?,
            _ => write!(f, "..{}", WEEKDAYS[end])?,
        }
        day = end + 1;
    }
    Ok(())
}

/// The expression without its zone, and the zone: a trailing ` UTC` (any
/// case) or a trailing word that names an IANA zone.
fn split_zone(text: &str) -> (&str, Zone) {
    if text.len() >= 4 && text.is_char_boundary(text.len() - 4) {
        let (body, tail) = text.split_at(text.len() - 4);
        if tail.eq_ignore_ascii_case(" utc") {
            return (body, Zone::Utc);
        }
    }
    if let Some((body, word)) = text.rsplit_once(' ')
        && is_zone_name(word)
    {
        return if word == "UTC" {
            (body, Zone::Utc)
        } else {
            (body, Zone::Named(word.to_owned()))
        };
    }
    (text, Zone::Local)
}

/// Whether `word` names a zone in the time zone database (not a number
/// field or a weekday that happens to be a file name there).
fn is_zone_name(word: &str) -> bool {
    word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
        && TimeZone::get(word).is_ok()
}

/// Fields as parsed, before the defaults and normalization.
#[derive(Default)]
struct Parts {
    weekdays: u8,
    year: Option<Vec<Element>>,
    month: Option<Vec<Element>>,
    day: Option<Vec<Element>>,
    hour: Option<Vec<Element>>,
    minute: Option<Vec<Element>>,
    second: Option<Vec<Element>>,
}

impl Parts {
    fn shorthand(&mut self, text: &str) -> bool {
        let zero = || Some(vec![Element::single(0)]);
        let ones = |values: &[u32]| Some(values.iter().map(|&v| Element::single(v)).collect());
        let shorthand = text.to_ascii_lowercase();
        let (month, day, hour, minute) = match shorthand.as_str() {
            "minutely" => (None, None, None, None),
            "hourly" => (None, None, None, zero()),
            "daily" => (None, None, zero(), zero()),
            "weekly" => {
                self.weekdays = 1;
                (None, None, zero(), zero())
            }
            "monthly" => (None, ones(&[1]), zero(), zero()),
            "quarterly" => (ones(&[1, 4, 7, 10]), ones(&[1]), zero(), zero()),
            "semiannually" | "semi-annually" | "biannually" | "bi-annually" => {
                (ones(&[1, 7]), ones(&[1]), zero(), zero())
            }
            "yearly" | "annually" | "anually" => (ones(&[1]), ones(&[1]), zero(), zero()),
            _ => return false,
        };
        (self.month, self.day, self.hour, self.minute) = (month, day, hour, minute);
        self.second = zero();
        true
    }

    /// `Mon`, `Monday`, lists with `,`, ranges with `..` or `-`; returns
    /// the text after them (and their spaces).
    fn weekdays<'t>(&mut self, text: &'t str) -> Result<&'t str, CalendarError> {
        let mut rest = text;
        let mut range_from: Option<usize> = None;
        let mut first = true;
        loop {
            let Some((day, len)) = weekday_at(rest) else {
                return if first {
                    Ok(rest)
                } else {
                    Err(refused(format!("expected a weekday at \"{rest}\"")))
                };
            };
            if !matches!(
                rest.as_bytes().get(len),
                None | Some(b'-' | b'.' | b',' | b' ')
            ) {
                return Err(refused(format!("unknown weekday in \"{rest}\"")));
            }
            self.weekdays |= 1 << day;
            if let Some(from) = range_from {
                if from > day {
                    return Err(refused("a weekday range must go forward (Mon..Fri)"));
                }
                for between in from..day {
                    self.weekdays |= 1 << between;
                }
            }
            rest = &rest[len..];
            match rest.as_bytes().first() {
                None => return Ok(rest),
                Some(b' ') => return Ok(rest.trim_start_matches(' ')),
                Some(b'.') if rest.starts_with("..") && range_from.is_none() => {
                    range_from = Some(day);
                    rest = &rest[2..];
                }
                Some(b'-') if range_from.is_none() => {
                    range_from = Some(day);
                    rest = &rest[1..];
                }
                Some(b',') => {
                    range_from = None;
                    rest = &rest[1..];
                }
                _ => return Err(refused("malformed weekday range")),
            }
            if rest.is_empty() || rest.starts_with(' ') {
                return if range_from.is_none() {
                    Ok(rest.trim_start_matches(' '))
                } else {
                    Err(refused("a weekday range needs an end"))
                };
            }
            first = false;
        }
    }

    /// `[YYYY-]MM-DD`, or nothing when the text starts with the time;
    /// returns the text after it.
    fn date<'t>(&mut self, text: &'t str) -> Result<&'t str, CalendarError> {
        if text.is_empty() {
            return Ok(text);
        }
        if text.starts_with('@') {
            return Err(unsupported("a timestamp (@SECONDS)"));
        }
        let (first, rest) = list(text, false)?;
        match rest.as_bytes().first() {
            None | Some(b':') => return Ok(text),
            Some(b'~') => return Err(unsupported("'~' (days counted from the end of a month)")),
            Some(b'-') => {}
            _ => return Err(refused(format!("malformed date at \"{rest}\""))),
        }
        let (second, rest) = list(&rest[1..], false)?;
        match rest.as_bytes().first() {
            None | Some(b' ') => {
                (self.month, self.day) = (first, second);
                return Ok(rest.trim_start_matches(' '));
            }
            Some(b'~') => return Err(unsupported("'~' (days counted from the end of a month)")),
            Some(b'-') => {}
            _ => return Err(refused(format!("malformed date at \"{rest}\""))),
        }
        let (third, rest) = list(&rest[1..], false)?;
        if !matches!(rest.as_bytes().first(), None | Some(b' ')) {
            return Err(refused(format!("malformed date at \"{rest}\"")));
        }
        (self.year, self.month, self.day) = (first, second, third);
        Ok(rest.trim_start_matches(' '))
    }

    /// `HH:MM[:SS]`, or nothing (midnight).
    fn time(&mut self, text: &str) -> Result<(), CalendarError> {
        let zero = || Some(vec![Element::single(0)]);
        if text.is_empty() {
            (self.hour, self.minute, self.second) = (zero(), zero(), zero());
            return Ok(());
        }
        let malformed = || refused(format!("malformed time \"{text}\" (expected HH:MM[:SS])"));
        let (hour, rest) = list(text, false)?;
        let rest = rest.strip_prefix(':').ok_or_else(malformed)?;
        let (minute, rest) = list(rest, false)?;
        let second = if rest.is_empty() {
            zero()
        } else {
            let rest = rest.strip_prefix(':').ok_or_else(malformed)?;
            let (second, rest) = list(rest, true)?;
            if !rest.is_empty() {
                return Err(malformed());
            }
            second
        };
        (self.hour, self.minute, self.second) = (hour, minute, second);
        Ok(())
    }

    fn build(self, zone: Zone) -> Result<Calendar, CalendarError> {
        let field = |index: usize, elements: Option<Vec<Element>>, min: u32, max: u32| {
            let name = ["year", "month", "day", "hour", "minute", "second"][index];
            let elements = normalize(elements.unwrap_or_default());
            check(name, &elements, min, max)?;
            Ok::<_, CalendarError>(Field { elements, index })
        };
        let year = self
            .year
            .map(|years| years.into_iter().map(full_year).collect());
        Ok(Calendar {
            weekdays: Some(self.weekdays).filter(|&bits| bits != 0 && bits != 0x7f),
            year: field(0, year, MIN_YEAR, MAX_YEAR)?,
            month: field(1, self.month, 1, 12)?,
            day: field(2, self.day, 1, 31)?,
            hour: field(3, self.hour, 0, 23)?,
            minute: field(4, self.minute, 0, 59)?,
            second: field(5, self.second, 0, 59)?,
            zone,
        })
    }
}

/// The weekday named at the start of `text` (any case) and its length.
fn weekday_at(text: &str) -> Option<(usize, usize)> {
    let starts = |name: &str| {
        text.get(..name.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(name))
    };
    (0..7).find_map(|day| {
        [WEEKDAY_NAMES[day], WEEKDAYS[day]]
            .into_iter()
            .find(|name| starts(name))
            .map(|name| (day, name.len()))
    })
}

/// A field's list: `*` (`None`), or elements separated by `,`. Returns
/// the text after it.
fn list(text: &str, seconds: bool) -> Result<(Option<Vec<Element>>, &str), CalendarError> {
    if let Some(rest) = text.strip_prefix('*') {
        // systemd reads a `*` second as 0/1, a `*` elsewhere as no list.
        let star = seconds.then(|| {
            vec![Element {
                start: 0,
                stop: None,
                repeat: 1,
            }]
        });
        return Ok((star, rest));
    }
    let mut elements = Vec::new();
    let mut rest = text;
    loop {
        let (element, after) = element(rest, seconds)?;
        elements.push(element);
        if elements.len() > MAX_ELEMENTS {
            return Err(refused(format!(
                "more than {MAX_ELEMENTS} values in one field"
            )));
        }
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None => return Ok((Some(elements), after)),
        }
    }
}

/// `n`, `a..b`, `a/n` or `a..b/n`.
fn element(text: &str, seconds: bool) -> Result<(Element, &str), CalendarError> {
    let (start, mut rest) = number(text, seconds)?;
    let mut stop = None;
    let mut repeat = 0;
    if let Some(after) = rest.strip_prefix("..") {
        let (end, after) = number(after, seconds)?;
        (stop, repeat, rest) = (Some(end), 1, after);
    }
    if let Some(after) = rest.strip_prefix('/') {
        let (every, after) = number(after, seconds)?;
        if every == 0 {
            return Err(refused("a repetition (/N) must be at least 1"));
        }
        (repeat, rest) = (every, after);
    } else if seconds && stop.is_some_and(|stop| start + 1 > stop) {
        return Err(refused("a range of seconds must go forward"));
    }
    if !matches!(
        rest.as_bytes().first(),
        None | Some(b' ' | b',' | b'-' | b'~' | b':')
    ) {
        return Err(refused(format!(
            "unexpected \"{}\" in a calendar expression",
            rest.chars().next().unwrap_or(' ')
        )));
    }
    Ok((
        Element {
            start,
            stop,
            repeat,
        },
        rest,
    ))
}

/// A decimal number at the start of `text`.
fn number(text: &str, seconds: bool) -> Result<(u32, &str), CalendarError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(refused(format!(
            "expected a number or '*' at \"{}\"",
            super::echo::shown(text)
        )));
    }
    let (number, rest) = text.split_at(digits);
    if seconds && rest.starts_with('.') && !rest.starts_with("..") {
        return Err(unsupported("a fraction of a second"));
    }
    let value = number
        .parse::<u32>()
        .ok()
        .filter(|&value| value <= i32::MAX as u32)
        .ok_or_else(|| refused(format!("number {number} is too large")))?;
    Ok((value, rest))
}

/// Two-digit years as systemd reads them: 0–69 are 2000–2069, 70–99 are
/// 1970–1999.
fn full_year(mut element: Element) -> Element {
    element.start = two_digit_year(element.start);
    element.stop = element.stop.map(two_digit_year);
    element
}

fn two_digit_year(year: u32) -> u32 {
    match year {
        0..70 => year + 2000,
        70..100 => year + 1900,
        _ => year,
    }
}

/// systemd's normalization: a range ends on a value its repetition
/// reaches; a repetition that never repeats and a range of one value are
/// single values; the list is sorted without repeats.
fn normalize(elements: Vec<Element>) -> Vec<Element> {
    let mut elements: Vec<Element> = elements
        .into_iter()
        .map(|mut e| {
            if let Some(stop) = e.stop
                && stop > e.start
                && e.repeat > 0
            {
                e.stop = Some(stop - (stop - e.start) % e.repeat);
            }
            let never_repeats = e
                .stop
                .is_some_and(|stop| stop > e.start && e.repeat > 0 && e.start + e.repeat > stop);
            if never_repeats || e.stop == Some(e.start) {
                e.repeat = 0;
                e.stop = None;
            }
            e
        })
        .collect();
    elements.sort();
    elements.dedup();
    elements
}

/// systemd's bounds: every value within the field's range, a repetition
/// that fits in it at least once, ranges that go forward.
fn check(name: &str, elements: &[Element], min: u32, max: u32) -> Result<(), CalendarError> {
    for e in elements {
        let out_of_range = |value: u32| {
            refused(format!(
                "{name} {value} is out of range ({min:02}..{max:02})"
            ))
        };
        if e.start < min || e.start > max {
            return Err(out_of_range(e.start));
        }
        if e.repeat > max - min {
            return Err(refused(format!(
                "{name} repetition /{} is too long",
                e.repeat
            )));
        }
        match e.stop {
            Some(stop) if stop < min || stop > max => return Err(out_of_range(stop)),
            Some(stop) if e.start + e.repeat > stop => {
                return Err(refused(format!(
                    "{name} range {}..{stop} must go forward",
                    e.start
                )));
            }
            None if e.start + e.repeat > max => {
                return Err(refused(format!(
                    "{name} {}/{} never repeats within {min:02}..{max:02}",
                    e.start, e.repeat
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_the_database_lacks_is_named() {
        let why = Calendar::parse("12:00 Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(why.contains("unknown time zone 'Mars/Olympus'"), "{why}");
    }

    fn normalized(text: &str) -> String {
        Calendar::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .to_string()
    }

    #[test]
    fn normalized_form() {
        for (text, form) in [
            ("minutely", "*-*-* *:*:00"),
            ("hourly", "*-*-* *:00:00"),
            ("daily", "*-*-* 00:00:00"),
            ("DAILY UTC", "*-*-* 00:00:00 UTC"),
            ("weekly", "Mon *-*-* 00:00:00"),
            ("monthly", "*-*-01 00:00:00"),
            ("quarterly", "*-01,04,07,10-01 00:00:00"),
            ("semiannually", "*-01,07-01 00:00:00"),
            ("yearly", "*-01-01 00:00:00"),
            ("Mon..Fri 2:00", "Mon..Fri *-*-* 02:00:00"),
            (
                "Sat,Sun *-*-* 1,2:3..7/2",
                "Sat,Sun *-*-* 01,02:03..07/2:00",
            ),
            ("*:0/15", "*-*-* *:00/15:00"),
            ("*:*:*", "*-*-* *:*:*"),
            ("monday-wednesday,fri 12:00", "Mon..Wed,Fri *-*-* 12:00:00"),
            ("Mon,Tue", "Mon,Tue *-*-* 00:00:00"),
            ("Mon..Sun", "*-*-* 00:00:00"),
            ("27-3-1 9:05:03", "2027-03-01 09:05:03"),
            ("3-1", "*-03-01 00:00:00"),
            (
                "*-*-* 02:30:00 Europe/Berlin",
                "*-*-* 02:30:00 Europe/Berlin",
            ),
            ("12:00 utc", "*-*-* 12:00:00 UTC"),
            ("*:5,1,5,3", "*-*-* *:01,03,05:00"),
            ("*:1..10/4", "*-*-* *:01..09/4:00"),
            ("*:5..5", "*-*-* *:05:00"),
            ("*:1..3/5", "*-*-* *:01:00"),
            ("*:*:5,0/1", "*-*-* *:*:*"),
            ("*:0,0/1", "*-*-* *:00,00/1:00"),
        ] {
            assert_eq!(normalized(text), form, "{text}");
        }
    }

    #[test]
    fn calendar_accepts_the_subset_and_refuses_the_rest_by_name() {
        for text in [
            "Mon..Fri 02:00",
            "*-*-* *:*:00",
            "2027-*-01 12:00",
            "Tue,Thu *-*-1..7 3:15",
            "*:0/10",
        ] {
            assert!(Calendar::parse(text).is_ok(), "{text}");
        }
        for (text, named) in [
            ("*-*~01", "'~'"),
            ("*-02~1..3", "'~'"),
            ("*:*:1.5", "a fraction of a second"),
            ("@1700000000", "a timestamp"),
        ] {
            let err = Calendar::parse(text).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
            assert!(err.contains("--driver systemd"), "{text}: {err}");
        }
        for text in [
            "",
            "nonsense",
            "Fri..Mon",
            "Mon..",
            "25:00",
            "*:60",
            "*-13-01",
            "*-*-32",
            "2200-01-01",
            "*:50/15",
            "*:*/5",
            "12",
            "*:10..5",
            "daily\n",
            "*:0/0",
            "99999999999:00",
            "12:00 Mars/Olympus",
        ] {
            assert!(Calendar::parse(text).is_err(), "{text:?} should be refused");
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn next_after_table() {
        let utc = TimeZone::UTC;
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        for (expr, zone, after, next) in [
            (
                "*:0/15",
                &utc,
                "2027-01-15T08:14:59Z",
                "2027-01-15T08:15:00Z",
            ),
            (
                "*:0/15",
                &utc,
                "2027-01-15T08:15:00Z",
                "2027-01-15T08:30:00Z",
            ),
            (
                "*:0/15",
                &utc,
                "2027-01-15T08:15:00.5Z",
                "2027-01-15T08:30:00Z",
            ),
            (
                "Mon..Fri 2:00",
                &utc,
                "2027-01-15T03:00:00Z",
                "2027-01-18T02:00:00Z",
            ),
            (
                "*-02-29",
                &utc,
                "2027-01-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
            (
                "*-*-31",
                &utc,
                "2027-04-01T00:00:00Z",
                "2027-05-31T00:00:00Z",
            ),
            (
                "quarterly",
                &utc,
                "2027-12-31T23:59:59Z",
                "2028-01-01T00:00:00Z",
            ),
            (
                "Fri *-*-13",
                &utc,
                "2027-01-01T00:00:00Z",
                "2027-08-13T00:00:00Z",
            ),
            // Local times in Berlin: the zone passed in.
            (
                "daily",
                &berlin,
                "2027-01-01T00:00:00Z",
                "2027-01-01T23:00:00Z",
            ),
            // Spring forward: 02:30 does not exist on 28 March, so it
            // elapses the next day; an hourly :30 skips that hour only.
            (
                "02:30",
                &berlin,
                "2027-03-28T00:00:00Z",
                "2027-03-29T00:30:00Z",
            ),
            (
                "*:30",
                &berlin,
                "2027-03-28T00:30:00Z",
                "2027-03-28T01:30:00Z",
            ),
            // Fall back: 02:30 happens twice on 31 October; it elapses once.
            (
                "02:30",
                &berlin,
                "2027-10-30T23:00:00Z",
                "2027-10-31T00:30:00Z",
            ),
            (
                "02:30",
                &berlin,
                "2027-10-31T00:30:00Z",
                "2027-11-01T01:30:00Z",
            ),
            (
                "*:30",
                &berlin,
                "2027-10-31T00:30:00Z",
                "2027-10-31T02:30:00Z",
            ),
            // The expression's own zone wins over the one passed in.
            (
                "12:00 UTC",
                &berlin,
                "2027-06-01T00:00:00Z",
                "2027-06-01T12:00:00Z",
            ),
            (
                "12:00 Asia/Tokyo",
                &utc,
                "2027-06-01T00:00:00Z",
                "2027-06-01T03:00:00Z",
            ),
        ] {
            let calendar = Calendar::parse(expr).unwrap();
            assert_eq!(
                calendar.next_after(at(after), zone),
                Some(at(next)),
                "{expr} after {after}"
            );
        }
    }

    #[test]
    fn an_event_that_never_comes_has_no_next_elapse() {
        let utc = TimeZone::UTC;
        let never = Calendar::parse("*-02-30").unwrap();
        assert_eq!(never.next_after(at("2027-01-01T00:00:00Z"), &utc), None);
        let past = Calendar::parse("2020-01-01").unwrap();
        assert_eq!(past.next_after(at("2027-01-01T00:00:00Z"), &utc), None);
        let last = Calendar::parse("2199-12-31 23:59:59").unwrap();
        assert_eq!(
            last.next_after(at("2199-12-31T23:59:58Z"), &utc),
            Some(at("2199-12-31T23:59:59Z"))
        );
        assert_eq!(last.next_after(at("2199-12-31T23:59:59Z"), &utc), None);
    }

    proptest::proptest! {
        /// Every elapse matches the expression and none is skipped: the
        /// next elapse after t is never later than the next after t-1s,
        /// unless that one is t itself.
        #[test]
        fn elapses_are_strictly_increasing_and_minimal(second in 0u32..60, minute in 0u32..60, every in 1u32..30, t in 1_800_000_000i64..1_900_000_000) {
            let utc = TimeZone::UTC;
            let calendar = Calendar::parse(&format!("*:{minute}/{every}:{second}")).ok();
            proptest::prop_assume!(calendar.is_some());
            let calendar = calendar.unwrap();
            let base = Timestamp::from_second(t).unwrap();
            let next = calendar.next_after(base, &utc).unwrap();
            proptest::prop_assert!(next > base);
            let civil = utc.to_datetime(next);
            proptest::prop_assert_eq!(civil.second() as u32, second);
            proptest::prop_assert!((civil.minute() as u32) >= minute && (civil.minute() as u32 - minute) % every == 0);
            proptest::prop_assert!(next.as_second() - t <= 3600);
        }
    }
}
