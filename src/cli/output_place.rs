//! Where an attempt's full output is, seen from the host running the
//! command: here (this host's journal or the job's log file, which `logs`
//! reads), on the host that ran it, or gone (its log file was removed).
//! When it is not here, `show` and `logs` print the tail the queue kept
//! (`attempts.output_tail`) and say where the full output is.

use queuectl::domain::echo::{self, shell_word};
use queuectl::output::{Destination, OUTPUT_TAIL_BYTES};
use queuectl::store::Attempt;
use std::path::PathBuf;

/// What a command needs to place attempts: this host's name and where this
/// host keeps the job's log file.
pub struct Here {
    pub host: String,
    pub log: PathBuf,
}

impl Here {
    pub fn new(log: PathBuf) -> Here {
        Here {
            host: queuectl::worker::hostname(),
            log,
        }
    }

    /// Where `attempt`'s full output is. An attempt recorded without a host
    /// (before hosts were kept) counts as this host's, as it always did.
    pub fn place(&self, attempt: &Attempt) -> Place {
        if let Some(host) = attempt.host.as_deref().filter(|h| *h != self.host) {
            return Place::OtherHost(host.to_owned());
        }
        let printed = attempt
            .output_tail
            .as_deref()
            .is_some_and(|t| !t.is_empty());
        // Not followed if it is a symlink: only its presence matters here.
        let log_exists = std::fs::symlink_metadata(&self.log).is_ok();
        if attempt.output == Destination::File && printed && !log_exists {
            return Place::LogGone;
        }
        Place::Here
    }

    /// `host web1: journalctl QUEUECTL_JOB_ID=<id> QUEUECTL_ATTEMPT=<n>`
    /// for the journal, `host web1: <log path>` for a file.
    pub fn location(&self, job_id: &str, attempt: &Attempt) -> String {
        let host = attempt.host.as_deref().unwrap_or(&self.host);
        let place = match attempt.output {
            Destination::Journal => format!(
                "journalctl QUEUECTL_JOB_ID={} QUEUECTL_ATTEMPT={}",
                shell_word(job_id),
                attempt.number
            ),
            Destination::File => self.log.display().to_string(),
        };
        format!("host {}: {place}", echo::shown(host))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// In this host's journal or log file.
    Here,
    /// On the host that ran the attempt.
    OtherHost(String),
    /// It went to this host's log file, which is gone.
    LogGone,
}

impl Place {
    pub fn is_here(&self) -> bool {
        *self == Place::Here
    }
}

/// Plain notes on an attempt whose output is not here: what the queue
/// kept of it (the tail, which the caller shows after them), and where the
/// full output is. Empty when it is here.
pub fn notes(here: &Here, job_id: &str, attempt: &Attempt) -> Vec<String> {
    let n = attempt.number;
    let kept = format!(
        "the queue keeps the end of its output (up to {} KiB)",
        OUTPUT_TAIL_BYTES / 1024
    );
    let first = match (here.place(attempt), attempt.output_tail.as_deref()) {
        (Place::Here, _) => return vec![],
        (Place::LogGone, _) => {
            return vec![format!(
                "attempt {n}'s log file {} is gone; {kept}",
                here.log.display()
            )];
        }
        (Place::OtherHost(host), _) if attempt.finished_at.is_none() => format!(
            "attempt {n} is running on host {}; the queue keeps the end of its output when it ends",
            echo::shown(&host)
        ),
        (Place::OtherHost(host), Some("")) => {
            return vec![format!(
                "attempt {n} ran on host {} and printed nothing",
                echo::shown(&host)
            )];
        }
        (Place::OtherHost(host), Some(_)) => {
            format!("attempt {n} ran on host {}; {kept}", echo::shown(&host))
        }
        (Place::OtherHost(host), None) => format!(
            "attempt {n} ran on host {}; the queue kept none of its output (it did not end there normally)",
            echo::shown(&host)
        ),
    };
    vec![
        first,
        format!("full output: {}", here.location(job_id, attempt)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use queuectl::store::Attempt;

    fn attempt(host: Option<&str>, output: Destination, tail: Option<&str>) -> Attempt {
        Attempt {
            number: 2,
            worker: "web1/1".into(),
            started_at: jiff::Timestamp::UNIX_EPOCH,
            finished_at: None,
            outcome: None,
            exit_code: None,
            signal: None,
            error: None,
            output,
            output_truncated: false,
            host: host.map(str::to_owned),
            cgroup: None,
            output_tail: tail.map(str::to_owned),
        }
    }

    fn here(log: PathBuf) -> Here {
        Here {
            host: "db1".into(),
            log,
        }
    }

    #[test]
    fn attempts_of_other_hosts_say_where_their_output_is() {
        let dir = tempfile::tempdir().unwrap();
        let here = here(dir.path().join("job.log"));
        let mut journal = attempt(Some("web1"), Destination::Journal, Some("out\n"));
        journal.finished_at = Some(jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(here.place(&journal), Place::OtherHost("web1".into()));
        assert_eq!(
            here.location("job-1", &journal),
            "host web1: journalctl QUEUECTL_JOB_ID=job-1 QUEUECTL_ATTEMPT=2"
        );
        let file = attempt(Some("web1"), Destination::File, Some("out\n"));
        assert_eq!(
            here.location("job-1", &file),
            format!("host web1: {}", dir.path().join("job.log").display())
        );
        let notes = notes(&here, "job-1", &journal);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].starts_with("attempt 2 ran on host web1;"));
        assert!(notes[1].ends_with("journalctl QUEUECTL_JOB_ID=job-1 QUEUECTL_ATTEMPT=2"));
        // A hostile id from a damaged row is quoted; a host name is escaped.
        let odd = attempt(Some("web\n1"), Destination::Journal, None);
        assert_eq!(
            here.location("x'; rm -rf ~", &odd),
            r"host web\n1: journalctl QUEUECTL_JOB_ID='x'\''; rm -rf ~' QUEUECTL_ATTEMPT=2"
        );
    }

    #[test]
    fn this_hosts_attempts_are_here_unless_their_log_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("job.log");
        let here = here(log.clone());
        let printed = attempt(Some("db1"), Destination::File, Some("out\n"));
        assert_eq!(here.place(&printed), Place::LogGone);
        // Printed nothing, or kept no tail: nothing else to show.
        assert!(
            here.place(&attempt(Some("db1"), Destination::File, Some("")))
                .is_here()
        );
        assert!(
            here.place(&attempt(Some("db1"), Destination::File, None))
                .is_here()
        );
        // Journal output is read from the journal.
        assert!(
            here.place(&attempt(Some("db1"), Destination::Journal, Some("x")))
                .is_here()
        );
        // Recorded before hosts were.
        std::fs::write(&log, "out\n").unwrap();
        assert!(here.place(&printed).is_here());
        assert!(
            here.place(&attempt(None, Destination::File, Some("x")))
                .is_here()
        );
        assert!(notes(&here, "job", &printed).is_empty());
    }
}
