//! The PostgreSQL and test-host harness itself (support/postgres.rs,
//! support/hosts.rs): isolation of test databases, hosts with their own
//! hostnames reaching a server over the test network only, a cut link, a
//! server restart, and nothing left behind.

use crate::support::hosts::TestNetwork;
use crate::support::postgres::{PgServer, PrivatePg, servers_can_run};
use crate::support::{output_text as text, wait_until};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn fresh_databases_are_isolated_and_dropped() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let first = server.fresh_database();
    let second = server.fresh_database();
    assert_ne!(first.name(), second.name());
    first.sql("CREATE TABLE jobs (id text); INSERT INTO jobs VALUES ('a')");
    assert_eq!(first.sql("SELECT id FROM jobs"), "a");
    assert_eq!(second.sql("SELECT to_regclass('jobs') IS NULL"), "t");
    assert_eq!(second.sql("SELECT current_database()"), second.name());

    // Dropped even while a connection is still open to it.
    let mut session = server
        .psql(&first.url())
        .args(["-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let name = first.name().to_owned();
    let sessions = format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'");
    wait_until("the session is connected", Duration::from_secs(20), || {
        server.sql("postgres", &sessions) == "1"
    });
    drop(first);
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    assert_eq!(server.sql("postgres", &exists), "0");
    assert!(!session.wait().unwrap().success(), "its session was ended");
}

#[test]
fn tls_modes_and_password_sources_work() {
    let Some(server) = PgServer::shared() else {
        return;
    };
    let db = server.fresh_database();
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!("{}?{}", db.url(), server.tls_query(mode));
        let out = server
            .psql(&url)
            .args([
                "-c",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "t",
            "{mode}: {}",
            text(&out)
        );
    }
    // A client whose clock is hours behind (libfaketime, as in clock-skew
    // tests) still accepts the certificates.
    let url = format!("{}?{}", db.url(), server.tls_query("verify-full"));
    match crate::support::libfaketime() {
        Some(lib) => {
            let mut behind = Command::new(server.psql_path());
            behind.env("LD_PRELOAD", lib).env("FAKETIME", "-3h");
            let out = server
                .psql_in(behind, &url)
                .args(["-c", "SELECT 1"])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "1",
                "{}",
                text(&out)
            );
        }
        None => crate::support::skip_unless_ci("no libfaketime (Debian's faketime package)"),
    }
    // Without the password in the URL: refused, unless PGPASSFILE supplies it
    // (over TCP and over the unix socket).
    let bare = server.url_without_password_to(db.name());
    assert!(
        !bare.contains(
            &std::fs::read_to_string(server.password_file())
                .unwrap()
                .trim()
                .to_owned()
        )
    );
    let refused = server
        .psql(&bare)
        .env_remove("PGPASSFILE")
        .env_remove("PGPASSWORD")
        .env("HOME", "/nonexistent")
        .args(["-w", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    let socket = format!(
        "host={} port={} user={} dbname={}",
        server.socket_dir().display(),
        server.port(),
        server.user(),
        db.name()
    );
    for conninfo in [bare.as_str(), socket.as_str()] {
        let out = server
            .psql(conninfo)
            .env("PGPASSFILE", server.passfile())
            .args(["-w", "-c", "SELECT current_user"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            server.user(),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn three_hosts_have_their_own_hostnames() {
    let Some(mut network) = TestNetwork::new() else {
        return;
    };
    let ours = nix::unistd::gethostname().unwrap();
    for name in ["hostA", "hostB", "hostC"] {
        network.add_host(name);
    }
    for host in network.hosts() {
        let out = host.command("hostname").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            host.name(),
            "{}",
            text(&out)
        );
        // Its own network: loopback and eth0 with its address, nothing else.
        let out = host
            .command("ip")
            .args(["-o", "-4", "addr"])
            .output()
            .unwrap();
        let addrs = String::from_utf8_lossy(&out.stdout);
        assert!(addrs.contains(&format!("{}/24", host.address())), "{addrs}");
        assert_eq!(addrs.lines().count(), 2, "{addrs}");
    }
    assert_eq!(
        nix::unistd::gethostname().unwrap(),
        ours,
        "ours is untouched"
    );

    // The child is the program itself (every wrapper execs), so its pid is
    // the one to kill -9, and it lives in the host's network namespace.
    let mut child = network.hosts()[0]
        .command("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until("the wrappers exec sleep", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let netns_of = |pid: String| std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(netns_of(pid.to_string()), netns_of("self".into()));
    child.kill().unwrap();
    child.wait().unwrap();

    // A TestEnv's queuectl runs on a host with that env's queue and config.
    let env = crate::support::TestEnv::new();
    let out = network.hosts()[2]
        .inside(
            env.cmd()
                .args(["enqueue", r#"{"id":"from-c","command":"true"}"#]),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(env.state("from-c"), "pending");
}

#[test]
fn hosts_reach_postgres_on_the_bridge_only_and_a_cut_link_stalls() {
    let Some(mut network) = TestNetwork::new() else {
        return;
    };
    let Some(pg) = PrivatePg::start(&network.bridge_address().to_string()) else {
        return;
    };
    for name in ["hostA", "hostB", "hostC"] {
        network.add_host(name);
    }
    let db = pg.fresh_database();
    let url = format!("{}?{}", db.url(), pg.tls_query("verify-full"));
    // A generous timeout where the connection must work (a loaded machine),
    // a short one where it must fail (the cut link).
    let client_address = |host: &crate::support::hosts::TestHost, timeout: &str| {
        pg.psql_in(host.command(pg.psql_path()), &url)
            .env("PGCONNECT_TIMEOUT", timeout)
            .args(["-c", "SELECT host(inet_client_addr())"])
            .output()
            .unwrap()
    };
    for host in network.hosts() {
        let out = client_address(host, "20");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            host.address().to_string(),
            "{}: {}",
            host.name(),
            text(&out)
        );
    }
    // Not on this machine's loopback.
    let loopback = format!(
        "postgresql://{}@127.0.0.1:{}/postgres",
        pg.user(),
        pg.port()
    );
    let out = pg
        .psql(&loopback)
        .env("PGCONNECT_TIMEOUT", "2")
        .args(["-w", "-c", "SELECT 1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("refused"),
        "{}",
        text(&out)
    );

    let host = &network.hosts()[1];
    host.cut_link();
    let out = client_address(host, "2");
    assert!(!out.status.success(), "{}", text(&out));
    let other = client_address(&network.hosts()[0], "20");
    assert!(
        other.status.success(),
        "other hosts keep their link: {}",
        text(&other)
    );
    host.restore_link();
    wait_until(
        &format!("{} reaches PostgreSQL again", host.name()),
        Duration::from_secs(30),
        || client_address(host, "5").status.success(),
    );
}

#[test]
fn restart_and_down_up_keep_committed_rows() {
    let Some(pg) = PrivatePg::start("127.0.0.1") else {
        return;
    };
    let db = pg.fresh_database();
    db.sql("CREATE TABLE jobs (id int)");
    for round in 1..=3 {
        db.sql(&format!("INSERT INTO jobs VALUES ({round})"));
        pg.restart();
        assert_eq!(db.sql("SELECT count(*) FROM jobs"), round.to_string());
    }
    // Down for a while: connections are refused until it is up again.
    pg.down();
    let out = db.try_sql("SELECT 1");
    assert!(!out.status.success(), "{}", text(&out));
    pg.up();
    assert_eq!(db.sql("SELECT count(*) FROM jobs"), "3");
}

#[test]
fn a_dropped_private_server_leaves_nothing() {
    let Some(pg) = PrivatePg::start("127.0.0.1") else {
        return;
    };
    let dir = pg.dir().to_owned();
    let pid = postmaster_of(&dir);
    drop(pg);
    assert!(!dir.exists());
    assert!(!crate::support::alive(pid), "postmaster {pid} still runs");
}

/// The names (netns and links) of `network` that exist now.
fn names_of(index_hint: &str) -> Vec<String> {
    let mut names = vec![];
    for args in [&["netns", "list"][..], &["-o", "link", "show"][..]] {
        let out = Command::new("ip").args(args).output().unwrap();
        for word in String::from_utf8_lossy(&out.stdout)
            .split(|c: char| c.is_whitespace() || c == ':' || c == '@')
        {
            if word.starts_with(index_hint) {
                names.push(word.to_owned());
            }
        }
    }
    names
}

#[test]
fn a_dropped_network_leaves_no_netns_or_link() {
    let Some(mut network) = TestNetwork::new() else {
        return;
    };
    network.add_host("one");
    network.add_host("two");
    let bridge = network.bridge();
    let mut expected = vec![bridge.clone()];
    for host in network.hosts() {
        expected.push(host.netns().to_owned());
    }
    let before = names_of(bridge.trim_end_matches("br"));
    for name in &expected {
        assert!(before.contains(name), "{name} in {before:?}");
    }
    let prefix = bridge.trim_end_matches("br").to_owned();
    drop(network);
    let left: Vec<String> = names_of(&prefix)
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Run only by `a_killed_owners_network_is_swept` (as a child process):
/// makes a network with a host, prints its names and waits to be killed.
#[test]
#[ignore = "a helper process for a_killed_owners_network_is_swept"]
fn network_owner_helper() {
    if std::env::var_os("QTEST_NETWORK_OWNER_HELPER").is_none() {
        return;
    }
    let mut network = TestNetwork::new().expect("a network");
    let host = network.add_host("doomed");
    let veth = format!("{}v0", network.bridge().trim_end_matches("br"));
    println!("NAMES {} {} {veth}", network.bridge(), host.netns());
    let mut line = String::new();
    // Parent kills us with SIGKILL: Drop never runs.
    std::io::stdin().read_line(&mut line).unwrap();
    std::process::abort();
}

#[test]
fn a_killed_owners_network_is_swept() {
    if TestNetwork::new().is_none() {
        return;
    }
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "pg_harness::network_owner_helper",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("QTEST_NETWORK_OWNER_HELPER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let names: Vec<String> = BufReader::new(helper.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.strip_prefix("NAMES ").map(str::to_owned))
        .expect("the helper printed its names")
        .split(' ')
        .map(str::to_owned)
        .collect();
    let prefix = names[0].trim_end_matches("br").to_owned();
    let before = names_of(&prefix);
    for name in &names {
        assert!(before.contains(name), "{name} in {before:?}");
    }
    helper.kill().unwrap();
    helper.wait().unwrap();
    // The next network sweeps what the dead owner left (it may take the
    // freed index again, so its own bridge of that name can be back).
    let next = TestNetwork::new().unwrap();
    let left: Vec<String> = names_of(&prefix)
        .into_iter()
        .filter(|n| names.contains(n) && *n != next.bridge())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

const WITH_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/postgres/with-server.sh");

/// The postmaster's pid of the server in `dir` (server.sh's directory).
fn postmaster_of(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn with_server_returns_the_commands_status_and_removes_the_server() {
    if !servers_can_run() {
        return;
    }
    let script = r#"echo "$QUEUECTL_TEST_PG_DIR"
        "$QUEUECTL_TEST_PG_BINDIR/psql" -X -At "$QUEUECTL_TEST_PG" -c 'SELECT 6 + 1' || exit 1
        exit 7"#;
    let out = Command::new("bash")
        .args([WITH_SERVER, "sh", "-c", script])
        .env_remove("QUEUECTL_TEST_PG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[1], "7", "{}", text(&out));
    assert!(!Path::new(lines[0]).exists(), "{} is left", lines[0]);
}

#[test]
fn a_killed_with_server_still_removes_its_server() {
    if !servers_can_run() {
        return;
    }
    // CMD prints the server's directory, then waits for its stdin to close.
    let mut run = Command::new("bash")
        .args([
            WITH_SERVER,
            "sh",
            "-c",
            r#"echo "$QUEUECTL_TEST_PG_DIR"; read -r _"#,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let dir = PathBuf::from(line.trim());
    let postmaster = postmaster_of(&dir);
    run.kill().unwrap(); // SIGKILL: its EXIT trap never runs
    run.wait().unwrap();
    drop(run.stdin.take()); // and CMD ends
    wait_until(
        "the watcher removes the server of the killed with-server.sh",
        Duration::from_secs(20),
        || !dir.exists() && !crate::support::alive(postmaster),
    );
}
