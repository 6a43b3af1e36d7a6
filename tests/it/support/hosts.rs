//! Test hosts: each a network namespace (`ip netns`) plus its own UTS
//! namespace (hostname), joined by a veth pair to a bridge in the root
//! namespace that has a private /24 of its own. A PostgreSQL listening only
//! on [`TestNetwork::bridge_address`] is then reachable from the hosts over
//! TCP on the test network and nowhere else, and [`TestHost::cut_link`]
//! stalls that TCP like a pulled cable.
//!
//! Every name starts with `qtest-` and carries the network's index N (its
//! subnet is 10.213.N.0/24): bridge `qtest-Nbr`, host i's netns `qtest-N-hi`
//! and root-side veth `qtest-Nvi` (`eth0` inside). Indexes are handed out
//! under a lock in /run/queuectl-tests/net, one record file per index naming
//! the owning process, so tests running at once never share a subnet. `Drop`
//! deletes everything (also after a panic); what a killed test left behind is
//! swept by the next [`TestNetwork::new`], which deletes the names of every
//! index whose owner is gone. Processes still running inside a namespace keep
//! it alive without its name: stop them first (declare the network before
//! the `TestEnv` whose workers run in it, so it is dropped after).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const REGISTRY: &str = "/run/queuectl-tests/net";
const PREFIX: &str = "qtest-";

/// A bridge with a private /24 in the root namespace; hosts join it.
pub struct TestNetwork {
    index: u8,
    hosts: Vec<TestHost>,
}

/// One test host (see the module doc). Cheap to clone; the network owns it.
#[derive(Clone, Debug)]
pub struct TestHost {
    name: String,
    netns: String,
    veth: String,
    address: Ipv4Addr,
}

fn bridge_name(index: u8) -> String {
    format!("{PREFIX}{index}br")
}

/// Runs `ip ARGS`, failing the test with ip's words if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// `ip ARGS`' output; empty if it fails.
fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// Why this machine cannot make test hosts, if it cannot.
fn why_no_namespaces() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("test hosts need root for network namespaces".into());
    }
    match Command::new("unshare")
        .args(["--net", "--uts", "--", "ip", "link", "show", "lo"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "cannot make network namespaces (unshare --net ip link): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run unshare: {e}")),
    }
}

/// The `qtest-` names this machine has now: netns names and link names.
fn our_names() -> Vec<String> {
    let netns = ip_output(&["netns", "list"]);
    let links = ip_output(&["-o", "link", "show"]);
    let netns = netns.lines().filter_map(|l| l.split_whitespace().next());
    // "7: qtest-3v0@if2: <BROADCAST,...": the name ends at '@' or ':'.
    let links = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n));
    netns
        .chain(links)
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// The network index in one of our names (`qtest-Nbr`, `qtest-NvI`,
/// `qtest-N-hI`); None for any other name, which is never touched.
fn index_of(name: &str) -> Option<u8> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let (index, kind) = rest.split_at(digits);
    let numbered = |tail: &str| !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit());
    let ours = kind == "br"
        || kind.strip_prefix('v').is_some_and(numbered)
        || kind.strip_prefix("-h").is_some_and(numbered);
    if ours { index.parse().ok() } else { None }
}

/// Deletes every netns and link of network `index`: namespaces first (their
/// `eth0` ends go with them), then root-side veths, then the bridge.
fn delete_network(index: u8) {
    let mut names: Vec<String> = our_names()
        .into_iter()
        .filter(|n| index_of(n) == Some(index))
        .collect();
    names.sort_by_key(|n| (!n.contains("-h"), n.ends_with("br")));
    for name in names {
        let args: &[&str] = if name.contains("-h") {
            &["netns", "delete", &name]
        } else {
            &["link", "delete", &name]
        };
        // It may have gone with its peer already.
        let _ = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// (pid, start time) of this process: who owns an index.
fn owner_of_self() -> String {
    let pid = std::process::id();
    format!("{pid} {}", start_time(pid).unwrap_or_default())
}

/// Field 22 of /proc/PID/stat, which tells a pid's reuse from its owner.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether the owner written in a record still runs.
fn owner_alive(record: &str) -> bool {
    let mut parts = record.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(pid)), Some(Ok(start))) => {
            super::alive(pid as u32) && start_time(pid as u32) == Some(start)
        }
        _ => false,
    }
}

/// Holds the registry's lock while it lives.
struct Registry {
    _lock: nix::fcntl::Flock<File>,
}

impl Registry {
    fn lock() -> Registry {
        std::fs::create_dir_all(REGISTRY).expect("create the test network registry");
        let file = File::create(Path::new(REGISTRY).join("lock")).expect("open registry lock");
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the test network registry");
        Registry { _lock: lock }
    }

    fn record(index: u8) -> PathBuf {
        Path::new(REGISTRY).join(index.to_string())
    }

    /// Deletes the networks of owners that are gone, and any of our names
    /// that no record covers (left when a record was removed early).
    fn sweep(&self) {
        let mut live = vec![];
        for index in 0..=u8::MAX {
            match std::fs::read_to_string(Self::record(index)) {
                Ok(owner) if owner_alive(&owner) => live.push(index),
                Ok(_) => {
                    delete_network(index);
                    let _ = std::fs::remove_file(Self::record(index));
                }
                Err(_) => {}
            }
        }
        let mut orphans: Vec<u8> = our_names()
            .iter()
            .filter_map(|n| index_of(n))
            .filter(|i| !live.contains(i))
            .collect();
        orphans.sort_unstable();
        orphans.dedup();
        orphans.into_iter().for_each(delete_network);
    }

    /// A free index whose subnet no interface of this machine uses, now
    /// recorded as this process's.
    fn claim(&self) -> u8 {
        let addresses = ip_output(&["-o", "-4", "addr", "show"]);
        let index = (0..=u8::MAX)
            .find(|&i| !Self::record(i).exists() && !addresses.contains(&format!(" 10.213.{i}.")))
            .expect("a free test network (all 256 in use?)");
        std::fs::write(Self::record(index), owner_of_self()).expect("write registry record");
        index
    }

    fn release(&self, index: u8) {
        let _ = std::fs::remove_file(Self::record(index));
    }
}

impl TestNetwork {
    /// A new bridge with its own /24, or `None` after printing why this
    /// machine cannot make one (panics instead under CI=true).
    pub fn new() -> Option<TestNetwork> {
        if let Some(why_not) = why_no_namespaces() {
            super::skip_unless_ci(&why_not);
            return None;
        }
        let index = {
            let registry = Registry::lock();
            registry.sweep();
            registry.claim()
        };
        // From here Drop cleans up, also if a step below fails.
        let network = TestNetwork {
            index,
            hosts: vec![],
        };
        let bridge = network.bridge();
        ip(&[
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.bridge_address()),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        Some(network)
    }

    /// The bridge's name in the root namespace.
    pub fn bridge(&self) -> String {
        bridge_name(self.index)
    }

    /// The root namespace's address on the test network (where PostgreSQL
    /// listens for the hosts): 10.213.N.1.
    pub fn bridge_address(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.index, 1)
    }

    /// The network's /24, e.g. `10.213.N.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.213.{}.0/24", self.index)
    }

    pub fn hosts(&self) -> &[TestHost] {
        &self.hosts
    }

    /// A new host with hostname `name` (letters, digits, '-'), its own
    /// address on the network (10.213.N.10 onwards) and loopback, and no
    /// route anywhere else. Returns once its link is up.
    pub fn add_host(&mut self, name: &str) -> TestHost {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-');
        assert!(valid, "bad test host name {name:?}");
        assert!(
            self.hosts.iter().all(|h| h.name != name),
            "test host {name:?} exists already"
        );
        let i = self.hosts.len();
        assert!(i < 200, "too many test hosts");
        let host = TestHost {
            name: name.to_owned(),
            netns: format!("{PREFIX}{}-h{i}", self.index),
            veth: format!("{PREFIX}{}v{i}", self.index),
            address: Ipv4Addr::new(10, 213, self.index, 10 + i as u8),
        };
        self.hosts.push(host.clone());
        let ns = host.netns.as_str();
        ip(&["netns", "add", ns]);
        ip(&[
            "link", "add", &host.veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ip(&["link", "set", &host.veth, "master", &self.bridge(), "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", host.address),
            "dev",
            "eth0",
        ]);
        ip(&["-n", ns, "link", "set", "eth0", "up"]);
        host.wait_link_up();
        host
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        delete_network(self.index);
        Registry::lock().release(self.index);
    }
}

impl TestHost {
    /// The hostname `hostname` prints inside.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address on the test network.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The network namespace's name (for `ip -n` / `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// A command running `program` on this host: inside its network
    /// namespace, in a new UTS namespace whose hostname is the host's name.
    /// The caller adds args, env, stdio; the caller's environment passes
    /// through.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns, "unshare", "--uts", "--"])
            .args(["sh", "-c", r#"hostname "$0" && exec "$@""#, &self.name])
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// `cmd` run on this host instead: its program, args, environment
    /// changes and working directory (not its stdio, nor an `env_clear`), so
    /// `host.inside(&env.cmd().args(["worker", "run"]))` runs a TestEnv's
    /// queuectl there.
    pub fn inside(&self, cmd: &Command) -> Command {
        let mut there = self.command(cmd.get_program());
        there.args(cmd.get_args());
        for (name, value) in cmd.get_envs() {
            match value {
                Some(value) => there.env(name, value),
                None => there.env_remove(name),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            there.current_dir(dir);
        }
        there
    }

    /// Takes the host's link down on the bridge side: its packets go
    /// nowhere, so open TCP connections stall and new ones time out.
    pub fn cut_link(&self) {
        ip(&["link", "set", &self.veth, "down"]);
    }

    /// Brings the link back; returns once it carries packets again.
    pub fn restore_link(&self) {
        ip(&["link", "set", &self.veth, "up"]);
        self.wait_link_up();
    }

    fn wait_link_up(&self) {
        super::wait_until(
            &format!("{}'s link is up", self.name),
            Duration::from_secs(10),
            || ip_output(&["-n", &self.netns, "-o", "link", "show", "eth0"]).contains("LOWER_UP"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::index_of;

    #[test]
    fn only_our_name_shapes_have_an_index() {
        assert_eq!(index_of("qtest-3br"), Some(3));
        assert_eq!(index_of("qtest-12v0"), Some(12));
        assert_eq!(index_of("qtest-255-h17"), Some(255));
        for other in [
            "qtest-3",
            "qtest-3brx",
            "qtest-3v",
            "qtest-3-h",
            "qtest-x-h1",
            "qtest-999br",
            "eth0",
            "qtest-12345-abc.slice",
        ] {
            assert_eq!(index_of(other), None, "{other}");
        }
    }
}
