#!/usr/bin/env bash
# Offline checks of the Nix packaging (flake.nix, nix/). Needs only
# nix-instantiate (Debian's nix-bin): no nixpkgs, no binary cache, no daemon.
#   - every .nix file parses;
#   - nix/tests/eval-{module,package,flake}.nix evaluate against the stand-in
#     lib in nix/tests/stand-in.nix and assert on what they produce;
#   - the VM tests' Python scripts compile;
#   - with QUEUECTL_BIN set (the binary under test, as for the integration
#     tests): the CLI accepts the config.toml the module writes.
# The package build and the VM test need a real Nix: `nix flake check`.
# Usage: ci/nix-check.sh   (from anywhere; installs nix-bin with apt if missing,
# which needs root, as in CI)
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v nix-instantiate >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "nix-check: nix-instantiate not found; install Debian's nix-bin (as root: apt-get install nix-bin)" >&2
    exit 1
  fi
  echo "nix-check: installing nix-bin"
  if ! { apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nix-bin >/dev/null; }; then
    echo "nix-check: could not install nix-bin" >&2
    exit 1
  fi
fi

# Evaluation only: the dummy store writes nothing under /nix and needs neither
# a daemon nor the nixbld group, so this works as any user in a fresh clone.
nix_instantiate() { nix-instantiate --store dummy:// "$@"; }

passed=0
failed=0
run_check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'ok    %s%s\n' "$name" "${out:+  ($(tail -n 1 <<<"$out"))}"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' <<<"$out"
  fi
}

echo "nix-check: $(nix-instantiate --version)"

mapfile -d '' nix_files < <(find . \( -path ./.git -o -path ./target \) -prune -o -name '*.nix' -print0 | sort -z)
if [ "${#nix_files[@]}" -eq 0 ]; then
  echo "nix-check: no .nix files found" >&2
  exit 1
fi
parse() { nix_instantiate --parse "$1" >/dev/null; }
for f in "${nix_files[@]}"; do
  run_check "parse ${f#./}" parse "$f"
done

for t in nix/tests/eval-module.nix nix/tests/eval-package.nix nix/tests/eval-flake.nix; do
  run_check "eval ${t}" nix_instantiate --eval --strict "$t"
done

vm_script() {
  nix_instantiate --eval --strict --json -E "(import ./$1 { queuectlModule = { }; }).testScript" |
    python3 -c 'import json, sys; compile(json.load(sys.stdin), sys.argv[1] + ":testScript", "exec")' "$1"
}
for t in nix/vm-test.nix nix/vm-test-postgresql.nix; do
  run_check "compile $t testScript (Python)" vm_script "$t"
done

# The TOML the module writes for `settings` (through the stand-in's
# formats.toml), given as a Nix expression for services.queuectl.
module_toml() {
  nix_instantiate --eval --strict --json --arg defined "$1" -E '
    { defined }:
    let
      s = import ./nix/tests/stand-in.nix;
      r = s.evalModule {
        module = import ./nix/module.nix;
        defined.services.queuectl = defined // { enable = true; };
      };
    in
    r.config.environment.etc."queuectl/config.toml".source.text' |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))'
}
# cli_accepts DEFINED [WORD]: `config get` accepts the TOML the module writes
# for DEFINED; with WORD, `config get db_path` shows it (the CLI shows a
# PostgreSQL database without its password, but shows that it is one).
cli_accepts() {
  local dir rc db
  dir=$(mktemp -d)
  module_toml "$1" >"$dir/config.toml" || { rm -rf "$dir"; return 1; }
  cli() {
    env -u QUEUECTL_DB -u QUEUECTL_DB_PASSWORD_FILE HOME="$dir" XDG_CONFIG_HOME="$dir" XDG_STATE_HOME="$dir" \
      "$QUEUECTL_BIN" --config "$dir/config.toml" "$@"
  }
  cli config get
  rc=$?
  if [ "$rc" -eq 0 ] && [ -n "${2:-}" ]; then
    db=$(cli config get db_path) && grep -qF -- "$2" <<<"$db" || {
      echo "config get db_path printed '$db', without '$2'"
      rc=1
    }
  fi
  rm -rf "$dir"
  return $rc
}
# `schedule fire NAME --spec FILE` takes the JSON the module writes to
# /etc/queuectl/schedules/NAME.json: it writes the row (managed) and enqueues.
cli_fires_spec() {
  local dir rc
  dir=$(mktemp -d)
  nix_instantiate --eval --strict --json -E '
    let
      s = import ./nix/tests/stand-in.nix;
      r = s.evalModule {
        module = import ./nix/module.nix;
        defined.services.queuectl = {
          enable = true;
          schedules.nightly = {
            onCalendar = [ "Mon..Fri 02:00" "Sat 06:00" ];
            job = { command = "echo hi"; cwd = "/tmp"; priority = 5; env_file = "backup-env"; };
            overlap = "replace";
            persistent = true;
            randomizedDelaySec = 600;
          };
        };
      };
    in
    r.config.environment.etc."queuectl/schedules/nightly.json".text' |
    python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$dir/nightly.json" || { rm -rf "$dir"; return 1; }
  cli() {
    env -u QUEUECTL_DB -u QUEUECTL_DB_PASSWORD_FILE -u QUEUECTL_CONFIG HOME="$dir" XDG_CONFIG_HOME="$dir" \
      XDG_STATE_HOME="$dir" QUEUECTL_STATE_DIR="$dir/state" "$QUEUECTL_BIN" --db "$dir/queue.db" "$@"
  }
  # The list is read whole before grep: `grep -q` quits at the first match,
  # and under pipefail the writer's broken pipe then failed the check (flaky).
  local listed
  cli schedule fire nightly --spec "$dir/nightly.json" &&
    listed=$(cli --json schedule list) &&
    grep -q '"managed": true' <<<"$listed"
  rc=$?
  rm -rf "$dir"
  return $rc
}
if [ -n "${QUEUECTL_BIN:-}" ]; then
  run_check "queuectl accepts the module's default config.toml" cli_accepts '{ }'
  run_check "queuectl accepts the module's config.toml with settings" cli_accepts \
    '{ settings = { max_retries = 0; backoff_base = 1.5; durability = "normal"; output = "journal"; supervisor = "systemd"; timeout_seconds = 600; }; }'
  run_check "queuectl accepts the module's config.toml with database.createLocally" cli_accepts \
    '{ database.createLocally = true; }' postgres
  run_check "queuectl accepts the module's config.toml with database.url" cli_accepts \
    '{ database.url = "postgresql://queuectl@db.example.org/queuectl?sslmode=verify-full"; database.passwordFile = "/run/secrets/db"; }' postgres
  run_check "queuectl fires the schedule spec the module writes" cli_fires_spec
else
  echo "skip  queuectl accepts the module's config.toml (set QUEUECTL_BIN to the built binary)"
fi

echo "nix-check: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
