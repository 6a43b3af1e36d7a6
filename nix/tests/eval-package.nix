# Offline check of nix/package.nix and of the files its build reads, against
# the stand-in lib in ./stand-in.nix (not nixpkgs). `buildRustPackage` is
# replaced by the identity, so what is checked is the arguments the real one
# would get; `src` (lib.fileset) is not evaluated. Run:
#   nix-instantiate --eval --strict nix/tests/eval-package.nix
let
  standIn = import ./stand-in.nix;
  inherit (standIn) lib;

  callPackage =
    canExecute:
    import ../package.nix {
      inherit lib;
      stdenv = {
        buildPlatform.canExecute = _: canExecute;
        hostPlatform = { };
      };
      rustPlatform.buildRustPackage = args: args; # stand-in: the arguments themselves
      installShellFiles = "installShellFiles (stand-in)";
    };

  native = callPackage true;
  cross = callPackage false;

  cargoToml = builtins.fromTOML (builtins.readFile ../../Cargo.toml);

  contains = needle: haystack: builtins.length (builtins.split (escapeRegex needle) haystack) > 1;
  # As lib.strings.escapeRegex: the POSIX extended-regex specials.
  regexSpecials = [ "\\" "[" "{" "(" ")" "^" "$" "?" "*" "+" "|" "." ];
  escapeRegex = builtins.replaceStrings regexSpecials (map (c: "\\${c}") regexSpecials);
  # A unit file's text, or null when it is missing (reported as a failed check).
  unitText = name: if builtins.pathExists (unitPath name) then builtins.readFile (unitPath name) else null;

  unitPath = name: ../../units + "/${name}";
  services = builtins.filter (n: builtins.match ".*\\.service" n != null) native.passthru.unitFiles;

  checks = {
    "pname is queuectl" = native.pname == "queuectl";
    "version comes from Cargo.toml" = native.version == cargoToml.package.version;
    "built from the committed Cargo.lock" =
      native.cargoLock.lockFile == ../../Cargo.lock && builtins.pathExists ../../Cargo.lock;

    "unit files exist in units/" = builtins.all (n: builtins.pathExists (unitPath n)) native.passthru.unitFiles;
    "unit files include the worker template and the target" =
      builtins.elem "queuectl-worker@.service" native.passthru.unitFiles
      && builtins.elem "queuectl-workers.target" native.passthru.unitFiles;
    "unit files include the dashboard's socket and service" =
      builtins.elem "queuectl-web.socket" native.passthru.unitFiles
      && builtins.elem "queuectl-web.service" native.passthru.unitFiles;
    "every file in units/ is installed" =
      builtins.sort builtins.lessThan (builtins.attrNames (builtins.readDir ../../units))
      == builtins.sort builtins.lessThan native.passthru.unitFiles;
    # substituteInPlace --replace-fail fails the build if the pattern is absent.
    "service ExecStart names /usr/bin/queuectl (--replace-fail will match)" = builtins.all (
      n: unitText n != null && contains "ExecStart=/usr/bin/queuectl " (unitText n)
    ) services;
    "service is Type=notify" = builtins.all (
      n: unitText n != null && contains "Type=notify" (unitText n)
    ) services;

    "units installed for the system and the user manager" =
      contains "for dir in system user; do" native.postInstall
      && contains "install -Dm644 -t $out/lib/systemd/$dir units/queuectl-worker@.service units/queuectl-workers.target units/queuectl-web.socket units/queuectl-web.service" native.postInstall;
    "ExecStart rewritten to the store path in every service" =
      contains "for unit in queuectl-worker@.service queuectl-web.service; do" native.postInstall
      && contains "substituteInPlace $out/lib/systemd/$dir/$unit" native.postInstall
      && contains "--replace-fail /usr/bin/queuectl $out/bin/queuectl" native.postInstall;
    "completions and every man page installed" =
      contains "installShellCompletion --cmd queuectl" native.postInstall
      && contains "--bash <($out/bin/queuectl completions bash)" native.postInstall
      && contains "--zsh <($out/bin/queuectl completions zsh)" native.postInstall
      && contains "--fish <($out/bin/queuectl completions fish)" native.postInstall
      && contains "$out/bin/queuectl man --dir man-pages" native.postInstall
      && contains "installManPage man-pages/*.1" native.postInstall;
    "cross builds skip running the binary" =
      !(contains "queuectl completions" cross.postInstall) && contains "--replace-fail" cross.postInstall;
    "installShellFiles is a build input" = native.nativeBuildInputs == [ "installShellFiles (stand-in)" ];

    "only unit tests run in the sandbox" =
      native.cargoTestFlags
      == (if builtins.pathExists ../../src/lib.rs then [ "--lib" "--bins" ] else [ "--bins" ]);

    "meta follows Cargo.toml" =
      builtins.elem cargoToml.package.description [
        native.meta.description
        "A ${native.meta.description}"
      ]
      && builtins.substring 0 2 native.meta.description != "A "
      && native.meta.license.spdxId == cargoToml.package.license;
    "LICENSE at the root is the MIT text meta.license declares" =
      builtins.pathExists ../../LICENSE
      && builtins.substring 0 12 (builtins.readFile ../../LICENSE) == "MIT License\n"
      && native.meta.license == lib.licenses.mit
      && cargoToml.package.license == "MIT";
    "LICENSE installed with the package" =
      contains "install -Dm644 -t $out/share/doc/queuectl LICENSE" native.postInstall;
    "meta.mainProgram" = native.meta.mainProgram == "queuectl";
    "Linux only" = native.meta.platforms == lib.platforms.linux;
  };

in
standIn.report "eval-package" checks
