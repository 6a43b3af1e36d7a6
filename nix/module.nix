# NixOS module: services.queuectl
#
# The workers run from the unit files the package installs (systemd.packages);
# this module only adds drop-ins, so what NixOS runs is what the systemd tests
# exercise. nix/tests/eval-module.nix evaluates this file offline.
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
  configFile = settingsFormat.generate "queuectl-config.toml" cfg.settings;

  # Fixed by StateDirectory=queuectl and ConfigurationDirectory=queuectl in the unit.
  stateDir = "/var/lib/queuectl";
  configPath = "/etc/queuectl/config.toml";

  # Set for the workers and for login shells, so the CLI run by a member of
  # the group reads the same config (and so opens the same database) as the workers.
  queuectlEnvironment = {
    QUEUECTL_CONFIG = configPath;
    # The units come from the package and /etc is read-only: `queuectl worker
    # start/stop` must only start and stop instances, never install unit files.
    QUEUECTL_UNITS_MANAGED = "1";
  };

  # Jobs are arbitrary shell commands, so only settings that rarely get in a
  # job's way; extraServiceConfig overrides any of them.
  hardening = {
    NoNewPrivileges = true;
    PrivateTmp = true;
    ProtectSystem = "full";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    LockPersonality = true;
  };

  workerInstance = n: "queuectl-worker@${toString n}.service";

  # The keys the CLI knows, with its defaults and the ranges it accepts.
  settingsOptions = {
    db_path = mkOption {
      # Absolute: the workers' working directory is not the user's.
      type = types.strMatching "/.+";
      default = "${stateDir}/queue.db";
      description = ''
        Path of the SQLite database. Job log files go in `logs/` beside it.
        The default lies in the state directory that systemd creates for
        the workers; a path elsewhere must be created and shared by hand.
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
        Where job output goes: the journal (fields `JOB_ID`,
        `JOB_ATTEMPT`, `JOB_STREAM`), files in `logs/` beside the
        database, or `auto` (the journal when it is available).
      '';
    };
  };

  # The CLI refuses keys it does not know, so a key passed through the
  # freeform part (say, for a newer package) deserves a word at build time.
  unknownSettings = lib.filter (key: !(settingsOptions ? ${key})) (lib.attrNames cfg.settings);
in
{
  options.services.queuectl = {
    enable = mkEnableOption "queuectl, a background job runner with a SQLite queue";

    package = mkPackageOption pkgs "queuectl" { };

    workers = mkOption {
      type = types.ints.positive;
      default = 1;
      example = 4;
      description = ''
        Number of worker instances (`queuectl-worker@1.service` …
        `queuectl-worker@N.service`) that `queuectl-workers.target` starts at boot.
        Lowering it does not stop instances that are already running: stop the
        extra ones with `systemctl stop queuectl-worker@N.service`.
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
          NoNewPrivileges = false; # jobs use sudo
          MemoryMax = "4G";
        }
      '';
      description = ''
        Extra `[Service]` settings for `queuectl-worker@.service`, added to the
        drop-in after the module's own. Use it to relax the default hardening
        (`NoNewPrivileges`, `PrivateTmp`, `ProtectSystem=full`,
        `ProtectKernelTunables`, `ProtectKernelModules`, `LockPersonality`)
        when jobs need more, or to add resource limits. See
        {manpage}`systemd.exec(5)`.
      '';
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
  };

  config = mkIf cfg.enable {
    warnings = lib.optional (unknownSettings != [ ]) (
      "services.queuectl.settings: ${lib.concatStringsSep ", " unknownSettings} not known to this module. "
      + "queuectl refuses keys it does not know: the workers will not start unless "
      + "services.queuectl.package is a version that knows them."
    );

    environment.systemPackages = [ cfg.package ];
    environment.sessionVariables = queuectlEnvironment;
    environment.etc."queuectl/config.toml".source = configFile;

    # Installs queuectl-worker@.service and queuectl-workers.target, for the
    # system and the user manager, as the package ships them.
    systemd.packages = [ cfg.package ];

    systemd.services."queuectl-worker@" = {
      overrideStrategy = "asDropin";
      environment = queuectlEnvironment;
      path = cfg.extraPackages;
      restartTriggers = [ configFile ];
      serviceConfig = {
        User = cfg.user;
        Group = cfg.group;
        # Group members open the database too: keep it, its WAL and SHM files
        # and the job logs group-writable, and (setgid) owned by the group
        # whoever creates them.
        StateDirectoryMode = "2770";
        UMask = "0007";
      }
      // hardening
      // cfg.extraServiceConfig;
    };

    systemd.targets.queuectl-workers = {
      overrideStrategy = "asDropin";
      wantedBy = [ "multi-user.target" ];
      wants = map workerInstance (lib.range 1 cfg.workers);
    };

    # The directory exists from boot on, with the same owner and mode that
    # StateDirectory= gives it, so the CLI works before the first worker starts.
    systemd.tmpfiles.rules = [ "d ${stateDir} 2770 ${cfg.user} ${cfg.group} - -" ];

    users.users = mkIf (cfg.user == "queuectl") {
      queuectl = {
        isSystemUser = true;
        group = cfg.group;
        home = stateDir;
        description = "queuectl worker";
      };
    };

    users.groups = mkIf (cfg.group == "queuectl") { queuectl = { }; };
  };
}
