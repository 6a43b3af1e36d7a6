//! The calendar subset that workers evaluate (`domain::calendar`) against
//! systemd's own: `systemd-analyze calendar --base-time=@T --iterations=5`
//! must accept exactly what the subset accepts, print the same normalized
//! form and the same next five elapses, for fixed expressions and for
//! generated ones, with base times around daylight-saving changes. Skips
//! without `systemd-analyze` unless CI=true.

use crate::support::skip_unless_ci;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use queuectl::domain::calendar::Calendar;
use std::process::Command;

const ITERATIONS: usize = 5;

/// What `systemd-analyze calendar` says about one expression.
#[derive(Debug, PartialEq)]
struct Analysis {
    normalized: String,
    elapses: Vec<Timestamp>,
}

fn have_systemd_analyze() -> bool {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            skip_unless_ci("systemd-analyze is not installed");
            false
        }
    }
}

/// systemd's verdict: `None` when it refuses the expression; `Err` when it
/// parses it but fails to compute an elapse (systemd 252 gives up with
/// EDEADLK on some weekday-and-month expressions in a named zone, e.g.
/// `Mon *-2/7-* *:* America/New_York`, whose next elapse exists).
fn systemd(expr: &str, base: Timestamp, local: &str) -> Result<Option<Analysis>, String> {
    let out = Command::new("systemd-analyze")
        .arg("calendar")
        .arg(format!("--base-time=@{}", base.as_second()))
        .arg(format!("--iterations={ITERATIONS}"))
        .arg("--")
        .arg(expr)
        .env("TZ", format!(":{local}"))
        .env("SYSTEMD_COLORS", "0")
        .output()
        .expect("run systemd-analyze");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("Failed to determine next elapse") {
            return Err(stderr.trim().to_owned());
        }
        return Ok(None);
    }
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let mut normalized = None;
    let mut elapses = Vec::new();
    // In a zone other than UTC each time is followed by its UTC twin.
    let in_utc = local != "UTC";
    for line in text.lines().map(str::trim) {
        if let Some(form) = line.strip_prefix("Normalized form: ") {
            normalized = Some(form.to_owned());
            continue;
        }
        let time = if in_utc {
            line.strip_prefix("(in UTC): ")
        } else {
            line.strip_prefix("Next elapse: ").or_else(|| {
                line.strip_prefix("Iter. #")
                    .and_then(|rest| rest.split_once(": ").map(|(_, time)| time))
            })
        };
        let Some(time) = time.filter(|time| *time != "never") else {
            continue;
        };
        let words: Vec<&str> = time.split_whitespace().collect();
        assert_eq!(words.get(3), Some(&"UTC"), "unexpected line {line:?}");
        let at = format!("{}T{}Z", words[1], words[2]);
        elapses.push(at.parse().unwrap_or_else(|e| panic!("{at}: {e}")));
    }
    Ok(Some(Analysis {
        normalized: normalized.unwrap_or_else(|| panic!("no normalized form in {text}")),
        elapses,
    }))
}

/// The subset's verdict, in the same shape.
fn ours(expr: &str, base: Timestamp, local: &str) -> Option<Analysis> {
    let calendar = Calendar::parse(expr).ok()?;
    let local = TimeZone::get(local).expect("a known zone");
    let mut elapses = Vec::new();
    let mut after = base;
    while elapses.len() < ITERATIONS {
        let Some(next) = calendar.next_after(after, &local) else {
            break;
        };
        elapses.push(next);
        after = next;
    }
    Some(Analysis {
        normalized: calendar.to_string(),
        elapses,
    })
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// Base times: ordinary ones, and an hour or so before each 2027
/// daylight-saving change of the zones used below.
fn bases() -> Vec<Timestamp> {
    [
        "2027-01-15T08:14:59Z",
        "2027-02-28T23:59:59Z",
        "2027-03-14T06:30:00Z", // New York springs forward at 07:00 UTC
        "2027-03-28T00:15:00Z", // Berlin springs forward at 01:00 UTC
        "2027-10-30T23:45:00Z", // Berlin falls back at 01:00 UTC
        "2027-11-07T05:10:00Z", // New York falls back at 06:00 UTC
        "2027-04-03T14:40:00Z", // Lord Howe falls back 30 minutes at 15:00 UTC
        "2027-12-31T23:59:30Z",
        "2027-01-31T23:55:00Z",
    ]
    .iter()
    .map(|text| at(text))
    .collect()
}

const ZONES: [&str; 4] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
];

/// Whether both agree; systemd failing to compute is reported, not
/// compared (the subset must still accept the expression).
fn compare(expr: &str, base: Timestamp, local: &str) -> Result<(), String> {
    let mine = ours(expr, base, local);
    let theirs = match systemd(expr, base, local) {
        Ok(theirs) => theirs,
        Err(why) if mine.is_some() => {
            println!("not compared: {why} (from {base}, TZ={local})");
            return Ok(());
        }
        Err(why) => {
            return Err(format!(
                "{expr:?}: systemd parses it ({why}), the subset does not"
            ));
        }
    };
    if theirs == mine {
        return Ok(());
    }
    Err(format!(
        "{expr:?} from {base} in TZ={local}:\n  systemd: {theirs:?}\n  ours:    {mine:?}"
    ))
}

#[test]
fn next_elapses_match_systemd_analyze() {
    if !have_systemd_analyze() {
        return;
    }
    let fixed = [
        "minutely",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "quarterly",
        "semiannually",
        "yearly",
        "Mon..Fri 02:00",
        "Sat,Sun *-*-* 10:30",
        "monday-wednesday,fri 12:00",
        "*:0/15",
        "*:*:0/10",
        "*-*-* *:*:*",
        "*-*-* 02:30:00",
        "*-*-* 02:30:00 Europe/Berlin",
        "*-*-* 01:30:00 America/New_York",
        "*-*-* *:30 Europe/Berlin",
        "*-*-* 02:15 Australia/Lord_Howe",
        "*-*-* 01:45,02:15 Australia/Lord_Howe",
        "12:00 UTC",
        "Fri *-*-13 09:00",
        "*-02-29 12:00",
        "*-*-31",
        "*-*-1..7 3:15",
        "Tue *-*-1..7 3:15",
        "2027-*-01 12:00",
        "27-12-31 23:59:59",
        "2027..2029-06-15",
        "*-1/2-1",
        "*-*-1/10 00:00",
        "*:1..10/4",
        "*:5,1,5,3",
        "0,12:0:0",
        "2:30,3:10",
        "*-*-* 2,3:30 Europe/Berlin",
        "*-*-* 02:30,03:10 Europe/Berlin",
        "Mon..Sun",
        "*-02-30",
        "2020-01-01",
        "3-1",
        "Fri..Mon",
        "*:50/15",
        "daily utc",
        "12:00 Asia/Kolkata",
        // Carries past a month's or a year's end (systemd restarts only
        // the field below the highest one that changed).
        "*-1/4 *:* UTC",
        "*:0/25",
        "*-*-* 0/5:00",
        "*-*-1/10 22/3:0/50",
    ];
    let mut failures = Vec::new();
    for expr in fixed {
        for (i, base) in bases().into_iter().enumerate() {
            let local = ZONES[i % ZONES.len()];
            if let Err(why) = compare(expr, base, local) {
                failures.push(why);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What systemd runs but the subset refuses, by name.
    for expr in ["*-*~01", "*-02~1..3 12:00", "*:*:1.5", "@1800000000"] {
        let base = bases()[0];
        assert!(
            matches!(systemd(expr, base, "UTC"), Ok(Some(_))),
            "systemd refuses {expr}"
        );
        let err = Calendar::parse(expr).unwrap_err().to_string();
        assert!(err.contains("--driver systemd"), "{expr}: {err}");
    }

    // 300 generated expressions, each from a base time near a
    // daylight-saving change or anywhere in 2027, in one of the zones.
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let base = prop_oneof![
        prop::sample::select(bases()),
        (1_798_761_600i64..1_830_297_600).prop_map(|s| Timestamp::from_second(s).unwrap()),
    ];
    let accepted = std::cell::Cell::new(0);
    runner
        .run(
            &(expression(), base, prop::sample::select(&ZONES[..])),
            |(expr, base, local)| {
                compare(&expr, base, local).map_err(TestCaseError::fail)?;
                accepted.set(accepted.get() + usize::from(Calendar::parse(&expr).is_ok()));
                Ok(())
            },
        )
        .unwrap();
    // Both refusing is agreement too, but most cases must be real ones.
    println!("{} of 300 generated expressions were valid", accepted.get());
    assert!(accepted.get() >= 120, "only {} valid", accepted.get());
}

/// Expressions of the subset's grammar, some out of range on purpose.
fn expression() -> impl Strategy<Value = String> {
    let weekday = prop::sample::select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]);
    let weekdays = prop_oneof![
        Just(String::new()),
        weekday.clone().prop_map(|d| format!("{d} ")),
        (weekday.clone(), weekday.clone()).prop_map(|(a, b)| format!("{a}..{b} ")),
        (weekday.clone(), weekday).prop_map(|(a, b)| format!("{a},{b} ")),
    ];
    let date = prop_oneof![
        Just(String::new()),
        (field(1, 12), field(1, 31)).prop_map(|(m, d)| format!("{m}-{d} ")),
        (field(2026, 2030), field(1, 12), field(1, 31))
            .prop_map(|(y, m, d)| format!("{y}-{m}-{d} ")),
    ];
    let time = prop_oneof![
        (field(0, 23), field(0, 59)).prop_map(|(h, m)| format!("{h}:{m}")),
        (field(0, 23), field(0, 59), field(0, 59)).prop_map(|(h, m, s)| format!("{h}:{m}:{s}")),
    ];
    let zone = prop::sample::select(vec![
        "",
        " UTC",
        " Europe/Berlin",
        " America/New_York",
        " Australia/Lord_Howe",
    ]);
    (weekdays, date, time, zone).prop_map(|(w, d, t, z)| format!("{w}{d}{t}{z}"))
}

/// One number field: `*` or a list of elements, now and then a value
/// just outside `min..=max` or a range that runs backwards.
fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
    let value = move || {
        prop_oneof![
            40 => min..=max,
            1 => Just(min.saturating_sub(1)),
            1 => Just(max + 1),
        ]
    };
    let element = prop_oneof![
        6 => value().prop_map(|v| v.to_string()),
        1 => (value(), value()).prop_map(|(a, b)| format!("{}..{}", a.min(b), a.max(b))),
        1 => (value(), value()).prop_map(|(a, b)| format!("{a}..{b}")),
        1 => (value(), 1u32..4).prop_map(move |(a, n)| format!("{}/{n}", a.min(max - n))),
        1 => (value(), 1u32..8).prop_map(|(a, n)| format!("{a}/{n}")),
        1 => (value(), value(), 1u32..8).prop_map(|(a, b, n)| format!("{}..{}/{n}", a.min(b), a.max(b))),
    ];
    prop_oneof![
        1 => Just("*".to_owned()),
        3 => prop::collection::vec(element, 1..3).prop_map(|elements| elements.join(",")),
    ]
}
