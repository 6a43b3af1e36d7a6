#!/usr/bin/env bash
# harness.sh: a private, contained systemd user manager plus journald for
# queuectl's integration tests (tests/it/support/systemd.rs wraps it).
#
#   harness.sh check                      can this machine run it? (exit 0/1)
#   harness.sh start [--owner PID] DIR    set up; prints "NSPID=<pid>"
#   harness.sh exec DIR -- CMD [ARG...]   run CMD inside, env set for it
#   harness.sh env DIR                    print that env, one KEY=VALUE a line
#   harness.sh stop DIR                   tear down (idempotent)
#
# DIR is an existing, empty directory the caller owns (a tempdir). The harness
# keeps everything in it: runtime/ (XDG_RUNTIME_DIR), config/ (XDG_CONFIG_HOME;
# unit files go in config/systemd/user), home/, data/, state/, cache/, and
# harness/ (pid files, daemon logs). `stop` removes those again.
#
# CONTAINMENT RULE. Do not weaken any of this. A systemd manager takes the
# cgroup it is started in as its own root, moves the processes it finds there
# and deletes cgroups it did not create. Started in the machine's cgroup root
# it wrecks the whole machine. So:
#   * everything runs in a private MOUNT namespace (unshare -m, propagation
#     private). Never a pid namespace (no -p/--pid anywhere).
#   * inside it a fresh cgroup2 is mounted on /sys/fs/cgroup, we create our own
#     sub-cgroup /qtest-<pid>-<random>.slice and journald and the manager are
#     each started from a process that was moved into a leaf of it first:
#         /qtest-<pid>-<random>.slice/systemd-journald.service   journald
#         /qtest-<pid>-<random>.slice/manager.slice              systemd --user
#     (On a host with a cgroup v1 layout, where cgroup2 sits at
#     /sys/fs/cgroup/unified, the same directory shows up there.)
#   * /run/systemd, /run/log and /var/log/journal are fresh tmpfs in that
#     namespace, so the journal and the manager's sockets are private.
#   * XDG_RUNTIME_DIR / XDG_CONFIG_HOME / HOME ... point into DIR, never ~.
#   * systemctl is only ever run with --user and that private XDG_RUNTIME_DIR.
# Identity: pids and namespace inode numbers get reused, so a process counts
# as ours only if it sees our random token in /run/systemd/qtest-token (a file
# on our private tmpfs, read through /proc/PID/root). `stop` asks the holder
# to stop the manager (which stops the units) and journald, kills whatever
# else is ours, kills what is left in our sub-cgroup and removes that tree
# depth-first; with its last process gone the namespace and its mounts go too.
#
# Inside, worker output lands in the journal with _SYSTEMD_UNIT=<unit>, as for
# a system service (the cgroup path has no user@.service), so plain
# `journalctl -u queuectl-worker@1.service` works (root has no user journal).
#
# Knobs: HARNESS_START_TIMEOUT (s, default 20) for the manager to come up,
# HARNESS_STOP_GRACE (s, default 10) for units to stop before being killed,
# HARNESS_LOG_LEVEL (manager's SYSTEMD_LOG_LEVEL, default info),
# HARNESS_JOURNAL_RATE_LIMIT=default keeps journald's default rate limit
# (10000 messages per 30 s per unit) instead of switching it off, for tests
# of a unit's own LogRateLimit*= settings.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SYSTEMD_BIN=/lib/systemd/systemd
JOURNALD_BIN=/lib/systemd/systemd-journald
START_TIMEOUT=${HARNESS_START_TIMEOUT:-20}
STOP_GRACE=${HARNESS_STOP_GRACE:-10}
SUBDIRS=(runtime home config data state cache harness)
SAFE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "harness: $*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    sed -n '4,8p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# --- small helpers ---------------------------------------------------------

now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }

# alive PID: running and not a zombie.
alive() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z && ${s:0:1} != X ]]
}

# starttime PID: field 22 of /proc/PID/stat (identity against pid reuse).
starttime() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    read -r -a f <<<"$s"
    echo "${f[19]}"
}

mntns() { readlink "/proc/$1/ns/mnt" 2>/dev/null; }

# mount_cgroup2: a fresh cgroup2 on /sys/fs/cgroup, in the (private!) mount
# namespace we are in. If /sys/fs/cgroup already is cgroup2 (a pure cgroup v2
# host, or inside the harness namespace) the kernel refuses the same fs twice
# on one mount point (EBUSY), so a tmpfs goes in between.
mount_cgroup2() {
    if [[ $(stat -f -c %T /sys/fs/cgroup 2>/dev/null) == cgroup2fs ]]; then
        mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup || return 1
    fi
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
}

# ours PID: PID sees our token, i.e. lives in our namespace (or in a unit's
# namespace made from it). Needs TOKEN set (load_token).
ours() { [[ -n ${TOKEN:-} && $(cat "/proc/$1/root/run/systemd/qtest-token" 2>/dev/null) == "$TOKEN" ]]; }
load_token() { TOKEN=$(cat "$H/token" 2>/dev/null) || TOKEN=; }

# ancestors: our own pid and all our ancestors' (never killed by the scan).
ancestors() {
    local p=$BASHPID
    while [[ $p =~ ^[0-9]+$ && $p -gt 1 ]]; do
        echo "$p"
        p=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null) || break
    done
}
is_ancestor() { [[ " $(ancestors | tr '\n' ' ') " == *" $1 "* ]]; }

# set_dir DIR: absolute, physical, not /, and derive our paths from it.
set_dir() {
    [[ -n ${1:-} ]] || usage
    [[ -d $1 ]] || die "DIR $1 does not exist (create it first, e.g. mktemp -d)"
    DIR=$(cd "$1" && pwd -P)
    [[ $DIR != / ]] || die "refusing DIR=/"
    H=$DIR/harness
    RUNTIME=$DIR/runtime
}

# The environment a process inside needs (also what the manager gets).
print_env() {
    cat <<EOF
HOME=$DIR/home
XDG_RUNTIME_DIR=$DIR/runtime
XDG_CONFIG_HOME=$DIR/config
XDG_DATA_HOME=$DIR/data
XDG_STATE_HOME=$DIR/state
XDG_CACHE_HOME=$DIR/cache
DBUS_SESSION_BUS_ADDRESS=unix:path=$DIR/runtime/bus
EOF
}

# env_args: print_env as an array for `env`.
env_args() { mapfile -t ENV_ARGS < <(print_env); }

# --- check -------------------------------------------------------------------

check_reasons() {
    local r=() c
    [[ $(id -u) == 0 ]] || r+=("not root (uid $(id -u)): needs root for mount namespaces and cgroups")
    for c in unshare nsenter mount setsid systemctl journalctl readlink awk; do
        command -v "$c" >/dev/null 2>&1 || r+=("$c not found")
    done
    [[ -x $SYSTEMD_BIN ]] || r+=("$SYSTEMD_BIN not found (apt-get install systemd)")
    [[ -x $JOURNALD_BIN ]] || r+=("$JOURNALD_BIN not found (apt-get install systemd)")
    grep -qw cgroup2 /proc/filesystems 2>/dev/null || r+=("kernel has no cgroup2")
    if ((${#r[@]} == 0)); then
        # The real thing, in a throwaway namespace: unshare + cgroup2 mount.
        unshare -m --propagation private -- "$BASH" "$SELF" __probe >/dev/null 2>&1 ||
            r+=("cannot unshare a mount namespace and mount cgroup2 in it (container without CAP_SYS_ADMIN?)")
    fi
    ((${#r[@]} == 0)) && return 0
    local IFS=';'
    echo "${r[*]}"
    return 1
}

cmd_check() {
    local why
    if why=$(check_reasons); then
        echo "ok: $(dpkg-query -W -f='systemd ${Version}' systemd 2>/dev/null || echo systemd)"
    else
        echo "private systemd harness unavailable: $why"
        exit 1
    fi
}

# --- start -------------------------------------------------------------------

cmd_start() {
    local owner=
    if [[ ${1:-} == --owner ]]; then
        owner=${2:?--owner needs a pid}
        shift 2
    fi
    set_dir "${1:-}"
    local why
    why=$(check_reasons) || die "cannot start: $why"
    [[ ! -e $H ]] || die "$DIR is already in use (harness/ exists); run: $0 stop $DIR"
    # $RUNTIME/systemd/private and friends must fit in sockaddr_un (108).
    ((${#RUNTIME} <= 70)) || die "DIR path too long for unix sockets under it: $DIR"

    local d
    for d in "${SUBDIRS[@]}"; do mkdir -p "$DIR/$d"; done
    chmod 0700 "$RUNTIME"
    mkdir -p "$DIR/config/systemd/user"
    mntns $$ >"$H/host-mntns"
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$H/token"
    if [[ -n $owner ]]; then
        local st
        st=$(starttime "$owner") || die "--owner $owner: no such process"
        echo "$owner $st" >"$H/owner"
    fi

    local t0
    t0=$(now_us)
    # The holder: a long-lived process in a fresh private mount namespace.
    # setsid: terminal signals aimed at the caller must not hit the daemons.
    # Its stdio goes to files so that nobody waits on our pipes.
    setsid unshare -m --propagation private -- "$BASH" "$SELF" __holder "$DIR" \
        </dev/null >"$H/holder.log" 2>&1 &

    # Wait for the holder's verdict (it waits for the manager itself).
    local deadline=$((t0 + (START_TIMEOUT + 10) * 1000000)) status= nspid=
    while :; do
        if [[ -s $H/status ]]; then
            status=$(<"$H/status")
            break
        fi
        if [[ -z $nspid && -s $H/nspid ]]; then nspid=$(<"$H/nspid"); fi
        if [[ -n $nspid ]] && ! alive "$nspid"; then
            status="fail: holder process $nspid died"
            break
        fi
        if (($(now_us) > deadline)); then
            status="fail: timed out after $((START_TIMEOUT + 10)) s waiting for the holder"
            break
        fi
        sleep 0.05
    done

    if [[ $status != ok* ]]; then
        say "start failed: ${status#fail: }"
        start_diagnostics
        cmd_stop "$DIR" >&2 || true
        exit 1
    fi
    nspid=$(<"$H/nspid")
    if [[ $status == "ok degraded"* ]]; then
        say "manager is degraded (accepted): ${status#ok degraded}"
    fi
    say "up in $((($(now_us) - t0) / 1000)) ms (journald $(<"$H/journald.pid"), systemd --user $(<"$H/manager.pid"), cgroup $(<"$H/cgroup"))"
    echo "NSPID=$nspid"
}

start_diagnostics() {
    local f
    for f in holder journald manager; do
        [[ -s $H/$f.log ]] || continue
        say "--- $f.log (last 30 lines) ---"
        tail -n 30 "$H/$f.log" >&2 || true
    done
    # The holder may have exited already; journald still holds the namespace.
    local p
    load_token
    for f in nspid journald.pid manager.pid; do
        p=$(cat "$H/$f" 2>/dev/null) || continue
        ours "$p" || continue
        [[ -S /proc/$p/root/run/systemd/journal/socket ]] || continue
        say "--- private journal (last 40 lines) ---"
        nsenter --mount="/proc/$p/ns/mnt" -- journalctl --no-pager -n 40 >&2 2>&1 || true
        break
    done
}

# Runs as the holder, inside the fresh private mount namespace (pid = NSPID).
holder() {
    set_dir "$1"
    fail() {
        printf 'fail: %s\n' "$*" >"$H/status.tmp"
        mv "$H/status.tmp" "$H/status"
        exit 1
    }
    echo $$ >"$H/nspid"
    local ns
    ns=$(mntns $$)
    echo "$ns" >"$H/mntns"
    # Safety: never mount anything unless we really are in a new namespace.
    [[ -n $ns && $ns != "$(<"$H/host-mntns")" ]] || fail "not in a private mount namespace"
    [[ $(findmnt -n -o PROPAGATION /) == private ]] || fail "/ is not private in the new namespace"

    # On a systemd machine /run is a mount (tmpfs). Where it is a plain
    # directory, units whose sandboxing implies MountAPIVFS= (systemd 252:
    # ProtectControlGroups=, ...) get an empty tmpfs on /run instead, which
    # hides the journal socket from them. Binding /run onto itself (in this
    # namespace only) makes it a mount point and keeps its contents.
    if ! findmnt -n /run >/dev/null; then
        mount --bind /run /run || fail "cannot bind-mount /run onto itself"
    fi
    local d
    for d in /run/systemd /run/log /var/log/journal; do
        mkdir -p "$d" && mount -t tmpfs -o mode=0755,nosuid,nodev,size=256m tmpfs "$d" ||
            fail "cannot mount tmpfs on $d"
    done
    mkdir -p /run/systemd/system /run/systemd/journal /run/systemd/journald.conf.d
    cp "$H/token" /run/systemd/qtest-token
    # Keep the private journald to itself: no host kernel log, no wall/console/
    # syslog/kmsg forwarding, no rate limit (tests log in bursts) unless
    # HARNESS_JOURNAL_RATE_LIMIT=default, and Audit= empty = leave the
    # kernel's audit setting alone (Debian's default "no" would switch kernel
    # auditing off for the whole machine). RuntimeMaxUse: room for a test's
    # 100,000-line job without rotating its first lines away (the default is
    # 10% of the 256 MB tmpfs).
    cat >/run/systemd/journald.conf.d/50-harness.conf <<'EOF'
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RuntimeMaxUse=192M
Audit=
EOF
    if [[ ${HARNESS_JOURNAL_RATE_LIMIT:-off} != default ]]; then
        printf 'RateLimitIntervalSec=0\nRateLimitBurst=0\n' >>/run/systemd/journald.conf.d/50-harness.conf
    fi

    # Containment: a fresh cgroup2 view and our own sub-cgroup in it.
    mount_cgroup2 || fail "cannot mount cgroup2 on /sys/fs/cgroup"
    local cg
    cg=/qtest-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ').slice
    echo "$cg" >"$H/cgroup" # recorded before mkdir, so stop always knows it
    local cgp=/sys/fs/cgroup$cg
    mkdir "$cgp" || fail "cannot create $cgp"
    mkdir "$cgp/systemd-journald.service" "$cgp/manager.slice" || fail "cannot create leaf cgroups"

    # journald: logs its own diagnostics to stderr (never the host's kmsg).
    (
        echo "$BASHPID" >"$cgp/systemd-journald.service/cgroup.procs" || exit 1
        exec env -i PATH="$SAFE_PATH" SYSTEMD_LOG_TARGET=console "$JOURNALD_BIN"
    ) </dev/null >"$H/journald.log" 2>&1 &
    local jpid=$!
    echo "$jpid" >"$H/journald.pid"
    local deadline=$(($(now_us) + 10 * 1000000))
    until [[ -S /run/systemd/journal/socket && -S /run/systemd/journal/stdout ]]; do
        alive "$jpid" || fail "systemd-journald exited (see harness/journald.log)"
        (($(now_us) < deadline)) || fail "systemd-journald did not create its sockets in 10 s"
        sleep 0.05
    done

    # What PID 1 creates at boot and sandboxing options (ProtectKernelLogs=,
    # InaccessiblePaths=, ...) bind-mount over paths they hide. Without them
    # such units fail with "Failed to set up mount namespacing". The socket
    # node is copied from journald's (cp makes a new, unbound socket inode).
    local ina=/run/systemd/inaccessible
    {
        mkdir -p "$ina" && mkdir -m 0000 "$ina/dir" && install -m 0000 /dev/null "$ina/reg" &&
            mkfifo -m 0000 "$ina/fifo" && mknod -m 0000 "$ina/chr" c 0 0 &&
            mknod -m 0000 "$ina/blk" b 0 0 &&
            cp -a /run/systemd/journal/socket "$ina/sock" && chmod 0000 "$ina/sock"
    } || fail "cannot create $ina"

    env_args
    # The manager: started from a process already inside manager.slice, so
    # that (and only that) becomes its root cgroup.
    (
        echo "$BASHPID" >"$cgp/manager.slice/cgroup.procs" || exit 1
        exec env -i PATH="$SAFE_PATH" USER="$(id -un)" LOGNAME="$(id -un)" SHELL=/bin/sh \
            LANG=C.UTF-8 "${ENV_ARGS[@]}" \
            SYSTEMD_LOG_TARGET=journal SYSTEMD_LOG_LEVEL="${HARNESS_LOG_LEVEL:-info}" \
            "$SYSTEMD_BIN" --user
    ) </dev/null >"$H/manager.log" 2>&1 &
    local mpid=$!
    echo "$mpid" >"$H/manager.pid"

    local state=
    deadline=$(($(now_us) + START_TIMEOUT * 1000000))
    while :; do
        state=$(env "${ENV_ARGS[@]}" systemctl --user is-system-running 2>/dev/null) || true
        [[ $state == running || $state == degraded ]] && break
        alive "$mpid" || fail "systemd --user exited (state '$state'; see harness/manager.log and the journal)"
        (($(now_us) < deadline)) || fail "systemd --user not running after $START_TIMEOUT s (state '$state')"
        sleep 0.05
    done
    if [[ $state == degraded ]]; then
        local failed
        failed=$(env "${ENV_ARGS[@]}" systemctl --user list-units --failed --plain --no-legend 2>&1 | tr '\n' ';')
        printf 'ok degraded: failed units: %s\n' "$failed" >"$H/status.tmp"
    else
        echo "ok running" >"$H/status.tmp"
    fi
    mv "$H/status.tmp" "$H/status"

    # Hold the namespace. `stop` sends SIGTERM: we then stop the daemons
    # ourselves, so that they are reaped at once (as our children) instead of
    # lingering as zombies until init gets round to them. With an owner (the
    # test process), also clean up after it if it dies without calling stop
    # (SIGKILL, abort, ...).
    local owner= ost= nap=
    [[ -s $H/owner ]] && read -r owner ost <"$H/owner"
    trap 'kill "$nap" 2>/dev/null; graceful_stop "$mpid" "$jpid" "$cgp"; wait; exit 0' TERM
    while :; do
        if [[ -n $owner && $(starttime "$owner" 2>/dev/null || true) != "$ost" ]]; then
            echo "owner $owner is gone; cleaning up"
            graceful_stop "$mpid" "$jpid" "$cgp"
            wait
            "$BASH" "$SELF" stop "$DIR" || true
            exit 0
        fi
        sleep 1 &
        nap=$!
        wait "$nap" || true
    done
}

# graceful_stop MANAGER_PID JOURNALD_PID [CGROUP_DIR]: SIGTERM makes a user
# manager start exit.target, which stops every unit (removing their runtime
# dirs, PrivateTmp dirs, ...) and then exits. Units that outlast
# HARNESS_STOP_GRACE are SIGKILLed. journald goes last so the stop is logged.
graceful_stop() {
    local mpid=$1 jpid=$2 cgp=${3:-} deadline
    if [[ -n $mpid ]] && alive "$mpid"; then
        kill -TERM "$mpid" 2>/dev/null || true
        if ! wait_gone "$STOP_GRACE" "$mpid"; then
            say "units did not stop within $STOP_GRACE s; killing them"
            env_args
            env "${ENV_ARGS[@]}" timeout 5 systemctl --user kill --signal=SIGKILL '*' >/dev/null 2>&1 || true
            wait_gone 5 "$mpid" || kill -KILL "$mpid" 2>/dev/null || true
        fi
        # Let the manager's leftovers (its async removal of PrivateTmp dirs) finish.
        deadline=$(($(now_us) + 3 * 1000000))
        while [[ -n $cgp ]] && cg_populated "$cgp/manager.slice" && (($(now_us) < deadline)); do
            sleep 0.05
        done
    fi
    if [[ -n $jpid ]] && alive "$jpid"; then
        kill -TERM "$jpid" 2>/dev/null || true
        wait_gone 5 "$jpid" || kill -KILL "$jpid" 2>/dev/null || true
    fi
}

# --- exec / env --------------------------------------------------------------

# running_ns: check the harness is up; sets NSPID and NS.
running_ns() {
    [[ -s $H/nspid && -s $H/mntns && -s $H/status ]] || die "not started: $DIR"
    NSPID=$(<"$H/nspid")
    NS=$(<"$H/mntns")
    [[ $(<"$H/status") == ok* ]] || die "start failed: $(<"$H/status")"
    load_token
    ours "$NSPID" || die "holder $NSPID is gone (crashed or stopped): $DIR"
}

cmd_exec() {
    set_dir "${1:-}"
    shift
    [[ ${1:-} == -- ]] && shift
    (($# > 0)) || usage
    running_ns
    env_args
    # --wd=. keeps the caller's working directory (setns resets it to /).
    exec nsenter --mount="/proc/$NSPID/ns/mnt" --wd=. -- env "${ENV_ARGS[@]}" "$@"
}

cmd_env() {
    set_dir "${1:-}"
    print_env
}

# --- stop --------------------------------------------------------------------

cmd_stop() {
    set_dir "${1:-}"
    [[ -d $H ]] || return 0 # never started, or already stopped
    if [[ -s $H/mntns ]]; then
        # All the killing happens from a throwaway namespace with cgroup2
        # mounted, so the sub-cgroup is reachable whatever the host layout.
        unshare -m --propagation private -- "$BASH" "$SELF" __stop "$DIR" ||
            say "stop: teardown reported problems (see above)"
    fi
    local d
    for d in "${SUBDIRS[@]}"; do
        rm -rf --one-file-system -- "${DIR:?}/$d"
    done
}

# kill_ours HOST_NS SIGNAL: signal every process that is ours (see ours()),
# except ourselves, our ancestors and anything in the caller's namespace
# HOST_NS; prints how many there were.
kill_ours() {
    local host_ns=$1 sig=$2 n=0 p keep
    keep=" $(ancestors | tr '\n' ' ') "
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $keep == *" $p "* ]] && continue
        if ours "$p" && [[ $(mntns "$p") != "$host_ns" ]]; then
            kill -s "$sig" "$p" 2>/dev/null || true
            n=$((n + 1))
        fi
    done
    echo $n
}

wait_gone() { # wait_gone SECONDS PID
    local deadline=$(($(now_us) + $1 * 1000000))
    while alive "$2"; do
        (($(now_us) < deadline)) || return 1
        sleep 0.05
    done
}

cg_populated() { grep -q '^populated 1' "$1/cgroup.events" 2>/dev/null; }

# Runs in a throwaway private mount namespace (see cmd_stop).
stop_inside() {
    set_dir "$1"
    local ns host_ns cg= cgp=
    ns=$(<"$H/mntns")
    host_ns=$(cat "$H/host-mntns" 2>/dev/null || true)
    [[ $ns == mnt:* && $ns != "$host_ns" ]] || die "stop: bad namespace record '$ns'"
    load_token
    [[ -s $H/cgroup ]] && cg=$(<"$H/cgroup")
    if [[ -n $cg ]]; then
        # Only ever touch a cgroup named like the ones we create.
        [[ $cg =~ ^/qtest-[0-9]+-[0-9a-f]{8}\.slice$ ]] || die "stop: bad cgroup record '$cg'"
        if mount_cgroup2; then
            cgp=/sys/fs/cgroup$cg
        else
            say "stop: cannot mount cgroup2; cannot remove $cg"
        fi
    fi

    # 1. Graceful. Normally the holder does it (SIGTERM to it, see holder());
    #    if the holder is gone, we stop the daemons ourselves.
    local nspid= mpid= jpid=
    [[ -s $H/nspid ]] && nspid=$(<"$H/nspid")
    [[ -s $H/manager.pid ]] && mpid=$(<"$H/manager.pid")
    [[ -s $H/journald.pid ]] && jpid=$(<"$H/journald.pid")
    [[ -n $mpid ]] && ours "$mpid" || mpid=
    [[ -n $jpid ]] && ours "$jpid" || jpid=
    if [[ -n $nspid ]] && ours "$nspid" && ! is_ancestor "$nspid"; then
        kill -TERM "$nspid" 2>/dev/null || true
        wait_gone $((STOP_GRACE + 15)) "$nspid" || say "stop: holder $nspid did not finish its teardown"
    elif [[ -n $mpid || -n $jpid ]]; then
        graceful_stop "$mpid" "$jpid" "$cgp"
    fi

    # 2. The holder, then anything else still ours (journald, commands
    #    started with `exec`, units' processes). Once the namespace has no
    #    process left, it and its mounts are gone.
    if [[ -n $nspid ]] && ours "$nspid" && ! is_ancestor "$nspid"; then
        kill -KILL "$nspid" 2>/dev/null || true
    fi
    local deadline=$(($(now_us) + 5 * 1000000)) n
    while :; do
        n=$(kill_ours "$host_ns" KILL)
        ((n == 0)) && break
        (($(now_us) < deadline)) || { say "stop: $n process(es) still in $ns"; break; }
        sleep 0.05
    done
    # Killed daemons stay zombies until init reaps them; wait (briefly) so
    # that when stop returns, `pgrep systemd` shows nothing of ours.
    local p f
    deadline=$(($(now_us) + 3 * 1000000))
    for f in journald.pid manager.pid; do
        [[ -s $H/$f ]] || continue
        p=$(<"$H/$f")
        while [[ -e /proc/$p ]] && ! alive "$p" && (($(now_us) < deadline)); do
            sleep 0.05
        done
    done

    # 3. Whatever is left in our cgroup tree (units with their own mount
    #    namespace, e.g. PrivateTmp=), then the tree itself, depth-first.
    if [[ -n $cgp && -d $cgp ]]; then
        deadline=$(($(now_us) + 5 * 1000000))
        while cg_populated "$cgp"; do
            if [[ -e $cgp/cgroup.kill ]]; then
                echo 1 >"$cgp/cgroup.kill" 2>/dev/null || true
            else
                find "$cgp" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
            fi
            (($(now_us) < deadline)) || { say "stop: processes left in $cg"; break; }
            sleep 0.05
        done
        find "$cgp" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ ! -d $cgp ]] || { say "stop: could not remove cgroup $cg"; return 1; }
    fi
}

# --- main --------------------------------------------------------------------

main() {
    local cmd=${1:-}
    (($# > 0)) && shift
    case $cmd in
    check) cmd_check ;;
    start) cmd_start "$@" ;;
    exec) cmd_exec "$@" ;;
    env) cmd_env "$@" ;;
    stop) cmd_stop "$@" ;;
    __holder) holder "$@" ;;
    __stop) stop_inside "$@" ;;
    __probe) mount_cgroup2 && [[ -w /sys/fs/cgroup/cgroup.procs ]] ;; # for check, in a throwaway namespace
    *) usage ;;
    esac
}

main "$@"
