# NixOS VM test: many hosts, one queue in PostgreSQL. Node `db` runs the
# server (database.createLocally) and two workers that reach it over the unix
# socket with peer authentication; node `worker` runs two workers that reach
# it over TCP with a password from database.passwordFile. Run by `nix flake
# check` (checks.<system>.vm-test-postgresql) or
# `nix build .#checks.x86_64-linux.vm-test-postgresql -L`.
# The script interpolates only plain strings, so ci/nix-check.sh can compile
# it offline.
{ queuectlModule }:
let
  # Test only: a real password never belongs in the Nix store.
  password = "vm-test-db-password";
  passwordFile = "/etc/queuectl-test/db-password";
  workerUnits = [
    "queuectl-worker@1.service"
    "queuectl-worker@2.service"
  ];
in
{
  name = "queuectl-postgresql";

  nodes.db =
    {
      config,
      nodes,
      pkgs,
      ...
    }:
    {
      imports = [ queuectlModule ];

      services.queuectl = {
        enable = true;
        workers = 2;
        database.createLocally = true;
        settings.output = "journal";
      };

      # The workers of other hosts: the same role, with a password, over TCP
      # from node `worker` only, by either address family (/etc/hosts names
      # both, so either may be used).
      services.postgresql = {
        enableTCPIP = true;
        authentication = ''
          host queuectl queuectl ${nodes.worker.networking.primaryIPAddress}/32 scram-sha-256
          host queuectl queuectl ${nodes.worker.networking.primaryIPv6Address}/128 scram-sha-256
        '';
      };
      networking.firewall.allowedTCPPorts = [ config.services.postgresql.settings.port ];

      systemd.services.queuectl-test-role-password = {
        description = "Password of the queuectl role for the other host's workers";
        wantedBy = [ "multi-user.target" ];
        requires = [ "postgresql.target" ];
        after = [ "postgresql.target" ];
        path = [ config.services.postgresql.package ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          User = "postgres";
        };
        script = ''
          psql -v ON_ERROR_STOP=1 -d postgres -c "ALTER ROLE queuectl PASSWORD '${password}'"
        '';
      };

      # alice may use the queue (the group, through the ident map); bob may not.
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

  nodes.worker =
    { pkgs, ... }:
    {
      imports = [ queuectlModule ];

      services.queuectl = {
        enable = true;
        workers = 2;
        # No TLS on the test network.
        database.url = "postgresql://queuectl@db/queuectl?sslmode=disable";
        database.passwordFile = passwordFile;
        settings.output = "journal";
        # The dashboard and /metrics for the whole shared queue, reachable
        # from `db` through the firewall, behind a token.
        web = {
          enable = true;
          listen = "0.0.0.0:9750";
          openFirewall = true;
          authTokenFile = "/etc/queuectl-test/web-token";
        };
      };

      environment.etc."queuectl-test/db-password" = {
        text = password;
        mode = "0400";
      };
      environment.etc."queuectl-test/web-token" = {
        text = "web-t0ken";
        mode = "0400";
      };

      environment.systemPackages = [ pkgs.jq ];
    };

  testScript = ''
    import json
    import shlex

    password = "${password}"
    worker_units = ${builtins.toJSON workerUnits}
    jobs = [f"job{n}" for n in range(1, 13)]


    def cli(machine, command: str) -> str:
        # A root login shell, as an administrator has: QUEUECTL_CONFIG (and,
        # on `worker`, QUEUECTL_DB_PASSWORD_FILE) come from the system profile.
        return machine.succeed(f"su - root -c {shlex.quote(command)}")


    def unit_property(machine, unit: str, prop: str) -> str:
        return machine.succeed(f"systemctl show -P {prop} {unit}").strip()


    def attempt_hosts(machine, job_id: str) -> set[str]:
        shown = json.loads(cli(machine, f"queuectl --json show {job_id}"))
        return {attempt["host"] for attempt in shown["attempt_history"]}


    def worker_host(row: dict) -> str:
        # Worker names are host-qualified ("db/1"); rows may carry the host too.
        return row.get("host") or row["name"].partition("/")[0]


    db.start()
    db.wait_for_unit("postgresql.target")
    db.wait_for_unit("queuectl-test-role-password.service")

    with subtest("db: the module created the database, owned by the workers' role"):
        owner = db.succeed(
            "runuser -u postgres -- psql -tA -d postgres -c "
            "\"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'queuectl'\""
        ).strip()
        assert owner == "queuectl", owner
        db.succeed("grep -qxF 'db_path = \"postgresql:///queuectl?host=/run/postgresql&user=queuectl\"' /etc/queuectl/config.toml")

    with subtest("db: workers are READY over the unix socket, after postgresql.target"):
        for unit in worker_units:
            db.wait_for_unit(unit)
            assert "postgresql.target" in unit_property(db, unit, "After").split()
            assert "postgresql.target" in unit_property(db, unit, "Requires").split()

    # Only now: the role has its password, so the remote workers' first
    # connection succeeds.
    worker.start()

    with subtest("worker: workers are READY over TCP, with the password as a credential"):
        for unit in worker_units:
            worker.wait_for_unit(unit)
            assert "network-online.target" in unit_property(worker, unit, "After").split()
            load = unit_property(worker, unit, "LoadCredential")
            assert "db-password" in load and "${passwordFile}" in load, load
            assert "QUEUECTL_DB_PASSWORD_FILE=db-password" in unit_property(worker, unit, "Environment")

    with subtest("worker: the password is in neither the config nor the unit"):
        # -R: /etc/queuectl/config.toml is a symlink into the store.
        worker.fail(f"grep -RqF {password} /etc/queuectl")
        worker.fail(f"systemctl cat {worker_units[0]} | grep -qF {password}")
        worker.succeed("grep -qxF 'db_path = \"postgresql://queuectl@db/queuectl?sslmode=disable\"' /etc/queuectl/config.toml")

    with subtest("jobs enqueued on worker run on the workers of both hosts"):
        # Each job outlasts a claim round, so every idle worker (two per
        # host, all READY) takes one of the first four.
        for job_id in jobs:
            spec = json.dumps({"id": job_id, "command": f"echo {job_id}; sleep 2"})
            out = cli(worker, f"queuectl enqueue {shlex.quote(spec)}")
            assert job_id in out, out
        all_completed = f'length == {len(jobs)} and all(.state == "completed")'
        worker.wait_until_succeeds(
            f"su - root -c 'queuectl --json list' | jq -e {shlex.quote(all_completed)}", timeout=180
        )
        hosts: set[str] = set()
        for job_id in jobs:
            # Read from the other host than the one that enqueued.
            hosts |= attempt_hosts(db, job_id)
        assert hosts == {"db", "worker"}, f"jobs ran on {hosts}, not on both hosts"

    with subtest("status on one host lists the workers of both"):
        status = json.loads(cli(db, "queuectl --json status"))
        # Registered workers (with a heartbeat), not this host's idle units.
        registered = [row for row in status["workers"] if row.get("heartbeat_at")]
        listed = sorted(worker_host(row) for row in registered)
        assert listed == ["db", "db", "worker", "worker"], status["workers"]
        text = cli(worker, "queuectl status")
        assert "db/" in text and "worker/" in text, text

    with subtest("worker's dashboard serves the shared queue's metrics to db, with the token"):
        url = "http://worker:9750/metrics"
        db.fail(f"curl -fsS {url}")
        metrics = db.succeed(f"curl -fsS -H 'Authorization: Bearer web-t0ken' {url}")
        assert 'queuectl_jobs{' in metrics and 'state="completed"' in metrics, metrics
        worker.wait_for_unit("queuectl-web.service")
        assert "db-password" in unit_property(worker, "queuectl-web.service", "LoadCredential")

    with subtest("db: root and the group's members use the local queue, others do not"):
        db.succeed("su - alice -c 'queuectl list'")
        db.fail("su - bob -c 'queuectl list'")

    with subtest("no password in the workers' logs"):
        worker.fail(f"journalctl --no-pager | grep -qF {password}")
        db.fail(f"journalctl --no-pager -u 'queuectl-worker@*' | grep -qF {password}")
  '';
}
