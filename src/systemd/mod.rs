//! The systemd edge: readiness and watchdog notifications, the journal, and
//! driving `systemctl`. Everything here degrades to doing nothing where
//! systemd is absent; nothing here decides what a worker does.

pub mod activation;
pub mod calendar;
pub mod notify;
pub mod systemctl;
pub mod timers;
pub mod units;

/// The systemd service this process runs as (`queuectl-worker@3.service`),
/// from its cgroup; `None` outside a service (systemd sets `INVOCATION_ID`
/// for the processes of a unit it started).
pub fn own_unit() -> Option<String> {
    std::env::var_os("INVOCATION_ID")?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    unit_of_cgroup(cgroups.lines().find_map(|line| line.strip_prefix("0::"))?)
}

fn unit_of_cgroup(path: &str) -> Option<String> {
    path.rsplit('/')
        .find(|part| part.ends_with(".service"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_services_cgroup_names_it() {
        let unit = |path| super::unit_of_cgroup(path);
        assert_eq!(
            unit("/user.slice/user-0.slice/user@0.service/app.slice/queuectl-worker@3.service")
                .as_deref(),
            Some("queuectl-worker@3.service")
        );
        assert_eq!(unit("/user.slice/user-0.slice/session-1.scope"), None);
    }
}
