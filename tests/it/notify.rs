//! The sd_notify protocol against a fake notify socket (no systemd needed):
//! READY with status, WATCHDOG from the loop, STATUS for the running job,
//! STOPPING and EXTEND_TIMEOUT_USEC on a graceful stop, in that order.

use crate::support::notify::NotifyListener;
use crate::support::{TestEnv, signal, wait_until};
use nix::sys::signal::Signal;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_worker_speaks_sd_notify_in_order() {
    let mut env = TestEnv::new();
    let socket = env.path("notify.sock");
    let messages = NotifyListener::bind(&socket);
    let gate = env.path("gate");
    let worker = env
        .cmd()
        .env("NOTIFY_SOCKET", &socket)
        .env("WATCHDOG_USEC", "200000")
        // WATCHDOG_PID must name the worker itself: set it in the shell it replaces.
        .spawn_with_watchdog_pid(&["worker", "run", "--name", "n1"]);
    let worker = env.adopt(worker);
    wait_until("READY=1", WAIT, || messages.seen("READY=1").is_some());
    let index = messages.seen("READY=1").unwrap();
    let ready = messages.messages()[index].clone();
    assert!(ready.contains("STATUS=idle"), "{ready}");
    wait_until("watchdog pings while idle", WAIT, || messages.pings() >= 3);

    env.enqueue(&format!(
        r#"{{"id":"nj","command":"while [ ! -e {} ]; do sleep 0.02; done"}}"#,
        gate.display()
    ));
    wait_until("status names the running job", WAIT, || {
        messages.seen("STATUS=running nj (attempt 1/4)").is_some()
    });
    let pings_before = messages.pings();
    wait_until("watchdog pings while a job runs", WAIT, || {
        messages.pings() >= pings_before + 3
    });

    signal(worker, Signal::SIGTERM);
    wait_until("STOPPING=1", WAIT, || messages.seen("STOPPING=1").is_some());
    wait_until("EXTEND_TIMEOUT_USEC", WAIT, || {
        messages.seen("EXTEND_TIMEOUT_USEC=").is_some()
    });
    std::fs::write(&gate, "").unwrap();
    assert!(env.wait_worker(worker, WAIT).success());
    let order: Vec<usize> = ["READY=1", "STATUS=running nj", "STOPPING=1"]
        .iter()
        .map(|needle| messages.seen(needle).unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "out of order: {:?}",
        messages.messages()
    );
    assert_eq!(env.state("nj"), "completed");
}

trait SpawnWithWatchdogPid {
    fn spawn_with_watchdog_pid(&mut self, args: &[&str]) -> std::process::Child;
}

impl SpawnWithWatchdogPid for std::process::Command {
    /// Runs the command's program through `sh -c 'WATCHDOG_PID=$$ exec …'`.
    fn spawn_with_watchdog_pid(&mut self, args: &[&str]) -> std::process::Child {
        let program = self.get_program().to_owned();
        let mut words: Vec<String> = vec![program.to_string_lossy().into_owned()];
        words.extend(self.get_args().map(|a| a.to_string_lossy().into_owned()));
        words.extend(args.iter().map(|a| a.to_string()));
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect();
        let mut shell = std::process::Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(format!("export WATCHDOG_PID=$$; exec {}", quoted.join(" ")))
            .envs(
                self.get_envs()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
            )
            .stdin(std::process::Stdio::null());
        for (key, value) in self.get_envs() {
            if value.is_none() {
                shell.env_remove(key);
            }
        }
        shell.spawn().unwrap()
    }
}
