# Offline check of nix/module.nix, evaluated against the stand-in lib and pkgs
# in ./stand-in.nix (not nixpkgs). Run:
#   nix-instantiate --eval --strict nix/tests/eval-module.nix
# Prints a summary string; throws (non-zero exit) naming every failed check.
let
  standIn = import ./stand-in.nix;
  module = import ../module.nix;

  eval =
    defined:
    standIn.evalModule {
      inherit module;
      defined.services.queuectl = defined;
    };

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
      NoNewPrivileges = false;
      MemoryMax = "2G";
    };
  };

  contains = needle: haystack: builtins.length (builtins.split needle haystack) > 1;
  lines = text: builtins.filter builtins.isString (builtins.split "\n" text);

  # Forces a whole evaluation; true when it throws (a rejected configuration).
  rejects =
    defined:
    let
      r = eval defined;
    in
    !(builtins.tryEval (builtins.deepSeq r.options (builtins.deepSeq r.config true))).success;

  checks = {
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
    "drop-in hardening defaults" =
      worker.serviceConfig.NoNewPrivileges
      && worker.serviceConfig.PrivateTmp
      && worker.serviceConfig.ProtectSystem == "full";
    "workers restart when the config changes" = worker.restartTriggers == [ configFile ];
    "extraServiceConfig overrides hardening" =
      let
        s = relaxed.config.systemd.services."queuectl-worker@".serviceConfig;
      in
      s.ProtectSystem == false && s.NoNewPrivileges == false && s.MemoryMax == "2G" && s.UMask == "0007";
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
    "login shells get QUEUECTL_CONFIG" =
      c.environment.sessionVariables.QUEUECTL_CONFIG == "/etc/queuectl/config.toml";
    "login shells get QUEUECTL_UNITS_MANAGED" = c.environment.sessionVariables.QUEUECTL_UNITS_MANAGED == "1";

    # -- user, group, state directory --
    "static system user (not DynamicUser)" =
      c.users.users.queuectl.isSystemUser
      && c.users.users.queuectl.group == "queuectl"
      && !(worker.serviceConfig.DynamicUser or false);
    "group created" = c.users.groups ? queuectl;
    "state directory owner and mode at boot" =
      c.systemd.tmpfiles.rules == [ "d /var/lib/queuectl 2770 queuectl queuectl - -" ];
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

    # -- disabled means nothing --
    "disabled module configures nothing" = (eval { }).config == { };

    # -- option types reject bad values --
    "rejects workers = 0" = rejects {
      enable = true;
      workers = 0;
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
    "accepts an integer backoff_base" =
      !(rejects {
        enable = true;
        settings.backoff_base = 3;
      });
  };

in
standIn.report "eval-module" checks
