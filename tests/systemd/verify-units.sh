#!/usr/bin/env bash
# verify-units.sh [BINARY]: renders units/ with ExecStart pointing at BINARY
# (default: target/debug/queuectl of this tree; any executable will do, e.g.
# /bin/true) and runs `systemd-analyze verify` on an instance of the worker
# template (verify silently skips bare templates), the target, and the
# dashboard's socket and service, in both the system and the user scope.
#
# systemd-analyze prints warnings but still exits 0, so ANY output fails this
# script. It is offline: no manager is started or contacted, and nothing
# outside a temp dir is written.
#
# Documentation=man:queuectl(1): verify runs `man` on it. When `man` is
# installed and BINARY prints its page (`queuectl man`), the page is put on a
# temporary MANPATH and checked; otherwise (e.g. BINARY=/bin/true) the check
# is off (--man=no), as the page is not installed where this runs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
binary=${1:-$repo/target/debug/queuectl}
units=$repo/units

command -v systemd-analyze >/dev/null || { echo "verify-units: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
[[ $binary == /* ]] || binary=$PWD/$binary
[[ -f $binary && -x $binary ]] || { echo "verify-units: $binary is not an executable file (build it, or pass a path)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units" "$tmp/runtime" "$tmp/config" "$tmp/data"
chmod 0700 "$tmp/runtime"

# Render as the installer should: the literal /usr/bin/queuectl becomes the
# binary path, % doubled (unit files read % as a specifier) and, if the path
# has blanks, quotes or backslashes, the path double-quoted with \ and "
# escaped (else ExecStart= splits it into several words).
exe=${binary//%/%%}
if [[ $exe =~ [[:space:]\"\'\\] ]]; then
    exe=${exe//\\/\\\\}
    exe=\"${exe//\"/\\\"}\"
fi
# render NAME: units/NAME into the temp dir, its ExecStart= binary replaced.
render() {
    local text
    text=$(<"$units/$1")
    grep -q '^ExecStart=/usr/bin/queuectl ' <<<"$text" ||
        { echo "verify-units: units/$1 lost its 'ExecStart=/usr/bin/queuectl ' line" >&2; exit 1; }
    printf '%s\n' "${text//\/usr\/bin\/queuectl/"$exe"}" >"$tmp/units/$1"
}
render queuectl-worker@.service
render queuectl-web.service
cp "$units/queuectl-workers.target" "$units/queuectl-web.socket" "$tmp/units/"
# Every unit file shipped is checked here: a new one must be added above.
for f in "$units"/*; do
    [[ -e $tmp/units/${f##*/} ]] || { echo "verify-units: units/${f##*/} is not verified; add it to $0" >&2; exit 1; }
done

# The instance's file need not exist: verify loads it from the template that
# sits in the same directory (whose directory it adds to the unit path).
targets=("$tmp/units/queuectl-worker@1.service" "$tmp/units/queuectl-workers.target"
    "$tmp/units/queuectl-web.socket" "$tmp/units/queuectl-web.service")

man_opt=--man=no
mkdir -p "$tmp/man/man1"
if command -v man >/dev/null && timeout 10 "$binary" man </dev/null >"$tmp/man/man1/queuectl.1" 2>/dev/null &&
    [[ $(head -c 1 "$tmp/man/man1/queuectl.1") == . ]]; then
    man_opt=--man=yes
    export MANPATH=$tmp/man
    echo "verify-units: checking Documentation= against \`$binary man\`"
fi

failed=0
run() { # run LABEL CMD...
    local label=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if [[ -n $out || $rc -ne 0 ]]; then
        echo "verify-units: $label: FAILED (exit $rc)"
        printf '%s\n' "$out" | sed 's/^/    /'
        failed=1
    else
        echo "verify-units: $label: clean"
    fi
}

run "system scope" systemd-analyze verify "$man_opt" "${targets[@]}"
# User scope, with XDG dirs in the temp dir so nothing of ~ is read.
run "user scope" env XDG_RUNTIME_DIR="$tmp/runtime" XDG_CONFIG_HOME="$tmp/config" \
    XDG_DATA_HOME="$tmp/data" systemd-analyze --user verify "$man_opt" "${targets[@]}"

exit $failed
