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
        for heading in [
            "NAME",
            "SYNOPSIS",
            "FILES",
            "ENVIRONMENT",
            "EXIT STATUS",
            "SEE ALSO",
        ] {
            section(&text, heading);
        }
        let command = name.trim_end_matches(".1");
        let top = command.split('-').nth(1).unwrap_or_default();
        if ["enqueue", "add", "edit", "show", "list"].contains(&top) {
            section(&text, "JOB FIELDS");
        }
        if top == "config" {
            section(&text, "CONFIG KEYS");
        }
        let environment = section(&text, "ENVIRONMENT");
        for variable in ["QUEUECTL_DB", "QUEUECTL_CONFIG", "TZ", "VISUAL", "EDITOR"] {
            assert!(
                mentions(environment, variable),
                "{name}: {variable} is not in ENVIRONMENT:\n{environment}"
            );
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
fn man_dir_creates_the_folder_and_names_it_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("x/share/man");
    let out = Command::new(binary())
        .args(["man", "--dir"])
        .arg(&nested)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(nested.join("queuectl.1").is_file());
    assert!(nested.join("queuectl-add.1").is_file());
    // Under a plain file no folder can be made: the message names it.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("man");
    let out = Command::new(binary())
        .args(["man", "--dir"])
        .arg(&under_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("folder {}", under_file.display())),
        "{stderr}"
    );
}

/// The note after the exit codes is a paragraph of its own: in the roff,
/// each `.TP` item is a tag line and one text line, and whatever follows the
/// last item starts a new paragraph; rendered, the note stands apart.
#[test]
fn the_note_after_the_exit_codes_is_its_own_paragraph() {
    let (dir, names) = write_pages();
    for name in &names {
        let roff = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let status = roff
            .split(".SH \"EXIT STATUS\"\n")
            .nth(1)
            .unwrap()
            .split("\n.SH ")
            .next()
            .unwrap();
        let last_item = status.rfind(".TP\n").unwrap();
        let after: Vec<&str> = status[last_item..].lines().skip(3).collect();
        assert!(
            after.first().is_some_and(|line| *line == ".PP"),
            "{name}: after the last exit code:\n{status}"
        );
        assert!(status.contains("cancel, restart"), "{name}:\n{status}");
    }
    let Some((main, _)) = rendered(&dir.path().join("queuectl.1")) else {
        return;
    };
    let status = section(&main, "EXIT STATUS");
    let seven = status.split("\n       7").nth(1).unwrap();
    let (own, rest) = seven.split_once("\n\n").unwrap();
    assert!(!own.contains("cancel, restart"), "{status}");
    assert!(rest.trim_start().starts_with("cancel, restart"), "{status}");
}

/// Exit 3's "no queue" names every command that creates one: add does too.
#[test]
fn exit_three_names_every_command_that_creates_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    let out = Command::new(binary())
        .arg("--db")
        .arg(&db)
        .args(["add", "--", "true"])
        .env("QUEUECTL_CONFIG", "/nonexistent/config.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(db.exists(), "add created the queue");
    let help = String::from_utf8(
        Command::new(binary())
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("(only enqueue, add, schedule add and workers create one)"),
        "{help}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in ["docs/jobs.md", "docs/security.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        assert!(
            text.contains("`enqueue`, `add`, `schedule add` and"),
            "{doc} lists the commands that create a queue without add"
        );
    }
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
