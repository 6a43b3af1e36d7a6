# queuectl, built from the committed Cargo.lock. Called by the flake's overlay
# (final.callPackage ./nix/package.nix { }); nix/tests/eval-package.nix
# evaluates it offline.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;

  # Installed for the system and the user manager alike.
  unitFiles = [
    "queuectl-worker@.service"
    "queuectl-workers.target"
    "queuectl-web.socket"
    "queuectl-web.service"
  ];
  # The unit files that run the binary: their ExecStart= is rewritten.
  serviceFiles = builtins.filter (f: builtins.match ".*\\.service" f != null) unitFiles;

  # Completions and the man pages come from running the binary.
  canRunBinary = stdenv.buildPlatform.canExecute stdenv.hostPlatform;
in
rustPlatform.buildRustPackage {
  pname = "queuectl";
  inherit (cargoToml.package) version;

  # Only what cargo and postInstall read, so editing Nix files or docs does
  # not rebuild the package.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions (
      [
        ../Cargo.toml
        ../Cargo.lock
        ../LICENSE
        ../src
        ../units
        # The benchmark, a workspace member: queuectl-bench, installed beside
        # queuectl (which `queuectl bench` runs).
        ../bench/Cargo.toml
        ../bench/src
        # tiny_http, patched (Cargo.toml's [patch.crates-io]).
        ../vendor
      ]
      ++ map lib.fileset.maybeMissing [
        ../.cargo
        ../build.rs
        ../benches
        ../examples
        ../tests
        ../bench/tests
        # tests/it/fuzz_regressions.rs compiles the fuzz properties and replays these.
        ../fuzz/src
        ../fuzz/inputs
        ../README.md
      ]
    );
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ installShellFiles ];

  # Only the unit tests run here. The integration tests (tests/) drive the
  # built binary under a private systemd manager, which the build sandbox does
  # not have (they skip there unless CI=true); they run in the project's CI,
  # and the NixOS VM test (nix/vm-test.nix) covers the packaged units.
  cargoTestFlags = lib.optionals (builtins.pathExists ../src/lib.rs) [ "--lib" ] ++ [ "--bins" ];

  postInstall = ''
    # MIT: the notice travels with every copy.
    install -Dm644 -t $out/share/doc/queuectl LICENSE
    for dir in system user; do
      install -Dm644 -t $out/lib/systemd/$dir ${lib.concatMapStringsSep " " (f: "units/${f}") unitFiles}
      # The unit files name the FHS path; point them at this store path.
      for unit in ${lib.concatStringsSep " " serviceFiles}; do
        substituteInPlace $out/lib/systemd/$dir/$unit \
          --replace-fail /usr/bin/queuectl $out/bin/queuectl
      done
    done
  ''
  + lib.optionalString canRunBinary ''
    # The scripts call $out/bin/queuectl back for job ids, states and keys.
    installShellCompletion --cmd queuectl \
      --bash <($out/bin/queuectl completions bash) \
      --fish <($out/bin/queuectl completions fish) \
      --zsh <($out/bin/queuectl completions zsh)
    # queuectl.1 and one page per subcommand (queuectl-worker-start.1, ...).
    mkdir man-pages
    $out/bin/queuectl man --dir man-pages
    installManPage man-pages/*.1
  '';

  passthru = {
    # Read by nix/tests/eval-package.nix.
    inherit unitFiles;
  };

  meta = {
    # nixpkgs style: no leading article.
    description = lib.removePrefix "A " cargoToml.package.description;
    # As Cargo.toml's `license` and the LICENSE file.
    license = lib.licenses.mit;
    mainProgram = "queuectl";
    platforms = lib.platforms.linux;
  };
}
