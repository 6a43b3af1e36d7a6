//! The man pages: one per subcommand, each rendering cleanly, with the
//! reference sections kept true against the code and the CLI itself.

use crate::support::{TestEnv, binary, skip_unless_ci, subcommands};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// A page as a reader sees it (groff, no hyphenation or adjusting), and
/// groff's complaints about it.
fn rendered(page: &Path) -> Option<(String, String)> {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-rLL=200n", "-P-cbou"])
        .arg(page)
        .output();
    match out {
        Ok(out) => Some((
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )),
        Err(_) => {
            skip_unless_ci("groff is not installed: man pages are not rendered");
            None
        }
    }
}

/// The text of one section (up to the next heading) of a rendered page.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no {heading} section in:\n{text}"))
        + heading.len()
        + 1;
    let body = &text[start..];
    let end = body
        .match_indices('\n')
        .find(|(i, _)| body[i + 1..].starts_with(|c: char| c.is_ascii_uppercase()))
        .map_or(body.len(), |(i, _)| i + 1);
    &body[..end]
}

fn write_pages() -> (tempfile::TempDir, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(binary())
        .args(["man", "--dir"])
        .arg(dir.path())
        .env("QUEUECTL_CONFIG", "/nonexistent/config.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let names = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    (dir, names)
}

#[test]
fn every_subcommand_has_a_page_that_renders_cleanly() {
    let paths = subcommands();
    assert!(paths.len() > 20, "{paths:?}");
    let expected: BTreeSet<String> = paths
        .iter()
        .map(|(words, _)| {
            let page: Vec<&str> = std::iter::once("queuectl")
                .chain(words.iter().map(String::as_str))
                .collect();
            format!("{}.1", page.join("-"))
        })
        .collect();
    let (dir, written) = write_pages();
    assert_eq!(written, expected);
    for name in &written {
        let Some((text, warnings)) = rendered(&dir.path().join(name)) else {
            return;
        };
        assert_eq!(warnings, "", "{name}");
        for heading in ["NAME", "SYNOPSIS", "EXIT STATUS", "SEE ALSO"] {
            section(&text, heading);
        }
    }
    let (main, _) = rendered(&dir.path().join("queuectl.1")).unwrap();
    for heading in [
        "JOB FIELDS",
        "CONFIG KEYS",
        "FILES",
        "ENVIRONMENT",
        "EXAMPLES",
    ] {
        section(&main, heading);
    }
    let (set, _) = rendered(&dir.path().join("queuectl-config-set.1")).unwrap();
    section(&set, "CONFIG KEYS");
    // `queuectl man` alone prints the main page.
    let printed = Command::new(binary()).arg("man").output().unwrap();
    assert_eq!(
        printed.stdout,
        std::fs::read(dir.path().join("queuectl.1")).unwrap()
    );
}

#[test]
fn config_keys_are_all_there_with_the_defaults_config_get_prints() {
    let (dir, _) = write_pages();
    let Some((main, _)) = rendered(&dir.path().join("queuectl.1")) else {
        return;
    };
    let keys = section(&main, "CONFIG KEYS");
    let env = TestEnv::with_config("");
    for (key, _) in queuectl::config::KEYS {
        let entry = [format!("\n       {key}\n"), format!("\n       {key} ")]
            .iter()
            .find_map(|tag| keys.split(tag.as_str()).nth(1))
            .unwrap_or_else(|| panic!("{key} is not in CONFIG KEYS:\n{keys}"));
        if key == "db_path" {
            continue;
        }
        let default = env.json(&["config", "get"])[key].to_string();
        let default = default.trim_end_matches(".0");
        let shown = entry.split("[default: ").nth(1).unwrap_or_default();
        assert!(
            shown.starts_with(&format!("{default}]"))
                || shown.starts_with(&format!("{default}.0]")),
            "{key}: config get says {default}, the page: {entry}"
        );
    }
}

#[test]
fn exit_codes_job_fields_and_environment_match_the_program() {
    let (dir, _) = write_pages();
    let Some((main, _)) = rendered(&dir.path().join("queuectl.1")) else {
        return;
    };
    // Every exit code --help documents.
    let help = String::from_utf8(
        Command::new(binary())
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let codes = help.split_once("Exit codes:\n").unwrap().1;
    let status = section(&main, "EXIT STATUS");
    for line in codes.lines() {
        let mut words = line.split_whitespace();
        if let (Some(code), Some(first)) = (words.next(), words.next()) {
            if code.parse::<u8>().is_ok() {
                assert!(
                    status.contains(&format!("{code}      {first}")),
                    "exit code {code} missing:\n{status}"
                );
            }
        }
    }
    // Every field `show --json` prints.
    let env = TestEnv::new();
    env.enqueue(r#"{"id":"j","command":"true","env":{"A":"1"}}"#);
    let fields = section(&main, "JOB FIELDS");
    for key in env.json(&["show", "j"]).as_object().unwrap().keys() {
        assert!(
            fields.contains(&format!("\n       {key}\n"))
                || fields.contains(&format!("\n       {key} ")),
            "job field {key} missing:\n{fields}"
        );
    }
    // Every QUEUECTL_ variable the program reads or sets.
    let environment = section(&main, "ENVIRONMENT");
    let not_variables = [
        "QUEUECTL", // the prefix, in messages
        // Journal fields, not environment variables.
        "QUEUECTL_JOB_ID",
        "QUEUECTL_ATTEMPT",
        "QUEUECTL_STREAM",
        "QUEUECTL_WORKER",
    ];
    for name in queuectl_names_in(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").as_path()) {
        if name.contains("TEST") || name == "QUEUECTL_X" || name == "QUEUECTL_SPAWN_TEST" {
            continue;
        }
        assert!(
            mentions(environment, &name) || not_variables.contains(&name.as_str()),
            "{name} is not in ENVIRONMENT:\n{environment}"
        );
    }
}

/// Whether `text` names `name` as a whole word.
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        !text[i + name.len()..].starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
    })
}

/// Every `QUEUECTL_NAME` in the sources, outside test modules.
fn queuectl_names_in(dir: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            names.extend(queuectl_names_in(&path));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("QUEUECTL_") {
            let name: String = code[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name.trim_end_matches('_').to_owned());
        }
    }
    names
}
