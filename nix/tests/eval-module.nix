# Offline check of nix/module.nix, evaluated against the stand-in lib and pkgs
# in ./stand-in.nix (not nixpkgs). Run:
#   nix-instantiate --eval --strict nix/tests/eval-module.nix
# Prints a summary string; throws (non-zero exit) naming every failed check.
let
  standIn = import ./stand-in.nix;
  module = import ../module.nix;

  evalWith =
    others: defined:
    standIn.evalModule {
      inherit module others;
      defined.services.queuectl = defined;
    };
  eval = evalWith { };

  # Defaults of the CLI (the `Config` defaults documented for queuectl). The
  # module must write exactly these when the user sets nothing.
  cliDefaults = {
    db_path = "/var/lib/queuectl/queue.db";
    max_retries = 3;
    backoff_base = 2.0;
    backoff_max_seconds = 3600;
    timeout_seconds = 0;
    lease_seconds = 30;
    kill_grace_seconds = 10;
    concurrency = 1;
    durability = "full";
    retention_seconds = 604800;
    supervisor = "auto";
    output = "auto";
  };

  # ---- a typical configuration: three workers and a few settings ------------
  main = eval {
    enable = true;
    workers = 3;
    settings = {
      max_retries = 5;
      backoff_base = 1.5;
      timeout_seconds = 600;
      output = "journal";
      # Unknown keys pass through (freeform), nested tables included.
      future_key = "kept as is";
      limits.max_jobs = 7;
    };
  };
  c = main.config;
  worker = c.systemd.services."queuectl-worker@";
  target = c.systemd.targets.queuectl-workers;
  configFile = c.environment.etc."queuectl/config.toml".source;
  written = builtins.fromTOML configFile.text;

  defaultsOnly = eval { enable = true; };
  defaultsWritten = builtins.fromTOML defaultsOnly.config.environment.etc."queuectl/config.toml".source.text;

  customUser = eval {
    enable = true;
    user = "jobs";
    group = "batch";
  };

  relaxed = eval {
    enable = true;
    extraServiceConfig = {
      ProtectSystem = false;
      PrivateTmp = true;
      MemoryMax = "2G";
    };
  };

  cliOnly = eval {
    enable = true;
    workers = 0;
  };

  # A database elsewhere under /var/lib, and one outside it.
  dbUnderVarLib = eval {
    enable = true;
    settings.db_path = "/var/lib/jobs/main/queue.db";
  };
  dbOnSrv = eval {
    enable = true;
    settings.db_path = "/srv/queue/q.db";
  };

  withSecrets = eval {
    enable = true;
    credentials = {
      api-token = "/run/secrets/api-token";
      "db.password" = "/run/keys/db";
    };
    environmentFile = "/run/secrets/queuectl.env";
  };
  badCredentialName = eval {
    enable = true;
    credentials."a:b" = "/run/secrets/x";
  };
  # Named queues: settings written to the config, and instances restricted.
  withQueues = eval {
    enable = true;
    workers = 2;
    queues = {
      emails.parallel = 2;
      reports = {
        paused = true;
      };
    };
    workerQueues."2" = [
      "emails"
      "reports"
    ];
  };
  queuesWritten = builtins.fromTOML withQueues.config.environment.etc."queuectl/config.toml".source.text;

  # ---- schedules: a timer and a oneshot service each ------------------------
  scheduled = eval {
    enable = true;
    schedules.nightly = {
      onCalendar = [
        "Mon..Fri 02:00"
        "Sat 06:00"
      ];
      job = {
        command = "./backup.sh --full";
        cwd = "/srv/app";
        priority = 5;
        env_file = "backup-env";
      };
      overlap = "replace";
      persistent = true;
      randomizedDelaySec = 600;
    };
    schedules.tick = {
      onCalendar = "*:0/5";
      job.command = "true";
    };
  };
  sc = scheduled.config;
  nightlyTimer = sc.systemd.timers."queuectl-schedule-nightly";
  nightlyService = sc.systemd.services."queuectl-schedule-nightly";
  nightlySpec = builtins.fromJSON sc.environment.etc."queuectl/schedules/nightly.json".text;
  tickSpec = builtins.fromJSON sc.environment.etc."queuectl/schedules/tick.json".text;

  failedAssertions = r: builtins.filter (a: !a.assertion) r.config.assertions;
  # The messages of the failed assertions of a configuration.
  refusals = defined: map (a: a.message) (failedAssertions (eval defined));
  refusedWith =
    needle: defined:
    let
      messages = refusals defined;
    in
    builtins.length messages == 1 && contains needle (builtins.head messages);

  # ---- PostgreSQL ----------------------------------------------------------
  # A server on this host. alice is in the group (extraGroups), dave is a
  # member through users.groups, bob is not.
  localDb = evalWith {
    users.users = {
      alice = {
        group = "users";
        extraGroups = [ "queuectl" ];
      };
      bob = {
        group = "users";
        extraGroups = [ "wheel" ];
      };
    };
    users.groups.queuectl.members = [ "dave" ];
  } {
    enable = true;
    workers = 2;
    database.createLocally = true;
  };
  localWorker = serviceConfigOf localDb;
  localUnit = localDb.config.systemd.services."queuectl-worker@";
  localWritten = builtins.fromTOML localDb.config.environment.etc."queuectl/config.toml".source.text;
  localPg = localDb.config.services.postgresql;

  # A shared server elsewhere, with a password from a file.
  remoteUrl = "postgresql://queuectl@db.example.org:5432/queuectl?sslmode=verify-full";
  remoteDb = eval {
    enable = true;
    database.url = remoteUrl;
    database.passwordFile = "/run/secrets/queuectl-db";
    credentials.api-token = "/run/secrets/api-token";
  };
  remoteUnit = remoteDb.config.systemd.services."queuectl-worker@";
  remoteConfigText = remoteDb.config.environment.etc."queuectl/config.toml".source.text;

  # What the hardening defaults are, and how NixOS would merge them with a
  # user's definition.
  isDefault = value: v: v == standIn.lib.mkDefault value;
  serviceConfigOf = r: r.config.systemd.services."queuectl-worker@".serviceConfig;

  # systemd.exec(5): each of these implies NoNewPrivileges=yes for a service
  # with User= (no CAP_SYS_ADMIN), which would break sudo in jobs.
  impliesNoNewPrivileges = [
    "LockPersonality"
    "MemoryDenyWriteExecute"
    "ProtectClock"
    "ProtectHostname"
    "ProtectKernelLogs"
    "ProtectKernelModules"
    "ProtectKernelTunables"
    "RestrictAddressFamilies"
    "RestrictNamespaces"
    "RestrictRealtime"
    "RestrictSUIDSGID"
    "SystemCallArchitectures"
    "SystemCallFilter"
    "SystemCallLog"
  ];

  contains = needle: haystack: builtins.length (builtins.split needle haystack) > 1;
  lines = text: builtins.filter builtins.isString (builtins.split "\n" text);

  # Forces a whole evaluation; true when it throws (a rejected configuration).
  # ---- the dashboard (services.queuectl.web) --------------------------------
  webDefault = eval {
    enable = true;
    web.enable = true;
  };
  webDefaultService = webDefault.config.systemd.services.queuectl-web;
  webDefaultSocket = webDefault.config.systemd.sockets.queuectl-web;
  webOpen = eval {
    enable = true;
    web = {
      enable = true;
      listen = "0.0.0.0:8080";
      allowActions = true;
      openFirewall = true;
      authTokenFile = "/run/secrets/web-token";
    };
  };
  webOpenService = webOpen.config.systemd.services.queuectl-web;
  webOnPostgres = eval {
    enable = true;
    database.url = "postgresql://queuectl@db.example.org/queuectl";
    database.passwordFile = "/run/secrets/db";
    web = {
      enable = true;
      listen = "[::1]:9750";
      authBasicFile = "/run/secrets/web-basic";
    };
  };
  webOnPostgresService = webOnPostgres.config.systemd.services.queuectl-web;
  queuectlBin = "${standIn.pkgs.queuectl}/bin/queuectl";

  rejects =
    defined:
    let
      r = eval defined;
    in
    !(builtins.tryEval (builtins.deepSeq r.options (builtins.deepSeq r.config true))).success;

  checks = {
    # -- the dashboard --
    "no web: no dashboard units, no open port" =
      !(c.systemd.services ? queuectl-web)
      && c.systemd.sockets == { }
      && !(c.networking.firewall ? allowedTCPPorts);
    "web: the package's socket listens on loopback 9750, started at boot" =
      webDefaultSocket.overrideStrategy == "asDropin"
      && webDefaultSocket.wantedBy == [ "sockets.target" ]
      && webDefaultSocket.listenStreams == [
        ""
        "127.0.0.1:9750"
      ];
    "web: the service runs `queuectl web` as the queue's user, read-only, no port opened" =
      webDefaultService.overrideStrategy == "asDropin"
      && webDefaultService.serviceConfig.ExecStart == [
        ""
        "${queuectlBin} web"
      ]
      && webDefaultService.serviceConfig.User == "queuectl"
      && webDefaultService.serviceConfig.Group == "queuectl"
      && webDefaultService.serviceConfig.UMask == "0007"
      && webDefaultService.environment.QUEUECTL_CONFIG == "/etc/queuectl/config.toml"
      && !(webDefaultService.serviceConfig ? LoadCredential)
      && !(webDefault.config.networking.firewall ? allowedTCPPorts);
    "web on SQLite: the queue's directory stays writable (WAL -shm/-wal)" =
      webDefaultService.serviceConfig.ReadWritePaths == [ "/var/lib/queuectl" ]
      && (eval {
        enable = true;
        settings.db_path = "/srv/queue/q.db";
        web.enable = true;
      }).config.systemd.services.queuectl-web.serviceConfig.ReadWritePaths == [ "/srv/queue" ];
    "web follows a db_path elsewhere under /var/lib, as the workers do" =
      let
        r = eval {
          enable = true;
          settings.db_path = "/var/lib/jobs/main/queue.db";
          web.enable = true;
        };
      in
      r.config.systemd.services.queuectl-web.serviceConfig.StateDirectory == [
        ""
        "jobs/main"
      ]
      && r.config.systemd.services.queuectl-web.serviceConfig.ReadWritePaths == [ "/var/lib/jobs/main" ]
      && !(webDefaultService.serviceConfig ? StateDirectory);
    "web: actions, the token as a credential, the port opened" =
      webOpenService.serviceConfig.ExecStart == [
        ""
        "${queuectlBin} web --allow-actions --auth-token-file %d/web-auth-token"
      ]
      && webOpenService.serviceConfig.LoadCredential == [ "web-auth-token:/run/secrets/web-token" ]
      && webOpen.config.networking.firewall.allowedTCPPorts == [ 8080 ]
      && webOpen.config.systemd.sockets.queuectl-web.listenStreams == [
        ""
        "0.0.0.0:8080"
      ]
      && failedAssertions webOpen == [ ];
    "web on PostgreSQL: basic auth and the database password as credentials, nothing local writable" =
      webOnPostgresService.serviceConfig.ExecStart == [
        ""
        "${queuectlBin} web --auth-basic-file %d/web-auth-basic"
      ]
      && webOnPostgresService.serviceConfig.LoadCredential == [
        "web-auth-basic:/run/secrets/web-basic"
        "db-password:/run/secrets/db"
      ]
      && webOnPostgresService.environment.QUEUECTL_DB_PASSWORD_FILE == "db-password"
      && webOnPostgresService.after == [ "network-online.target" ]
      && !(webOnPostgresService.serviceConfig ? ReadWritePaths)
      && failedAssertions webOnPostgres == [ ];
    "web: a bare port listens on every address" =
      (eval {
        enable = true;
        web = {
          enable = true;
          listen = "9750";
          openFirewall = true;
          authTokenFile = "/run/secrets/t";
        };
      }).config.networking.firewall.allowedTCPPorts == [ 9750 ];
    "refuses both web auth files" = refusedWith "not both" {
      enable = true;
      web = {
        enable = true;
        authTokenFile = "/run/secrets/a";
        authBasicFile = "/run/secrets/b";
      };
    };
    "refuses opening the firewall to a dashboard without auth" =
      contains "openFirewall shows the queue" (
        builtins.concatStringsSep "\n" (refusals {
          enable = true;
          web = {
            enable = true;
            listen = "0.0.0.0:9750";
            openFirewall = true;
          };
        })
      );
    "refuses a listen address beyond loopback without auth (queuectl web would)" =
      refusedWith "reachable from other hosts" {
        enable = true;
        web = {
          enable = true;
          listen = "9750";
        };
      }
      && refusedWith "reachable from other hosts" {
        enable = true;
        web = {
          enable = true;
          listen = "[::]:9750";
        };
      }
      && refusals {
        enable = true;
        web = {
          enable = true;
          listen = "[::1]:9750";
        };
      } == [ ];
    "refuses opening the firewall for a loopback address" = refusedWith "loopback" {
      enable = true;
      web = {
        enable = true;
        openFirewall = true;
        authTokenFile = "/run/secrets/t";
      };
    };
    "refuses a port above 65535" = refusedWith "above 65535" {
      enable = true;
      web = {
        enable = true;
        listen = "127.0.0.1:70000";
      };
    };
    "rejects a web listen address systemd cannot take (a host name)" = rejects {
      enable = true;
      web = {
        enable = true;
        listen = "localhost:9750";
      };
    };
    "rejects a web auth file given as a relative path" = rejects {
      enable = true;
      web = {
        enable = true;
        authTokenFile = "token";
      };
    };
    # -- the target wants instances 1..workers --
    "target wants queuectl-worker@1..3" =
      target.wants == [
        "queuectl-worker@1.service"
        "queuectl-worker@2.service"
        "queuectl-worker@3.service"
      ];
    "target is started at boot" = target.wantedBy == [ "multi-user.target" ];
    "one worker by default" = defaultsOnly.config.systemd.targets.queuectl-workers.wants == [
      "queuectl-worker@1.service"
    ];

    # -- units come from the package, the module only adds drop-ins --
    "package units installed (systemd.packages)" = c.systemd.packages == [ standIn.pkgs.queuectl ];
    "service is a drop-in" = worker.overrideStrategy == "asDropin";
    "target is a drop-in" = target.overrideStrategy == "asDropin";
    "drop-in does not redefine ExecStart or Type" =
      !(worker.serviceConfig ? ExecStart) && !(worker.serviceConfig ? Type) && !(worker ? script);

    # -- the drop-in --
    "drop-in runs as the static user and group" =
      worker.serviceConfig.User == "queuectl" && worker.serviceConfig.Group == "queuectl";
    "drop-in keeps files group-writable (UMask 0007)" = worker.serviceConfig.UMask == "0007";
    "drop-in state directory mode 2770" = worker.serviceConfig.StateDirectoryMode == "2770";
    "drop-in sets QUEUECTL_CONFIG" = worker.environment.QUEUECTL_CONFIG == "/etc/queuectl/config.toml";
    "drop-in sets QUEUECTL_UNITS_MANAGED" = worker.environment.QUEUECTL_UNITS_MANAGED == "1";
    "hardening defaults as docs/systemd.md promises: sudo and the host's /tmp work, OS read-only" =
      isDefault false worker.serviceConfig.NoNewPrivileges
      && isDefault false worker.serviceConfig.PrivateTmp
      && isDefault "full" worker.serviceConfig.ProtectSystem;
    "no default option that implies NoNewPrivileges" = builtins.all (
      o: !(worker.serviceConfig ? ${o})
    ) impliesNoNewPrivileges;
    "a user's serviceConfig overrides the hardening without mkForce" =
      standIn.mergeDefinitions [ worker.serviceConfig.PrivateTmp true ] == true
      && standIn.mergeDefinitions [ worker.serviceConfig.NoNewPrivileges true ] == true
      && standIn.mergeDefinitions [ worker.serviceConfig.ProtectSystem "strict" ] == "strict";
    "the user and group are not defaults (a conflict is an error, not a silent choice)" =
      !(builtins.tryEval (standIn.mergeDefinitions [ worker.serviceConfig.User "root" ])).success;
    # Attempt containment (Delegate=, the attempts' sub-cgroups), the stop
    # protocol and journald's rate limit are the unit's; the drop-in keeps them.
    "drop-in keeps the unit's containment, stop and journal settings" = builtins.all (
      o: !(worker.serviceConfig ? ${o})
    ) [
      "Delegate"
      "ProtectControlGroups"
      "KillMode"
      "KillSignal"
      "TimeoutStopSec"
      "NotifyAccess"
      "WatchdogSec"
      "LogRateLimitIntervalSec"
      "LogRateLimitBurst"
    ];
    "workers restart when the config changes" = worker.restartTriggers == [ configFile ];
    "extraServiceConfig overrides hardening" =
      let
        s = relaxed.config.systemd.services."queuectl-worker@".serviceConfig;
      in
      s.ProtectSystem == false
      && s.PrivateTmp == true
      && s.MemoryMax == "2G"
      && s.UMask == "0007"
      && isDefault false s.NoNewPrivileges;
    "no extra PATH by default" = worker.path == [ ];

    # -- config.toml from settings --
    "config.toml is /etc/queuectl/config.toml" = configFile.name == "queuectl-config.toml";
    "defaults match the CLI's" = defaultsWritten == cliDefaults;
    "settings override defaults" =
      written.max_retries == 5
      && written.backoff_base == 1.5
      && written.timeout_seconds == 600
      && written.output == "journal"
      && written.db_path == "/var/lib/queuectl/queue.db";
    "freeform keys pass through" = written.future_key == "kept as is" && written.limits.max_jobs == 7;
    "TOML round-trips" =
      written == cliDefaults // {
        max_retries = 5;
        backoff_base = 1.5;
        timeout_seconds = 600;
        output = "journal";
        future_key = "kept as is";
        limits.max_jobs = 7;
      };
    "floats are written as TOML floats" = builtins.elem "backoff_base = 2.0" (
      lines defaultsOnly.config.environment.etc."queuectl/config.toml".source.text
    );
    "db_path is written" = builtins.elem ''db_path = "/var/lib/queuectl/queue.db"'' (lines configFile.text);

    # -- the CLI on PATH, agreeing with the workers --
    "CLI on the system PATH" = builtins.elem standIn.pkgs.queuectl c.environment.systemPackages;
    "every shell, session and service gets QUEUECTL_CONFIG and QUEUECTL_UNITS_MANAGED" =
      let
        expected = {
          QUEUECTL_CONFIG = "/etc/queuectl/config.toml";
          QUEUECTL_UNITS_MANAGED = "1";
        };
      in
      c.environment.variables == expected
      && c.environment.sessionVariables == expected
      && c.systemd.globalEnvironment == expected;

    # -- user, group, state directory --
    "static system user (not DynamicUser)" =
      c.users.users.queuectl.isSystemUser
      && c.users.users.queuectl.group == "queuectl"
      && !(worker.serviceConfig.DynamicUser or false);
    "group created" = c.users.groups ? queuectl;
    "state directory owner and mode at boot" =
      c.systemd.tmpfiles.rules == [ "d /var/lib/queuectl 2770 queuectl queuectl - -" ];
    "default db_path keeps the unit's StateDirectory" = !(worker.serviceConfig ? StateDirectory);
    "a db_path under /var/lib is the state directory, created at boot" =
      let
        dc = dbUnderVarLib.config;
      in
      (serviceConfigOf dbUnderVarLib).StateDirectory == [
        ""
        "jobs/main"
      ]
      && dc.systemd.tmpfiles.rules == [ "d /var/lib/jobs/main 2770 queuectl queuectl - -" ]
      && dc.users.users.queuectl.home == "/var/lib/jobs/main";
    "a db_path outside /var/lib is created at boot, the unit's StateDirectory kept" =
      dbOnSrv.config.systemd.tmpfiles.rules == [ "d /srv/queue 2770 queuectl queuectl - -" ]
      && !((serviceConfigOf dbOnSrv) ? StateDirectory);

    # -- secrets kept out of the queue and the store --
    "credentials become LoadCredential=" =
      (serviceConfigOf withSecrets).LoadCredential == [
        "api-token:/run/secrets/api-token"
        "db.password:/run/keys/db"
      ]
      && failedAssertions withSecrets == [ ];
    "environmentFile becomes EnvironmentFile=" =
      (serviceConfigOf withSecrets).EnvironmentFile == "/run/secrets/queuectl.env";
    "no credentials or environment file by default" =
      !(worker.serviceConfig ? LoadCredential) && !(worker.serviceConfig ? EnvironmentFile);
    "a credential name with ':' fails an assertion" =
      builtins.length (failedAssertions badCredentialName) == 1
      && contains "a:b" (builtins.head (failedAssertions badCredentialName)).message;
    "rejects a relative credential path" = rejects {
      enable = true;
      credentials.token = "secrets/token";
    };
    "rejects a relative environmentFile" = rejects {
      enable = true;
      environmentFile = "queuectl.env";
    };
    "rejects a Nix path as environmentFile (it would copy the secret into the store)" = rejects {
      enable = true;
      environmentFile = ./eval-module.nix;
    };
    "rejects a Nix path as a credential" = rejects {
      enable = true;
      credentials.token = ./eval-module.nix;
    };
    "custom user and group are used, not created" =
      let
        cu = customUser.config;
        s = cu.systemd.services."queuectl-worker@".serviceConfig;
      in
      # (the stand-in drops a `mkIf false` attribute; nixpkgs leaves `{ }`)
      (cu.users.users or { }) == { }
      && (cu.users.groups or { }) == { }
      && s.User == "jobs"
      && s.Group == "batch"
      && cu.systemd.tmpfiles.rules == [ "d /var/lib/queuectl 2770 jobs batch - -" ];

    # -- keys the CLI does not know pass through, with a warning --
    "warns about keys the CLI does not know" =
      builtins.length c.warnings == 1
      && contains "future_key, limits" (builtins.head c.warnings);
    "no warnings for known keys" = defaultsOnly.config.warnings == [ ];

    # -- PostgreSQL on this host (createLocally) --
    "createLocally: config names the local database, peer authentication over the socket" =
      localWritten.db_path == "postgresql:///queuectl?host=/run/postgresql&user=queuectl"
      && localWritten == cliDefaults // { db_path = localWritten.db_path; };
    "createLocally: services.postgresql with the database and its owner" =
      localPg.enable
      && localPg.ensureDatabases == [ "queuectl" ]
      && localPg.ensureUsers == [
        {
          name = "queuectl";
          ensureDBOwnership = true;
        }
      ];
    "createLocally: workers require and follow postgresql.target (ensureUsers done)" =
      localUnit.requires == [ "postgresql.target" ]
      && localUnit.after == [ "postgresql.target" ]
      && localUnit.wants == [ ];
    "createLocally: only root, the workers' user and the group's members map to the role" =
      localPg.authentication == "local queuectl queuectl peer map=queuectl\n"
      && lines localPg.identMap == [
        "queuectl root queuectl"
        "queuectl queuectl queuectl"
        "queuectl alice queuectl"
        "queuectl dave queuectl"
        ""
      ];
    "createLocally: no password, no credential, local files stay in /var/lib/queuectl" =
      !(localWorker ? LoadCredential)
      && !(localUnit.environment ? QUEUECTL_DB_PASSWORD_FILE)
      && !(localDb.config.environment.variables ? QUEUECTL_DB_PASSWORD_FILE)
      && !(localWorker ? StateDirectory)
      && localDb.config.systemd.tmpfiles.rules == [ "d /var/lib/queuectl 2770 queuectl queuectl - -" ]
      && failedAssertions localDb == [ ];

    # -- a PostgreSQL server elsewhere (url, passwordFile) --
    "url: written as db_path, the password file's path nowhere in the config" =
      (builtins.fromTOML remoteConfigText).db_path == remoteUrl
      && !(contains "queuectl-db" remoteConfigText)
      && failedAssertions remoteDb == [ ];
    "url: no local server, workers wait for the network" =
      (remoteDb.config.services.postgresql or { }) == { }
      && remoteUnit.after == [ "network-online.target" ]
      && remoteUnit.wants == [ "network-online.target" ]
      && remoteUnit.requires == [ ];
    "passwordFile: a credential for the workers, beside the user's" =
      (serviceConfigOf remoteDb).LoadCredential == [
        "api-token:/run/secrets/api-token"
        "db-password:/run/secrets/queuectl-db"
      ]
      && remoteUnit.environment.QUEUECTL_DB_PASSWORD_FILE == "db-password";
    "passwordFile: the CLI in shells reads the file itself" =
      remoteDb.config.environment.variables.QUEUECTL_DB_PASSWORD_FILE == "/run/secrets/queuectl-db"
      && remoteDb.config.environment.sessionVariables.QUEUECTL_DB_PASSWORD_FILE
        == "/run/secrets/queuectl-db";
    "url as key=value conninfo, and host:port or [::1] are no password" =
      refusals {
        enable = true;
        database.url = "host=db.example.org port=5432 dbname=queuectl user=queuectl sslmode=require";
      } == [ ]
      && refusals {
        enable = true;
        database.url = "postgres://db.example.org:5432/queuectl";
      } == [ ]
      && refusals {
        enable = true;
        database.url = "postgresql://queuectl@[::1]:5432/queuectl";
      } == [ ];
    "SQLite by default: no database ordering" =
      worker.after == [ ] && worker.requires == [ ] && worker.wants == [ ] && (c.services.postgresql or { }) == { };

    # -- refused database settings --
    "refuses createLocally together with url" = refusedWith "either createLocally" {
      enable = true;
      database.createLocally = true;
      database.url = remoteUrl;
    };
    "refuses passwordFile without url" = refusedWith "passwordFile needs" {
      enable = true;
      database.passwordFile = "/run/secrets/queuectl-db";
    };
    "refuses passwordFile with createLocally (peer authentication)" = refusedWith "passwordFile needs" {
      enable = true;
      database.createLocally = true;
      database.passwordFile = "/run/secrets/queuectl-db";
    };
    "refuses a password in the URL, pointing at passwordFile, never echoing it" =
      let
        messages = refusals {
          enable = true;
          database.url = "postgresql://queuectl:hunter2@db.example.org/queuectl";
        };
      in
      builtins.length messages == 1
      && contains "database.passwordFile" (builtins.head messages)
      && !(contains "hunter2" (builtins.head messages));
    "refuses a password URL parameter or conninfo key" =
      refusedWith "must not contain a password" {
        enable = true;
        database.url = "postgres://queuectl@db.example.org/queuectl?sslmode=require&password=hunter2";
      }
      && refusedWith "must not contain a password" {
        enable = true;
        database.url = "host=db.example.org user=queuectl password=hunter2";
      }
      && refusedWith "must not contain a password" {
        enable = true;
        database.url = "postgresql://queuectl:@db.example.org/queuectl";
      };
    "refuses createLocally with a database not named after the user" = refusedWith "must equal" {
      enable = true;
      database.createLocally = true;
      database.name = "jobs";
    };
    "refuses settings.db_path together with a PostgreSQL database" = refusedWith "leave db_path unset" {
      enable = true;
      database.createLocally = true;
      settings.db_path = "/srv/queue.db";
    };
    "refuses a credential named db-password beside passwordFile" = refusedWith "is taken" {
      enable = true;
      database.url = remoteUrl;
      database.passwordFile = "/run/secrets/queuectl-db";
      credentials.db-password = "/run/secrets/other";
    };
    "rejects a file path as database.url (that is settings.db_path)" = rejects {
      enable = true;
      database.url = "/var/lib/queuectl/queue.db";
    };
    "rejects a Nix path as passwordFile (it would copy the secret into the store)" = rejects {
      enable = true;
      database.url = remoteUrl;
      database.passwordFile = ./eval-module.nix;
    };
    "rejects a relative passwordFile" = rejects {
      enable = true;
      database.url = remoteUrl;
      database.passwordFile = "secrets/db";
    };

    # -- disabled means nothing --
    "disabled module configures nothing" = (eval { }).config == { };

    # -- option types reject bad values --
    "workers = 0: no instance started (CLI-only host), the rest set up" =
      cliOnly.config.systemd.targets.queuectl-workers.wants == [ ]
      && builtins.elem standIn.pkgs.queuectl cliOnly.config.environment.systemPackages
      && cliOnly.config.environment.variables.QUEUECTL_CONFIG == "/etc/queuectl/config.toml";
    "rejects workers = -1" = rejects {
      enable = true;
      workers = -1;
    };
    "rejects an unknown durability" = rejects {
      enable = true;
      settings.durability = "fast";
    };
    "rejects backoff_base < 1" = rejects {
      enable = true;
      settings.backoff_base = 0.5;
    };
    "rejects lease_seconds = 0" = rejects {
      enable = true;
      settings.lease_seconds = 0;
    };
    "rejects a negative max_retries" = rejects {
      enable = true;
      settings.max_retries = -1;
    };
    "rejects a misspelt option" = rejects {
      enable = true;
      wrokers = 2;
    };
    "rejects max_retries above the CLI's 10000" = rejects {
      enable = true;
      settings.max_retries = 10001;
    };
    "rejects kill_grace_seconds above the CLI's 3600" = rejects {
      enable = true;
      settings.kill_grace_seconds = 3601;
    };
    "rejects backoff_base above the CLI's 1000" = rejects {
      enable = true;
      settings.backoff_base = 1000.5;
    };
    "rejects a relative db_path" = rejects {
      enable = true;
      settings.db_path = "queue.db";
    };
    "rejects a setting that is not TOML" = rejects {
      enable = true;
      settings.hook = null;
    };
    # -- named queues --
    "queues become the config's [queues.NAME] tables, every key written" =
      queuesWritten.queues == {
        emails = {
          parallel = 2;
          paused = false;
        };
        reports = {
          parallel = "none";
          paused = true;
        };
      };
    "no queues: no [queues] table" = !(defaultsWritten ? queues);
    "workerQueues gives that instance QUEUECTL_QUEUES, the template none" =
      withQueues.config.systemd.services."queuectl-worker@2".environment.QUEUECTL_QUEUES == "emails,reports"
      && withQueues.config.systemd.services."queuectl-worker@2".overrideStrategy == "asDropin"
      && !(withQueues.config.systemd.services."queuectl-worker@".environment ? QUEUECTL_QUEUES)
      && !(withQueues.config.systemd.services ? "queuectl-worker@1");
    "refuses a queue name the CLI refuses" = refusedWith "queue names" {
      enable = true;
      queues."a b".parallel = 1;
    };
    "refuses a bad queue in workerQueues" = refusedWith "queue names" {
      enable = true;
      workerQueues."1" = [ "x/y" ];
    };
    "refuses a workerQueues key that is no instance" = refusedWith "instance numbers" {
      enable = true;
      workerQueues.first = [ "emails" ];
    };
    "each schedule is a timer wanted by timers.target, one OnCalendar per expression" =
      nightlyTimer.wantedBy == [ "timers.target" ]
      && nightlyTimer.timerConfig.OnCalendar == [
        "Mon..Fri 02:00"
        "Sat 06:00"
      ]
      && sc.systemd.timers."queuectl-schedule-tick".timerConfig.OnCalendar == [ "*:0/5" ];
    "a schedule's timer: Persistent, RandomizedDelaySec, AccuracySec 1s" =
      nightlyTimer.timerConfig.Persistent == true
      && nightlyTimer.timerConfig.RandomizedDelaySec == 600
      && nightlyTimer.timerConfig.AccuracySec == "1s";
    "a schedule's service is a oneshot of the workers' user firing it with its spec" =
      nightlyService.serviceConfig.Type == "oneshot"
      && nightlyService.serviceConfig.User == "queuectl"
      && nightlyService.serviceConfig.Group == "queuectl"
      && nightlyService.serviceConfig.ExecStart
        == "${standIn.pkgs.queuectl}/bin/queuectl schedule fire nightly --spec /etc/queuectl/schedules/nightly.json"
      && nightlyService.environment.QUEUECTL_CONFIG == "/etc/queuectl/config.toml"
      && nightlyService.restartIfChanged == false;
    "the spec holds the calendar, the job and the policy" =
      nightlySpec == {
        on_calendar = [
          "Mon..Fri 02:00"
          "Sat 06:00"
        ];
        job = {
          command = "./backup.sh --full";
          cwd = "/srv/app";
          priority = 5;
          env_file = "backup-env";
        };
        overlap = "replace";
        persistent = true;
        randomized_delay_sec = 600;
      }
      && tickSpec.overlap == "skip"
      && tickSpec.on_calendar == [ "*:0/5" ]
      && tickSpec.job == { command = "true"; };
    "no schedules: no timers, no schedule services" =
      c.systemd.timers == { }
      && builtins.all (n: builtins.substring 0 18 n != "queuectl-schedule-") (
        builtins.attrNames c.systemd.services
      );
    "a schedule service reaches a password-protected database through its credential" =
      let
        s = (eval {
          enable = true;
          database.url = "postgresql://queuectl@db.example.org/queuectl";
          database.passwordFile = "/run/secrets/db";
          schedules.x = {
            onCalendar = "daily";
            job.command = "true";
          };
        }).config.systemd.services."queuectl-schedule-x";
      in
      s.serviceConfig.LoadCredential == [ "db-password:/run/secrets/db" ]
      && s.environment.QUEUECTL_DB_PASSWORD_FILE == "db-password";
    "refuses a schedule name that is not a safe unit name" = refusedWith "since they name unit files" {
      enable = true;
      schedules."a.b" = {
        onCalendar = "daily";
        job.command = "true";
      };
    };
    "refuses a schedule job's env (the store and /etc are world-readable)" =
      refusedWith "job.env is not allowed" {
        enable = true;
        schedules.x = {
          onCalendar = "daily";
          job = {
            command = "true";
            env.TOKEN = "s3cret";
          };
        };
      };
    "accepts an integer backoff_base" =
      !(rejects {
        enable = true;
        settings.backoff_base = 3;
      });
  };

in
standIn.report "eval-module" checks
