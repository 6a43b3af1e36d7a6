# Offline check of flake.nix's shape: its nixpkgs input and the names of its
# outputs. The nixpkgs input is a stand-in (./stand-in.nix) whose packages
# throw when used, so this only checks what can be known without nixpkgs;
# `nix flake check` evaluates and builds the outputs for real. Run:
#   nix-instantiate --eval --strict nix/tests/eval-flake.nix
let
  standIn = import ./stand-in.nix;
  flake = import ../../flake.nix;

  systems = [
    "aarch64-linux"
    "x86_64-linux"
  ];

  # Stand-in for the nixpkgs flake input: lib.genAttrs and lib.getExe only;
  # package sets are never forced by these checks.
  nixpkgs = {
    lib = {
      genAttrs =
        names: f:
        builtins.listToAttrs (
          map (name: {
            inherit name;
            value = f name;
          }) names
        );
      getExe = _: throw "stand-in: lib.getExe needs nixpkgs";
    };
    legacyPackages = nixpkgs.lib.genAttrs systems (
      system: throw "stand-in: nixpkgs.legacyPackages.${system} is not available offline"
    );
  };

  outputs = flake.outputs {
    self = outputs;
    inherit nixpkgs;
  };

  names = builtins.attrNames;

  # The overlay, applied to a package set whose callPackage only records its call.
  overlaid = outputs.overlays.default {
    callPackage = path: args: {
      calledPath = path;
      calledArgs = args;
    };
  } { };

  checks = {
    "nixpkgs input is a release branch" =
      builtins.match "github:NixOS/nixpkgs/nixos-[0-9][0-9]\\.(05|11)" flake.inputs.nixpkgs.url != null;
    "only nixpkgs as input" = names flake.inputs == [ "nixpkgs" ];
    "outputs" =
      names outputs == [
        "apps"
        "checks"
        "devShells"
        "formatter"
        "nixosModules"
        "overlays"
        "packages"
      ];
    "packages per Linux system" =
      names outputs.packages == systems
      && builtins.all (s: names outputs.packages.${s} == [ "default" "queuectl" ]) systems;
    "apps.default per system" = builtins.all (s: names outputs.apps.${s} == [ "default" ]) systems;
    "apps.default is an app" = builtins.all (s: outputs.apps.${s}.default.type == "app") systems;
    "devShells.default per system" = builtins.all (s: names outputs.devShells.${s} == [ "default" ]) systems;
    "formatter per system" = names outputs.formatter == systems;
    "checks: package, VM tests (SQLite, PostgreSQL), offline eval" = builtins.all (
      s:
      names outputs.checks.${s} == [
        "eval"
        "package"
        "vm-test"
        "vm-test-postgresql"
      ]
    ) systems;
    "nixosModules.default imports nix/module.nix, package defaults to this flake's" =
      let
        m = outputs.nixosModules.default {
          lib.mkDefault = content: {
            _type = "override";
            priority = 1000; # as lib.mkDefault
            inherit content;
          };
          pkgs.stdenv.hostPlatform.system = "x86_64-linux";
        };
      in
      m.imports == [ ../module.nix ]
      && names m.services.queuectl == [ "package" ]
      && m.services.queuectl.package.priority == 1000;
    "overlay adds queuectl from nix/package.nix" =
      names overlaid == [ "queuectl" ]
      && overlaid.queuectl.calledPath == ../package.nix
      && overlaid.queuectl.calledArgs == { };
  };

in
standIn.report "eval-flake" checks
