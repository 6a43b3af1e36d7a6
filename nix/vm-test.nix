# NixOS VM test: the module with two workers, driven as an administrator and
# as a user of the queue would. Run by `nix flake check` (checks.<system>.vm-test)
# or `nix build .#checks.x86_64-linux.vm-test -L`; needs KVM to be quick.
# Written to the nixpkgs test-driver API; the script is plain Python with no
# Nix interpolation, so ci/nix-check.sh can at least compile it offline.
{ queuectlModule }:
{
  name = "queuectl";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ queuectlModule ];

      services.queuectl = {
        enable = true;
        workers = 2;
        settings = {
          # Job output to the journal, whatever `auto` would pick.
          output = "journal";
          kill_grace_seconds = 5;
          # Two slots per worker: four jobs run at once on two units.
          concurrency = 2;
        };
        # A secret that never enters the queue or the Nix store's config.
        credentials.token = "/etc/queuectl-test/token";
        credentials.job-env = "/etc/queuectl-test/job.env";
        # The dashboard, socket-activated on loopback, behind a token that
        # only root can read (the service gets it as a credential).
        web = {
          enable = true;
          authTokenFile = "/etc/queuectl-test/web-token";
        };
      };

      environment.etc."queuectl-test/token" = {
        text = "s3cr3t-from-credential";
        mode = "0400";
      };
      environment.etc."queuectl-test/web-token" = {
        text = "web-t0ken\n";
        mode = "0400";
      };
      environment.etc."queuectl-test/job.env" = {
        text = "GREETING=hello-from-env-file\n";
        mode = "0400";
      };

      # docs/systemd.md promises jobs can use sudo (no NoNewPrivileges=).
      security.sudo.extraRules = [
        {
          users = [ "queuectl" ];
          commands = [
            {
              command = "ALL";
              options = [ "NOPASSWD" ];
            }
          ];
        }
      ];

      # alice may use the queue; bob may not.
      users.users.alice = {
        isNormalUser = true;
        extraGroups = [ "queuectl" ];
      };
      users.users.bob.isNormalUser = true;

      environment.systemPackages = [
        pkgs.jq
        pkgs.curl
      ];
    };

  testScript = ''
    import json
    import shlex


    def as_user(user: str, command: str) -> str:
        # A login shell, as a person would have: PATH and QUEUECTL_CONFIG
        # come from the system profile.
        return machine.succeed(f"su - {user} -c {shlex.quote(command)}")


    def alice(command: str) -> str:
        return as_user("alice", command)


    def enqueue(job_id: str, command: str, max_retries: int = 3, **fields: str) -> None:
        spec = json.dumps({"id": job_id, "command": command, "max_retries": max_retries, **fields})
        out = alice(f"queuectl enqueue {shlex.quote(spec)}")
        assert job_id in out, f"enqueue printed {out!r}, not the id {job_id}"


    def wait_for_state(job_id: str, state: str) -> None:
        show = shlex.quote(f"queuectl --json show {job_id}")
        want = shlex.quote(".state == " + json.dumps(state))
        machine.wait_until_succeeds(f"su - alice -c {show} | jq -e {want}", timeout=120)


    def job_state(job_id: str) -> str:
        state: str = json.loads(alice(f"queuectl --json show {job_id}"))["state"]
        return state


    def unit_property(unit: str, prop: str) -> str:
        return machine.succeed(f"systemctl show -P {prop} {unit}").strip()


    def wait_stopped(unit: str) -> None:
        # Stopping a target returns before the units it wants have stopped
        # (they are ordered before it), so wait for them to settle.
        machine.wait_until_succeeds(
            f"systemctl show -P ActiveState {unit} | grep -qxE 'inactive|failed'", timeout=60
        )


    workers = ["queuectl-worker@1.service", "queuectl-worker@2.service"]

    machine.wait_for_unit("multi-user.target")

    with subtest("both workers are started by the target and report READY"):
        for unit in workers:
            # Type=notify: the unit is active only once the worker sent READY=1.
            machine.wait_for_unit(unit)
            assert unit_property(unit, "Type") == "notify"
            assert unit_property(unit, "User") == "queuectl"
        machine.succeed("systemctl is-active queuectl-workers.target")
        machine.fail("systemctl is-active queuectl-worker@3.service")

    with subtest("the units are the package's, pointing at the store"):
        fragment = unit_property(workers[0], "FragmentPath")
        assert fragment == "/etc/systemd/system/queuectl-worker@.service", fragment
        machine.succeed(f"readlink -f {fragment} | grep -q '^/nix/store/.*-queuectl-.*/lib/systemd/system/'")
        exec_start = unit_property(workers[0], "ExecStart")
        assert "/nix/store/" in exec_start and "/usr/bin" not in exec_start, exec_start
        dropins = unit_property(workers[0], "DropInPaths")
        assert "queuectl-worker@.service.d/overrides.conf" in dropins, dropins
        machine.succeed("test -e /etc/systemd/user/queuectl-worker@.service")

    with subtest("every man page and the completions are installed"):
        for page in ["queuectl", "queuectl-worker-start", "queuectl-config-set"]:
            machine.succeed(f"ls /run/current-system/sw/share/man/man1/{page}.1*")
        machine.succeed("grep -q QUEUECTL_COMPLETE /run/current-system/sw/share/bash-completion/completions/queuectl*")

    with subtest("config and state directory are shared with the group"):
        machine.succeed("grep -qx 'output = \"journal\"' /etc/queuectl/config.toml")
        out = alice("queuectl config get db_path")
        assert "/var/lib/queuectl/queue.db" in out, out
        owner = machine.succeed("stat -c %U:%G:%a /var/lib/queuectl").strip()
        assert owner == "queuectl:queuectl:2770", owner

    with subtest("a member of the group enqueues jobs and the workers complete them"):
        for n in range(1, 5):
            enqueue(f"job{n}", f"echo hello from job{n}; sleep 1")
        for n in range(1, 5):
            wait_for_state(f"job{n}", "completed")
        alice("queuectl list")
        alice("queuectl status")

    with subtest("each worker runs two jobs at once (settings.concurrency = 2)"):
        for n in range(1, 5):
            enqueue(f"slot{n}", "while [ ! -e /tmp/queuectl-slots-gate ]; do sleep 0.1; done", max_retries=0)
        machine.wait_until_succeeds(
            "su - alice -c 'queuectl status --json' | jq -e '[.workers[] | select(.slots == 2 and (.jobs | length) == 2)] | length == 2'",
            timeout=60,
        )
        status = unit_property(workers[0], "StatusText")
        assert status.startswith("running 2/2: "), status
        machine.succeed("touch /tmp/queuectl-slots-gate")
        for n in range(1, 5):
            wait_for_state(f"slot{n}", "completed")

    with subtest("the database and its WAL files stay group-writable"):
        machine.succeed("test -e /var/lib/queuectl/queue.db")
        machine.succeed("test -z \"$(find /var/lib/queuectl -maxdepth 1 -name 'queue.db*' ! -group queuectl)\"")
        machine.succeed("test -z \"$(find /var/lib/queuectl -maxdepth 1 -name 'queue.db*' ! -perm -g=rw)\"")

    with subtest("jobs use sudo, the host's /tmp and credentials, as docs/systemd.md promises"):
        enqueue("privileged", "/run/wrappers/bin/sudo -n id -u > /tmp/queuectl-sudo-uid")
        enqueue("credential", 'cat "$CREDENTIALS_DIRECTORY/token" > /tmp/queuectl-token')
        enqueue("env-file", 'echo "$GREETING" > /tmp/queuectl-greeting', env_file="job-env")
        wait_for_state("privileged", "completed")
        wait_for_state("credential", "completed")
        wait_for_state("env-file", "completed")
        machine.succeed("grep -qx hello-from-env-file /tmp/queuectl-greeting")
        machine.succeed("grep -qx 0 /tmp/queuectl-sudo-uid")
        machine.succeed("grep -qx s3cr3t-from-credential /tmp/queuectl-token")

    with subtest("QUEUECTL_CONFIG reaches services and non-login shells"):
        out = machine.succeed(
            "systemd-run --wait --pipe --quiet -p User=alice -p Group=queuectl "
            "/run/current-system/sw/bin/queuectl config get db_path"
        )
        assert "/var/lib/queuectl/queue.db" in out, out
        out = machine.succeed("su alice -s /bin/sh -c 'echo $QUEUECTL_CONFIG'")
        assert out.strip() == "/etc/queuectl/config.toml", out

    with subtest("a user outside the group cannot use the queue"):
        machine.fail("su - bob -c 'queuectl list'")

    with subtest("job output is in the journal, by QUEUECTL_JOB_ID"):
        machine.wait_until_succeeds(
            "journalctl --no-pager -o cat QUEUECTL_JOB_ID=job1 | grep -qF 'hello from job1'", timeout=60
        )
        machine.succeed(
            "journalctl --no-pager -o cat SYSLOG_IDENTIFIER=queuectl-job QUEUECTL_JOB_ID=job2"
            " | grep -qF 'hello from job2'"
        )
        machine.succeed("journalctl --no-pager -o json QUEUECTL_JOB_ID=job1 | grep -qF QUEUECTL_ATTEMPT")

    with subtest("a failing job goes to the dead-letter queue"):
        enqueue("doomed", "echo about to fail >&2; exit 3", max_retries=0)
        wait_for_state("doomed", "dead")
        dlq = json.loads(alice("queuectl --json dlq list"))
        assert any(job["id"] == "doomed" for job in dlq), dlq
        machine.wait_until_succeeds(
            "journalctl --no-pager -o cat QUEUECTL_JOB_ID=doomed | grep -qF 'about to fail'", timeout=60
        )

    with subtest("queuectl worker stop/start use the packaged units, /etc stays read-only"):
        as_user("root", "queuectl worker stop")
        for unit in workers:
            wait_stopped(unit)
        as_user("root", "queuectl worker start --count 2 --system")
        for unit in workers:
            machine.wait_for_unit(unit)
        assert unit_property(workers[0], "FragmentPath") == "/etc/systemd/system/queuectl-worker@.service"

    with subtest("stopping the target stops the workers gracefully"):
        enqueue("slow", "sleep 5; echo slow done")
        wait_for_state("slow", "processing")
        machine.succeed("systemctl stop queuectl-workers.target")
        for unit in workers:
            wait_stopped(unit)
            assert unit_property(unit, "ActiveState") == "inactive", unit
            # "timeout" or "signal" here would mean SIGKILL or a crash.
            assert unit_property(unit, "Result") == "success", unit
        # The running job was finished or handed back, not left claimed.
        state = job_state("slow")
        assert state != "processing", f"job 'slow' still {state} after the workers stopped"

    with subtest("the dashboard starts on the first request, sandboxed, behind its token"):
        machine.wait_for_unit("queuectl-web.socket")
        assert unit_property("queuectl-web.service", "ActiveState") == "inactive"
        url = "http://127.0.0.1:9750"
        bearer = "-H 'Authorization: Bearer web-t0ken'"
        # Without the token: 401, and that first connection started the service.
        code = machine.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' {url}/healthz").strip()
        assert code == "401", code
        machine.wait_for_unit("queuectl-web.service")
        assert unit_property("queuectl-web.service", "User") == "queuectl"
        assert unit_property("queuectl-web.service", "ProtectSystem") == "strict"
        out = machine.succeed(f"curl -fsS {bearer} {url}/healthz")
        assert out.strip() == "ok", out
        metrics = machine.succeed(f"curl -fsS {bearer} {url}/metrics")
        assert 'queuectl_jobs{' in metrics and 'state="completed"' in metrics, metrics
        status = json.loads(machine.succeed(f"curl -fsS {bearer} {url}/api/status"))
        assert status, status
        # Read-only by default: actions are refused.
        code = machine.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' {bearer} -X POST -d csrf=x {url}/jobs/doomed/retry"
        ).strip()
        assert code == "403", code

    with subtest("stopping the dashboard exits cleanly; the socket starts it again"):
        machine.succeed("systemctl stop queuectl-web.service")
        assert unit_property("queuectl-web.service", "Result") == "success"
        assert unit_property("queuectl-web.service", "ExecMainStatus") == "0"
        machine.succeed("curl -fsS -H 'Authorization: Bearer web-t0ken' http://127.0.0.1:9750/healthz")
        machine.wait_for_unit("queuectl-web.service")

    with subtest("the target brings the workers back"):
        machine.succeed("systemctl start queuectl-workers.target")
        for unit in workers:
            machine.wait_for_unit(unit)
        wait_for_state("slow", "completed")
  '';
}
