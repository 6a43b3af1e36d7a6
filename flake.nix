{
  description = "queuectl: a systemd-native background job runner with a SQLite or PostgreSQL queue";

  # A release branch, not unstable: updates bring fixes, not breaking changes.
  # flake.lock is not committed yet; `nix flake lock` (or the first
  # `nix build`/`nix flake check`) writes it, and that file should be committed.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];

      # nixpkgs for each system, with queuectl added by our overlay.
      forAllSystems =
        f: lib.genAttrs systems (system: f (nixpkgs.legacyPackages.${system}.extend self.overlays.default));
    in
    {
      overlays.default = final: prev: {
        queuectl = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: {
        default = pkgs.queuectl;
        queuectl = pkgs.queuectl;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe pkgs.queuectl;
          meta.description = "queuectl CLI";
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.sqlite # sqlite3, to look inside a queue database
            pkgs.systemd # systemctl, journalctl, systemd-analyze
            pkgs.jq
            pkgs.nixfmt
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);

      # The module, with the package defaulting to this flake's build, so it
      # works without adding the overlay.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.queuectl.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      checks = forAllSystems (pkgs: {
        package = pkgs.queuectl;

        vm-test = pkgs.testers.runNixOSTest (
          import ./nix/vm-test.nix { queuectlModule = self.nixosModules.default; }
        );

        # Two hosts, one queue in PostgreSQL: createLocally on one, url and
        # passwordFile on the other.
        vm-test-postgresql = pkgs.testers.runNixOSTest (
          import ./nix/vm-test-postgresql.nix { queuectlModule = self.nixosModules.default; }
        );

        # The offline checks that ci/nix-check.sh runs, here against real Nix.
        eval =
          pkgs.runCommand "queuectl-nix-eval"
            {
              nativeBuildInputs = [ pkgs.nix ];
              src = self;
            }
            ''
              # A throwaway Nix state, as nixpkgs' lib tests set up in the sandbox.
              export HOME=$(mktemp -d) TEST_ROOT=$(pwd)/test-tmp NIX_BUILD_HOOK= PAGER=cat
              export NIX_CONF_DIR=$TEST_ROOT/etc NIX_LOCALSTATE_DIR=$TEST_ROOT/var
              export NIX_LOG_DIR=$TEST_ROOT/var/log/nix NIX_STATE_DIR=$TEST_ROOT/var/nix
              export NIX_STORE_DIR=$TEST_ROOT/store
              nix-store --init
              cd $src
              for t in nix/tests/eval-*.nix; do
                nix-instantiate --eval --strict "$t"
              done
              touch $out
            '';
      });
    };
}
