# NixOS module: services.queuectl
#
# The workers run from the unit files the package installs (systemd.packages);
# this module only adds drop-ins, so what NixOS runs is what the systemd tests
# exercise. The queue is SQLite in the state directory, or PostgreSQL
# (`database.*`: a local server set up as nixpkgs modules do with
# `createLocally`, or a shared one by URL). nix/tests/eval-module.nix
# evaluates this file offline.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    mkPackageOption
    types
    ;

  cfg = config.services.queuectl;

  settingsFormat = pkgs.formats.toml { };
  configFile = settingsFormat.generate "queuectl-config.toml" writtenSettings;

  configPath = "/etc/queuectl/config.toml";

  db = cfg.database;

  # The PostgreSQL database, as the config's db_path names it (null: SQLite).
  # createLocally: peer authentication over the local server's socket, as
  # the workers' own user, which ensureUsers creates. A URL (the socket's
  # directory as `host`) rather than key=value conninfo: nothing can take it
  # for an SQLite file's path.
  databaseUrl =
    if db.createLocally then
      "postgresql:///${db.name}?host=/run/postgresql&user=${cfg.user}"
    else
      db.url;
  usesPostgres = databaseUrl != null;
  remoteDatabase = db.url != null;

  sqliteDefault = settingsOptions.db_path.default;

  # What the user wrote as settings, with the PostgreSQL database in place of
  # the SQLite path.
  writtenSettings =
    cfg.settings
    // lib.optionalAttrs usesPostgres { db_path = databaseUrl; }
    // lib.optionalAttrs (cfg.queues != { }) { queues = lib.mapAttrs (_: queueSettings) cfg.queues; };

  # A queue's settings as the config's [queues.NAME] table: every key, so the
  # queue is as declared whenever a worker starts (a limit left out is none).
  queueSettings = q: {
    parallel = if (q.parallel or null) == null then "none" else q.parallel;
    paused = q.paused or false;
  };

  # Queue names as the CLI takes them (like job ids).
  queueNamePattern = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}";
  badQueueNames = lib.filter (name: builtins.match queueNamePattern name == null) (
    lib.attrNames cfg.queues ++ builtins.concatLists (builtins.attrValues cfg.workerQueues)
  );

  # `queuectl-worker@N.service` of each instance restricted to some queues.
  instanceQueueDropIns = builtins.listToAttrs (
    lib.mapAttrsToList (n: queues: {
      name = "queuectl-worker@${n}";
      value = {
        overrideStrategy = "asDropin";
        environment.QUEUECTL_QUEUES = lib.concatStringsSep "," queues;
      };
    }) cfg.workerQueues
  );
  badWorkerInstances = lib.filter (n: builtins.match "[1-9][0-9]*" n == null) (
    lib.attrNames cfg.workerQueues
  );

  # Schedules (docs/schedules.md): each a timer and a oneshot service whose
  # `queuectl schedule fire NAME --spec FILE` writes the schedule's row
  # (marked managed) and enqueues its job. The spec is world-readable, like
  # the config: a job's env is refused (use env_file).
  scheduleNamePattern = "[A-Za-z0-9][A-Za-z0-9_-]{0,63}";
  badScheduleNames = lib.filter (name: builtins.match scheduleNamePattern name == null) (
    lib.attrNames cfg.schedules
  );
  schedulesWithEnv = lib.filter (name: (cfg.schedules.${name}.job.env or null) != null) (
    lib.attrNames cfg.schedules
  );
  scheduleUnit = name: "queuectl-schedule-${name}";
  scheduleSpecPath = name: "queuectl/schedules/${name}.json";
  calendarsOf = s: if builtins.isList s.onCalendar then s.onCalendar else [ s.onCalendar ];
  # As `schedule fire --spec` reads it (fields left out take the CLI's defaults).
  scheduleSpec = s: {
    on_calendar = calendarsOf s;
    job = lib.filterAttrs (field: value: value != null && field != "env") s.job;
    overlap = s.overlap or "skip";
    persistent = s.persistent or false;
    randomized_delay_sec = s.randomizedDelaySec or 0;
  };
  perSchedule = f: builtins.listToAttrs (lib.mapAttrsToList f cfg.schedules);
  scheduleSpecs = perSchedule (
    name: s: {
      name = scheduleSpecPath name;
      value.text = builtins.toJSON (scheduleSpec s);
    }
  );
  scheduleTimers = perSchedule (
    name: s: {
      name = scheduleUnit name;
      value = {
        description = "queuectl schedule ${name}";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = calendarsOf s;
          Persistent = s.persistent or false;
          RandomizedDelaySec = s.randomizedDelaySec or 0;
          # systemd's default accuracy is a minute.
          AccuracySec = "1s";
        };
      };
    }
  );
  scheduleServices = perSchedule (
    name: _: {
      name = scheduleUnit name;
      value = {
        description = "queuectl schedule ${name}: enqueue its job";
        environment = workerEnvironment;
        after = requiredUnits ++ wantedUnits;
        requires = requiredUnits;
        wants = wantedUnits;
        restartIfChanged = false;
        serviceConfig = {
          Type = "oneshot";
          User = cfg.user;
          Group = cfg.group;
          UMask = "0007";
          ExecStart = "${cfg.package}/bin/queuectl schedule fire ${name} --spec /etc/${scheduleSpecPath name}";
        }
        // lib.optionalAttrs (db.passwordFile != null) {
          LoadCredential = [ "${passwordCredential}:${db.passwordFile}" ];
        };
      };
    }
  );

  # A password in the URL would be world-readable (the Nix store and
  # /etc/queuectl/config.toml): refused, pointing at passwordFile. Userinfo
  # with a ':' before the host, a `password` URL parameter, or a `password`
  # key of key=value conninfo.
  urlHasPassword =
    url:
    builtins.match "postgres(ql)?://[^/?#@]*:[^/?#@]*@.*" url != null
    || builtins.match "postgres(ql)?://.*[?&]password=.*" url != null
    || builtins.match "(.*[[:space:]])?password[[:space:]]*=.*" url != null;

  # LoadCredential= name of the database password; the backend looks a bare
  # name up in $CREDENTIALS_DIRECTORY.
  passwordCredential = "db-password";

  # The directory of the SQLite database (and of logs/, wake/, workers/
  # beside it). The unit's StateDirectory=queuectl gives /var/lib/queuectl; a
  # db_path elsewhere under /var/lib becomes the state directory instead,
  # and one outside /var/lib is created by tmpfiles alone. With PostgreSQL
  # the host's own files (logs/, wake/, workers/) stay in /var/lib/queuectl.
  dbDir = if usesPostgres then dirOf sqliteDefault else dirOf cfg.settings.db_path;
  stateRoot = "/var/lib/";
  stateDirectory =
    if lib.hasPrefix stateRoot dbDir then lib.removePrefix stateRoot dbDir else null;
  # For the units' [Service]: StateDirectory= following db_path. The empty
  # entry drops the unit's StateDirectory=queuectl.
  stateDirectoryOverride =
    lib.optionalAttrs (stateDirectory != null && stateDirectory != "queuectl")
      {
        StateDirectory = [
          ""
          stateDirectory
        ];
      };

  # Set for the workers, for every systemd service and for every session and
  # shell, so the CLI run anywhere on the host (a login shell, `ssh host
  # queuectl ...`, cron, another service) reads the same config (and so
  # opens the same database) as the workers.
  queuectlEnvironment = {
    QUEUECTL_CONFIG = configPath;
    # The units come from the package and /etc is read-only: `queuectl worker
    # start/stop` must only start and stop instances, never install unit files.
    QUEUECTL_UNITS_MANAGED = "1";
  }
  # The CLI of whoever may read the password file (root) reaches the
  # database too; the workers get their private copy (a credential) instead.
  // lib.optionalAttrs (db.passwordFile != null) {
    QUEUECTL_DB_PASSWORD_FILE = db.passwordFile;
  };

  workerEnvironment =
    queuectlEnvironment
    // lib.optionalAttrs (db.passwordFile != null) {
      QUEUECTL_DB_PASSWORD_FILE = passwordCredential;
    };

  # Units the workers start after, to find their queue. The local server's
  # role and database exist once postgresql.target is reached
  # (ensureUsers/ensureDatabases run in postgresql-setup.service, which the
  # target requires), not as soon as postgresql.service is up.
  requiredUnits = lib.optional db.createLocally "postgresql.target";
  wantedUnits = lib.optional remoteDatabase "network-online.target";

  # Who may use a local queue from a shell: root, the workers' user and the
  # members of the queue's group, as with SQLite (the group can write the
  # file). Peer authentication maps them to the workers' database role.
  queueUsers = lib.unique (
    [
      "root"
      cfg.user
    ]
    ++ lib.attrNames (
      lib.filterAttrs (
        _: user: user.group == cfg.group || builtins.elem cfg.group user.extraGroups
      ) config.users.users
    )
    ++ (config.users.groups.${cfg.group}.members or [ ])
  );
  identMapName = "queuectl";

  # What docs/systemd.md promises jobs ("What the unit sandboxes"): `sudo` and other
  # setuid helpers work (no NoNewPrivileges, and none of the options that
  # imply it for a service with User=: LockPersonality, ProtectKernelTunables,
  # ProtectKernelModules, SystemCallFilter, ...), and jobs share the host's
  # /tmp. The OS stays read-only. All mkDefault: a user's own value in
  # extraServiceConfig or systemd.services."queuectl-worker@".serviceConfig
  # wins without mkForce.
  hardening = lib.mapAttrs (_: lib.mkDefault) {
    NoNewPrivileges = false;
    PrivateTmp = false;
    ProtectSystem = "full";
  };

  # LoadCredential= wants a name without "/" or ":".
  badCredentialNames = lib.filter (name: builtins.match "[A-Za-z0-9_.@-]+" name == null) (
    lib.attrNames cfg.credentials
  );

  loadCredentials =
    lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials
    ++ lib.optional (db.passwordFile != null) "${passwordCredential}:${db.passwordFile}";

  workerInstance = n: "queuectl-worker@${toString n}.service";

  # The keys the CLI knows, with its defaults and the ranges it accepts.
  settingsOptions = {
    db_path = mkOption {
      # Absolute: the workers' working directory is not the user's.
      type = types.strMatching "/.+";
      default = "/var/lib/queuectl/queue.db";
      description = ''
        Path of the SQLite database. Job log files go in `logs/` beside it.
        Its directory is created at boot (tmpfiles) owned by `user` and
        `group`, mode 2770, and, when it lies under `/var/lib`, is the
        workers' `StateDirectory=`. For PostgreSQL, set
        {option}`services.queuectl.database.url` or
        {option}`services.queuectl.database.createLocally` instead: the
        module writes that database here.
      '';
    };

    max_retries = mkOption {
      type = types.ints.between 0 10000;
      default = 3;
      description = "Retries of a failed job before it goes to the dead-letter queue.";
    };

    backoff_base = mkOption {
      type = types.numbers.between 1 1000;
      default = 2.0;
      description = "Base of the exponential backoff: retry n waits `backoff_base^n` seconds.";
    };

    backoff_max_seconds = mkOption {
      type = types.ints.between 0 (365 * 86400);
      default = 3600;
      description = "Upper bound, in seconds, of the wait between retries.";
    };

    timeout_seconds = mkOption {
      type = types.ints.between 0 (365 * 86400);
      default = 0;
      description = "Default time limit of a job, in seconds; `0` means no limit.";
    };

    lease_seconds = mkOption {
      type = types.ints.between 1 86400;
      default = 30;
      description = ''
        How long a worker's claim on a job lasts without renewal; a job
        whose worker died is picked up again after this.
      '';
    };

    kill_grace_seconds = mkOption {
      type = types.ints.between 0 3600;
      default = 10;
      description = ''
        Seconds between SIGTERM and SIGKILL when a job times out, is
        cancelled, or its worker stops.
      '';
    };

    concurrency = mkOption {
      type = types.ints.between 1 256;
      default = 1;
      example = 4;
      description = ''
        Jobs each worker instance runs at once (its slots). A worker claims
        as many jobs as it has free slots in one transaction and records
        finished ones together, so `workers = 2; concurrency = 4` runs up to
        eight jobs with two processes.
      '';
    };

    durability = mkOption {
      type = types.enum [
        "full"
        "normal"
      ];
      default = "full";
      description = ''
        SQLite synchronous mode: `full` survives power loss, `normal` is
        faster and may lose the last transactions on power loss.
      '';
    };

    retention_seconds = mkOption {
      type = types.ints.between 0 (100 * 365 * 86400);
      default = 604800;
      description = "How long finished jobs are kept, in seconds; `0` keeps them forever.";
    };

    supervisor = mkOption {
      type = types.enum [
        "auto"
        "systemd"
        "process"
      ];
      default = "auto";
      description = ''
        How `queuectl worker start` runs workers: as systemd units, as
        plain processes, or `auto` (systemd when it is available).
      '';
    };

    output = mkOption {
      type = types.enum [
        "auto"
        "journal"
        "file"
      ];
      default = "auto";
      description = ''
        Where job output goes: the journal (fields `QUEUECTL_JOB_ID`,
        `QUEUECTL_ATTEMPT`, `QUEUECTL_STREAM`), files in `logs/` beside the
        database, or `auto` (the journal when it is available).
      '';
    };
  };

  # The dashboard (`queuectl web`): the package's queuectl-web.socket and
  # queuectl-web.service, with drop-ins. systemd listens on web.listen and
  # starts the service on the first connection; the service keeps the
  # unit's sandbox (ProtectSystem=strict, no capabilities, ...).
  web = cfg.web;
  # ListenStream= forms: "ADDR:PORT", "[V6ADDR]:PORT", or "PORT" (every address).
  listenPattern = "(([0-9]{1,3}[.]){3}[0-9]{1,3}:|\\[[0-9A-Fa-f:.]+]:)?[1-9][0-9]{0,4}";
  webPort = builtins.fromJSON (builtins.elemAt (builtins.match "(.*:)?([1-9][0-9]*)" web.listen) 1);
  webLoopback = builtins.match "(127[.].*|\\[::1]):.*" web.listen != null;
  # Auth files reach the service as credentials: private copies in
  # $CREDENTIALS_DIRECTORY (%d), so the files may be readable by root only.
  webCredentials =
    lib.optional (web.authTokenFile != null) "web-auth-token:${web.authTokenFile}"
    ++ lib.optional (web.authBasicFile != null) "web-auth-basic:${web.authBasicFile}"
    ++ lib.optional (db.passwordFile != null) "${passwordCredential}:${db.passwordFile}";
  webCommand =
    "${cfg.package}/bin/queuectl web"
    + lib.optionalString web.allowActions " --allow-actions"
    + lib.optionalString (web.authTokenFile != null) " --auth-token-file %d/web-auth-token"
    + lib.optionalString (web.authBasicFile != null) " --auth-basic-file %d/web-auth-basic";
  webService = {
    overrideStrategy = "asDropin";
    environment = workerEnvironment;
    restartTriggers = [ configFile ];
    after = requiredUnits ++ wantedUnits;
    requires = requiredUnits;
    wants = wantedUnits;
    serviceConfig = {
      # The empty entry drops the package's ExecStart=.
      ExecStart = [
        ""
        webCommand
      ];
      User = cfg.user;
      Group = cfg.group;
      # As the workers: files it creates (SQLite's -shm and -wal) stay
      # usable by the group, and the state directory keeps its mode.
      UMask = "0007";
      StateDirectoryMode = "2770";
    }
    // stateDirectoryOverride
    # An SQLite reader in WAL mode must be able to create -shm and -wal when
    # no worker has the queue open (units/queuectl-web.service): the queue's
    # directory stays writable under ProtectSystem=strict.
    // lib.optionalAttrs (!usesPostgres) {
      ReadWritePaths = [ dbDir ];
    }
    // lib.optionalAttrs (webCredentials != [ ]) {
      LoadCredential = webCredentials;
    };
  };

  # The CLI refuses keys it does not know, so a key passed through the
  # freeform part (say, for a newer package) deserves a word at build time.
  unknownSettings = lib.filter (key: !(settingsOptions ? ${key})) (lib.attrNames cfg.settings);
in
{
  options.services.queuectl = {
    enable = mkEnableOption "queuectl, a background job runner with a SQLite or PostgreSQL queue";

    package = mkPackageOption pkgs "queuectl" { };

    workers = mkOption {
      type = types.ints.unsigned;
      default = 1;
      example = 4;
      description = ''
        Number of worker instances (`queuectl-worker@1.service` …
        `queuectl-worker@N.service`) that `queuectl-workers.target` starts at boot.
        `0` starts none: a host that only enqueues into a queue shared with
        workers elsewhere, or whose workers are started by hand.
        Lowering it does not stop instances that are already running: stop the
        extra ones with `systemctl stop queuectl-worker@N.service`.
      '';
    };

    queues = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            parallel = mkOption {
              type = types.nullOr types.ints.positive;
              default = null;
              example = 2;
              description = ''
                The most jobs of this queue running at once, across every
                worker of every host sharing the queue; `null`: no limit.
              '';
            };
            paused = mkOption {
              type = types.bool;
              default = false;
              description = "Start none of this queue's jobs (running ones go on).";
            };
          };
        }
      );
      default = { };
      example = literalExpression ''
        {
          emails.parallel = 2;
          reports.paused = true;
        }
      '';
      description = ''
        Named queues' settings, written to the config's `[queues.NAME]`
        tables; each worker writes them into the queue when it starts, so
        they hold for every host. As declared: a setting changed with
        `queuectl queue set` returns to this at the next worker start.
        Queues not named here keep what `queue set` gave them.
      '';
    };

    workerQueues = mkOption {
      type = types.attrsOf (types.listOf types.str);
      default = { };
      example = literalExpression ''
        {
          "1" = [ "emails" ];
          "2" = [ "reports" "default" ];
        }
      '';
      description = ''
        The queues a worker instance serves, by instance number
        (`queuectl-worker@N.service` gets `QUEUECTL_QUEUES`); instances not
        named serve every queue (or the settings' `worker_queues`).
      '';
    };

    schedules = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            onCalendar = mkOption {
              type = types.oneOf [
                types.str
                (types.listOf types.str)
              ];
              example = "Mon..Fri 02:00";
              description = ''
                When the job is enqueued: systemd calendar events
                ({manpage}`systemd.time(7)`), one or a list.
              '';
            };
            job = mkOption {
              type = types.submodule {
                options = {
                  command = mkOption {
                    type = types.str;
                    description = "The job's shell command line.";
                  };
                  queue = mkOption {
                    type = types.nullOr types.str;
                    default = null;
                    description = "The named queue it waits in (`default` when null).";
                  };
                  priority = mkOption {
                    type = types.nullOr types.int;
                    default = null;
                    description = "Priority: higher runs first (0 when null).";
                  };
                  max_retries = mkOption {
                    type = types.nullOr (types.ints.between 0 10000);
                    default = null;
                    description = "Retries after failed attempts (the settings' `max_retries` when null).";
                  };
                  timeout_seconds = mkOption {
                    type = types.nullOr (types.ints.between 0 (365 * 86400));
                    default = null;
                    description = "Time limit of an attempt (the settings' `timeout_seconds` when null).";
                  };
                  env_file = mkOption {
                    type = types.nullOr types.str;
                    default = null;
                    description = ''
                      Variables read when each attempt starts: an absolute
                      path, or the name of one of
                      {option}`services.queuectl.credentials`.
                    '';
                  };
                  cwd = mkOption {
                    type = types.nullOr (types.strMatching "/.+");
                    default = null;
                    description = "Working directory of the job.";
                  };
                  env = mkOption {
                    type = types.nullOr (types.attrsOf types.str);
                    default = null;
                    description = ''
                      Not allowed (an assertion fails): the Nix store and
                      /etc are world-readable. Use `env_file`.
                    '';
                  };
                };
              };
              description = "The job each elapse enqueues (the fields of `queuectl enqueue`).";
            };
            overlap = mkOption {
              type = types.enum [
                "skip"
                "queue"
                "replace"
              ];
              default = "skip";
              description = ''
                An elapse while the job of an earlier one is unfinished:
                `skip` enqueues nothing, `replace` updates the waiting job
                (skips while it runs), `queue` enqueues another.
              '';
            };
            persistent = mkOption {
              type = types.bool;
              default = false;
              description = "Fire once at boot for an elapse missed while the machine was off (`Persistent=`).";
            };
            randomizedDelaySec = mkOption {
              type = types.ints.unsigned;
              default = 0;
              description = "Delay each elapse by a random time up to this many seconds (`RandomizedDelaySec=`).";
            };
          };
        }
      );
      default = { };
      example = literalExpression ''
        {
          nightly = {
            onCalendar = "Mon..Fri 02:00";
            job = { command = "./backup.sh --full"; cwd = "/srv/app"; env_file = "backup-env"; };
            persistent = true;
          };
        }
      '';
      description = ''
        Recurring schedules: each becomes the timer and oneshot service
        `queuectl-schedule-<name>`, run as {option}`services.queuectl.user`,
        that writes the schedule into the queue and enqueues its job
        (docs/schedules.md). `queuectl schedule list` shows them;
        `schedule remove` refuses them (they are declared here).
      '';
    };

    user = mkOption {
      type = types.str;
      default = "queuectl";
      description = ''
        User the workers, and so the jobs, run as. If left at `queuectl`, the
        module creates it as a system user; any other user must be defined
        elsewhere in the configuration.
      '';
    };

    group = mkOption {
      type = types.str;
      default = "queuectl";
      description = ''
        Group that owns the queue's state directory. Members of this group can
        enqueue and inspect jobs with the `queuectl` CLI, since they can write
        the database and its WAL files. If left at `queuectl`, the module
        creates it; add users with `users.users.<name>.extraGroups`.
      '';
    };

    extraPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
      example = literalExpression "[ pkgs.curl pkgs.rsync ]";
      description = ''
        Packages added to the `PATH` of the workers, and so of the jobs'
        shell commands. NixOS services otherwise only get coreutils,
        findutils, grep, sed and systemd.
      '';
    };

    credentials = mkOption {
      type = types.attrsOf (types.strMatching "/.+");
      default = { };
      example = literalExpression ''
        {
          api-token = "/run/secrets/api-token";
        }
      '';
      description = ''
        Secrets for the jobs, kept out of the queue: each `name = path` becomes
        `LoadCredential=name:path` on the workers. systemd copies the file
        (readable by root only is enough) into the worker's private
        `$CREDENTIALS_DIRECTORY`, which jobs inherit: a job reads
        `"$CREDENTIALS_DIRECTORY/api-token"`, or, for a file of `KEY=VALUE`
        lines, is enqueued with `"env_file": "<name>"` to get them as its
        environment. See {manpage}`systemd.exec(5)`.
      '';
    };

    environmentFile = mkOption {
      # A string, not a path: a Nix path would copy the secret into the
      # world-readable store.
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/queuectl.env";
      description = ''
        A file of `NAME=value` lines (`EnvironmentFile=`) read by systemd as
        root when a worker starts; the workers and so every job get these
        variables. For secrets that every job needs, kept out of the Nix store
        and out of the queue: give the path as a string.
      '';
    };

    extraServiceConfig = mkOption {
      type = types.attrsOf (
        types.oneOf [
          types.bool
          types.int
          types.str
          (types.listOf types.str)
        ]
      );
      default = { };
      example = literalExpression ''
        {
          ProtectSystem = false; # jobs write to /usr/local
          PrivateTmp = true; # jobs need no shared /tmp
          MemoryMax = "4G";
        }
      '';
      description = ''
        Extra `[Service]` settings for `queuectl-worker@.service`, added to the
        drop-in after the module's own. Use it to change the default hardening
        (`ProtectSystem=full`; `NoNewPrivileges` and `PrivateTmp` off so that
        jobs can use `sudo` and the host's `/tmp`), or to add resource limits.
        The hardening defaults are `mkDefault`, so
        `systemd.services."queuectl-worker@".serviceConfig` works too, without
        `mkForce`. See {manpage}`systemd.exec(5)`.
      '';
    };

    database = {
      url = mkOption {
        type = types.nullOr (
          types.strMatching "postgres(ql)?://.+|[[:space:]]*[a-z_]+[[:space:]]*=.*"
        );
        default = null;
        example = "postgresql://queuectl@db.example.org/queuectl?sslmode=verify-full";
        description = ''
          The PostgreSQL database of a queue shared by many hosts: a
          `postgres://`/`postgresql://` URL or `key=value` conninfo, written
          as `db_path` to the config. `null` (the default) keeps the SQLite
          queue of `settings.db_path`. Never put a password in it (it would
          be world-readable): use
          {option}`services.queuectl.database.passwordFile`, or a
          `.pgpass` file in the workers' home, `/var/lib/queuectl`.
          Workers then start after `network-online.target`.
        '';
      };

      createLocally = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether to run the queue in a PostgreSQL server on this host:
          enables {option}`services.postgresql` with a database
          {option}`services.queuectl.database.name` owned by a role named
          after {option}`services.queuectl.user`, which the workers reach
          over the unix socket with peer authentication (no password).
          root and the members of {option}`services.queuectl.group` reach
          it the same way, through an ident map. Workers on other hosts can
          share the queue through {option}`services.queuectl.database.url`
          once the server accepts them (`services.postgresql.enableTCPIP`,
          `authentication`, a password for the role).
        '';
      };

      name = mkOption {
        type = types.str;
        default = "queuectl";
        description = ''
          Name of the database {option}`services.queuectl.database.createLocally`
          creates. `ensureDBOwnership` gives the role the database of its own
          name, so this must equal {option}`services.queuectl.user`.
        '';
      };

      passwordFile = mkOption {
        # A string, not a path: a Nix path would copy the secret into the
        # world-readable store.
        type = types.nullOr (types.strMatching "/.+");
        default = null;
        example = "/run/secrets/queuectl-db-password";
        description = ''
          A file holding only the database password, for
          {option}`services.queuectl.database.url`. The workers get a private
          copy as the systemd credential `db-password`
          (`LoadCredential=`, so the file may be readable by root only) and
          `QUEUECTL_DB_PASSWORD_FILE=db-password`; the CLI reads the file
          itself (`QUEUECTL_DB_PASSWORD_FILE` is set for every shell), which
          works for whoever may read it. Give the path as a string: it is
          never copied into the Nix store.
        '';
      };
    };

    settings = mkOption {
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = settingsOptions;
      };
      default = { };
      example = literalExpression ''
        {
          max_retries = 5;
          timeout_seconds = 600;
          output = "journal";
        }
      '';
      description = ''
        Configuration of queuectl, written to `${configPath}` (TOML). The
        options below are the keys the CLI knows, with its defaults and
        ranges. Other keys are passed through as they are, with a warning:
        the CLI refuses keys it does not know.
      '';
    };
    web = {
      enable = mkEnableOption ''
        the web dashboard and Prometheus `/metrics` (`queuectl web`),
        socket-activated: systemd listens on
        {option}`services.queuectl.web.listen` and starts
        `queuectl-web.service` on the first request, as
        {option}`services.queuectl.user`, sandboxed (read-only system, no
        capabilities, private /tmp and /dev; only the queue's directory
        writable). Needs {option}`services.queuectl.enable`
      '';

      listen = mkOption {
        type = types.strMatching listenPattern;
        default = "127.0.0.1:9750";
        example = "0.0.0.0:9750";
        description = ''
          Where the socket listens (`ListenStream=`): `ADDRESS:PORT`,
          `[IPV6]:PORT`, or a bare `PORT` for every address. Beyond
          loopback, set an auth file.
        '';
      };

      allowActions = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether the dashboard offers retry, cancel, restart and purge
          (`--allow-actions`, POSTs with a CSRF token). Off: read-only, every
          action answers 403.
        '';
      };

      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether to open the port of {option}`services.queuectl.web.listen`
          in the firewall. Needs an auth file and a non-loopback address.
        '';
      };

      authTokenFile = mkOption {
        # A string, not a path: a Nix path would copy the secret into the
        # world-readable store.
        type = types.nullOr (types.strMatching "/.+");
        default = null;
        example = "/run/secrets/queuectl-web-token";
        description = ''
          A file holding one line, the token clients send as
          `Authorization: Bearer <token>` (Prometheus: `authorization`
          with `credentials_file`). The service gets a private copy as a
          systemd credential, so the file may be readable by root only.
          Give the path as a string: it is never copied into the Nix store.
        '';
      };

      authBasicFile = mkOption {
        type = types.nullOr (types.strMatching "/.+");
        default = null;
        example = "/run/secrets/queuectl-web-basic";
        description = ''
          A file holding one `user:password` line for HTTP basic auth,
          passed like {option}`services.queuectl.web.authTokenFile`.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = badCredentialNames == [ ];
        message = "services.queuectl.credentials: names may hold only letters, digits and _.@- (not ${lib.concatStringsSep ", " badCredentialNames})";
      }
      {
        assertion = badQueueNames == [ ];
        message = "services.queuectl.queues and workerQueues: queue names are 1 to 64 letters, digits and ._- starting with a letter or digit (not ${lib.concatStringsSep ", " badQueueNames})";
      }
      {
        assertion =
          badWorkerInstances == [ ] && builtins.all (qs: qs != [ ]) (builtins.attrValues cfg.workerQueues);
        message = "services.queuectl.workerQueues: keys are instance numbers (1, 2, ...) and each names at least one queue";
      }
      {
        assertion = badScheduleNames == [ ];
        message = "services.queuectl.schedules: names are 1 to 64 letters, digits, _ and - starting with a letter or digit, since they name unit files (not ${lib.concatStringsSep ", " badScheduleNames})";
      }
      {
        assertion = schedulesWithEnv == [ ];
        message = "services.queuectl.schedules.<name>.job.env is not allowed: the Nix store and /etc are world-readable. Use job.env_file (a path, or a name of services.queuectl.credentials) instead (set in: ${lib.concatStringsSep ", " schedulesWithEnv})";
      }
      {
        assertion = !(db.createLocally && db.url != null);
        message = "services.queuectl.database: set either createLocally (a PostgreSQL server on this host) or url (a database elsewhere), not both.";
      }
      {
        assertion = db.passwordFile != null -> db.url != null;
        message = "services.queuectl.database.passwordFile needs services.queuectl.database.url (createLocally uses peer authentication over the unix socket, without a password).";
      }
      {
        # Never the URL itself in the message: it holds the password.
        assertion = db.url == null || !(urlHasPassword db.url);
        message = "services.queuectl.database.url must not contain a password: it would be world-readable in the Nix store and /etc/queuectl/config.toml. Put the password alone in a file and set services.queuectl.database.passwordFile to its path.";
      }
      {
        assertion = db.createLocally -> db.name == cfg.user;
        message = "services.queuectl.database.name (${db.name}) must equal services.queuectl.user (${cfg.user}) with createLocally: services.postgresql.ensureDBOwnership gives a role the database of its own name.";
      }
      {
        assertion = usesPostgres -> cfg.settings.db_path == sqliteDefault;
        message = "services.queuectl.settings.db_path is the SQLite file; with services.queuectl.database.url or createLocally the queue is in PostgreSQL: leave db_path unset.";
      }
      {
        assertion = !(web.authTokenFile != null && web.authBasicFile != null);
        message = "services.queuectl.web: set authTokenFile or authBasicFile, not both.";
      }
      {
        # `queuectl web` refuses to serve such an address without auth.
        assertion = !webLoopback -> (web.authTokenFile != null || web.authBasicFile != null);
        message = "services.queuectl.web.listen (${web.listen}) is reachable from other hosts: set services.queuectl.web.authTokenFile or authBasicFile (queuectl web refuses to serve it without authentication).";
      }
      {
        assertion = web.openFirewall -> (web.authTokenFile != null || web.authBasicFile != null);
        message = "services.queuectl.web.openFirewall shows the queue (job commands, output, errors) to the network: set services.queuectl.web.authTokenFile or authBasicFile.";
      }
      {
        assertion = web.openFirewall -> !webLoopback;
        message = "services.queuectl.web.openFirewall: listen (${web.listen}) is a loopback address, which no other host reaches; listen on e.g. 0.0.0.0:${toString webPort}.";
      }
      {
        assertion = webPort <= 65535;
        message = "services.queuectl.web.listen: port ${toString webPort} is above 65535.";
      }
      {
        assertion = !(db.passwordFile != null && cfg.credentials ? ${passwordCredential});
        message = "services.queuectl.credentials: the name ${passwordCredential} is taken by services.queuectl.database.passwordFile.";
      }
    ];

    warnings = lib.optional (unknownSettings != [ ]) (
      "services.queuectl.settings: ${lib.concatStringsSep ", " unknownSettings} not known to this module. "
      + "queuectl refuses keys it does not know: the workers will not start unless "
      + "services.queuectl.package is a version that knows them."
    );

    environment.systemPackages = [ cfg.package ];
    # Shells (interactive or not, login or not), PAM sessions (ssh, su, cron)
    # and every systemd service.
    environment.variables = queuectlEnvironment;
    environment.sessionVariables = queuectlEnvironment;
    systemd.globalEnvironment = queuectlEnvironment;
    environment.etc = {
      "queuectl/config.toml".source = configFile;
    }
    // scheduleSpecs;
    systemd.timers = scheduleTimers;

    # Installs queuectl-worker@.service and queuectl-workers.target, for the
    # system and the user manager, as the package ships them.
    systemd.packages = [ cfg.package ];

    # The template, and a drop-in for each instance restricted to some queues.
    systemd.services =
      instanceQueueDropIns
      // scheduleServices
      // lib.optionalAttrs web.enable { queuectl-web = webService; }
      // {
      "queuectl-worker@" = {
      overrideStrategy = "asDropin";
      environment = workerEnvironment;
      path = cfg.extraPackages;
      restartTriggers = [ configFile ];
      after = requiredUnits ++ wantedUnits;
      requires = requiredUnits;
      wants = wantedUnits;
      serviceConfig = {
        User = cfg.user;
        Group = cfg.group;
        # Group members open the database too: keep it, its WAL and SHM files
        # and the job logs group-writable, and (setgid) owned by the group
        # whoever creates them.
        StateDirectoryMode = "2770";
        UMask = "0007";
      }
      // stateDirectoryOverride
      // lib.optionalAttrs (loadCredentials != [ ]) {
        LoadCredential = loadCredentials;
      }
      // lib.optionalAttrs (cfg.environmentFile != null) {
        EnvironmentFile = cfg.environmentFile;
      }
      // hardening
      // cfg.extraServiceConfig;
      };
    };

    # The package's socket, listening where web.listen says, started at boot.
    systemd.sockets = lib.optionalAttrs web.enable {
      queuectl-web = {
        overrideStrategy = "asDropin";
        wantedBy = [ "sockets.target" ];
        # The empty entry drops the package's ListenStream=.
        listenStreams = [
          ""
          web.listen
        ];
      };
    };

    networking.firewall.allowedTCPPorts = mkIf (web.enable && web.openFirewall) [ webPort ];

    systemd.targets.queuectl-workers = {
      overrideStrategy = "asDropin";
      wantedBy = [ "multi-user.target" ];
      wants = map workerInstance (lib.range 1 cfg.workers);
    };

    # The database's directory exists from boot on, with the owner and mode
    # that StateDirectory= gives it, so the CLI works before the first worker
    # starts, and wherever db_path points.
    systemd.tmpfiles.rules = [ "d ${dbDir} 2770 ${cfg.user} ${cfg.group} - -" ];

    users.users = mkIf (cfg.user == "queuectl") {
      queuectl = {
        isSystemUser = true;
        group = cfg.group;
        home = dbDir;
        description = "queuectl worker";
      };
    };

    users.groups = mkIf (cfg.group == "queuectl") { queuectl = { }; };

    # As nixpkgs modules create their database (miniflux, nextcloud, ...).
    services.postgresql = mkIf db.createLocally {
      enable = true;
      ensureDatabases = [ db.name ];
      ensureUsers = [
        {
          name = cfg.user;
          ensureDBOwnership = true;
        }
      ];
      # Above the default rules: root and the group's members may connect
      # to the queue's database as the workers' role; anyone else only as
      # themselves (the default `local all all peer`).
      authentication = "local ${db.name} ${cfg.user} peer map=${identMapName}\n";
      identMap = lib.concatMapStrings (user: "${identMapName} ${user} ${cfg.user}\n") queueUsers;
    };
  };
}
