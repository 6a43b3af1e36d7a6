#!/usr/bin/env bash
# server.sh: a private, throwaway PostgreSQL 15 for queuectl's tests
# (tests/postgres/with-server.sh and tests/it/support/postgres.rs use it).
#
#   server.sh check           can this machine run one? (exit 0, or 1 saying why)
#   server.sh start [--listen ADDRS] [--durable] [--owner PID]
#                             start one; prints `export QUEUECTL_TEST_PG...=`
#                             lines for `eval` (listed below)
#   server.sh env DIR         print those lines again
#   server.sh restart DIR     immediate stop, then start on the same port (data kept)
#   server.sh down DIR        immediate stop only (a crashed server; data kept)
#   server.sh up DIR          start a stopped one again on the same port
#   server.sh stop DIR        immediate stop, remove DIR (idempotent)
#
# --listen ADDRS   listen_addresses, comma-separated (default 127.0.0.1); tests
#                  of many hosts pass their bridge address. The first one goes
#                  into the URL.
# --durable        keep fsync/full_page_writes on (benchmarks); otherwise off
#                  (a crash of the machine loses the data; `restart` does not).
# --owner PID      a detached watcher stops and removes the server once PID is
#                  gone, for owners that die without calling `stop` (kill -9).
#
# Everything lives in DIR (a new mktemp dir; printed as QUEUECTL_TEST_PG_DIR):
#   data/ (PGDATA), run/ (the unix socket), log/postgres.log, tls/ (keys),
#   ca.crt, admin.password (0600, one line), pgpass (0600, ~/.pgpass format).
# PostgreSQL refuses to run as root, so as root its programs run as the
# `postgres` user (runuser) and data/, run/, log/ and tls/ belong to it. It
# never touches a system-wide cluster. A failed start removes what it made.
#
# The role queuectl_admin is a superuser with a random password. Over TCP and
# the socket it needs that password (scram-sha-256). TLS is on with a
# certificate from a throwaway CA (ca.crt); the server certificate names
# localhost, 127.0.0.1, ::1 and every --listen address, so sslmode=verify-full
# works. Both certificates are valid from a day ago, so a client whose clock
# is faked minutes or hours off still accepts them.
#
# Printed variables (with-server.sh exports the same ones):
#   QUEUECTL_TEST_PG               postgresql://queuectl_admin:PASSWORD@HOST:PORT/postgres
#   QUEUECTL_TEST_PG_HOST          first listen address
#   QUEUECTL_TEST_PG_PORT          port
#   QUEUECTL_TEST_PG_USER          queuectl_admin
#   QUEUECTL_TEST_PG_PASSWORD_FILE the password, one line, 0600
#   QUEUECTL_TEST_PG_PASSFILE      a pgpass file (for PGPASSFILE), 0600
#   QUEUECTL_TEST_PG_SOCKET_DIR    unix socket directory (host=... in conninfo)
#   QUEUECTL_TEST_PG_CA_FILE       the CA certificate (sslrootcert=...)
#   QUEUECTL_TEST_PG_DIR           DIR, for `stop`/`restart`/`down`/`up`
#   QUEUECTL_TEST_PG_DATA          its data directory (PGDATA)
#   QUEUECTL_TEST_PG_BINDIR        PostgreSQL's programs (psql, pg_ctl, ...)
#
# Knobs: QUEUECTL_PG_BINDIR (default /usr/lib/postgresql/15/bin).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
BINDIR=${QUEUECTL_PG_BINDIR:-/usr/lib/postgresql/15/bin}
ADMIN=queuectl_admin
MARKER=.queuectl-test-pg

say() { echo "server.sh: $*" >&2; }
die() { say "$*"; exit 1; }
usage() { sed -n '5,13p' "$SELF" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# as_pg CMD...: run CMD as the postgres user when we are root (PostgreSQL
# refuses root), as ourselves otherwise; from / so any cwd is fine.
as_pg() {
    if [[ $(id -u) == 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# give_pg PATH...: hand paths to the user the server runs as.
give_pg() { if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$@"; fi; }

check_tools() {
    local p
    for p in initdb pg_ctl postgres psql; do
        [[ -x $BINDIR/$p ]] || die "$BINDIR/$p not found (install postgresql-15, or set QUEUECTL_PG_BINDIR)"
    done
    for p in openssl ss; do
        command -v "$p" >/dev/null 2>&1 || die "$p not found"
    done
    if [[ $(id -u) == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user to run the server as"
        command -v runuser >/dev/null 2>&1 || die "runuser not found"
    fi
}

# set_dir DIR: one of ours (has the marker), as an absolute path.
set_dir() {
    [[ -n ${1:-} ]] || usage
    DIR=$(cd "$1" 2>/dev/null && pwd -P) || return 1
    [[ $DIR != / && -f $DIR/$MARKER ]] || die "$1 is not a directory made by server.sh start"
}

# alive PID [STARTTIME]: running, not a zombie, and (if given) the same process.
alive() {
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    [[ ${s:0:1} != Z && ${s:0:1} != X ]] || return 1
    [[ -z ${2:-} ]] && return 0
    read -r -a f <<<"$s"
    [[ ${f[19]} == "$2" ]]
}
starttime() { local s f; s=$(cat "/proc/$1/stat") && s=${s##*) } && read -r -a f <<<"$s" && echo "${f[19]}"; }

free_port() {
    local port
    while :; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        [[ -z $(ss -Htan "sport = :$port") ]] && { echo "$port"; return; }
    done
}

make_tls() {
    local tls=$DIR/tls san addr from to
    san="DNS:localhost,IP:127.0.0.1,IP:::1"
    IFS=, read -r -a addrs <<<"$LISTEN"
    for addr in "${addrs[@]}"; do
        addr=${addr// /}
        case $addr in
            '*' | 0.0.0.0 | :: | localhost | 127.0.0.1 | ::1) ;;
            *[!0-9a-fA-F.:]*) san+=",DNS:$addr" ;;
            *) san+=",IP:$addr" ;;
        esac
    done
    from=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
    to=$(date -u -d '+30 days' +%Y%m%d%H%M%SZ)
    mkdir -m 0700 "$tls/newcerts"
    : >"$tls/index.txt"
    echo 01 >"$tls/serial"
    cat >"$tls/ca.cnf" <<EOF
[ ca ]
default_ca = testca
[ testca ]
dir = $tls
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = anything
unique_subject = no
[ anything ]
commonName = supplied
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -new "${key[@]}" -keyout "$tls/ca.key" -out "$tls/ca.csr" \
        -subj "/CN=queuectl test CA ${DIR##*/}" 2>/dev/null
    openssl ca -batch -notext -config "$tls/ca.cnf" -selfsign -keyfile "$tls/ca.key" \
        -in "$tls/ca.csr" -out "$tls/ca.crt" -extensions v3_ca -startdate "$from" -enddate "$to" 2>/dev/null
    openssl req -new "${key[@]}" -keyout "$tls/server.key" -out "$tls/server.csr" \
        -subj "/CN=queuectl test server" 2>/dev/null
    openssl ca -batch -notext -config "$tls/ca.cnf" -cert "$tls/ca.crt" -keyfile "$tls/ca.key" \
        -in "$tls/server.csr" -out "$tls/server.crt" -extensions v3_server -startdate "$from" -enddate "$to" 2>/dev/null
    chmod 0600 "$tls/ca.key" "$tls/server.key"
    install -m 0644 "$tls/ca.crt" "$DIR/ca.crt"
}

# url_host: the first listen address as a URL host.
url_host() {
    local first=${LISTEN%%,*}
    first=${first// /}
    case $first in
        '*' | 0.0.0.0 | '') echo 127.0.0.1 ;;
        *:*) echo "[$first]" ;;
        *) echo "$first" ;;
    esac
}

print_env() {
    local port password host
    port=$(cat "$DIR/port")
    password=$(cat "$DIR/admin.password")
    LISTEN=$(cat "$DIR/listen")
    host=$(url_host)
    local -A v=(
        [QUEUECTL_TEST_PG]="postgresql://$ADMIN:$password@$host:$port/postgres"
        [QUEUECTL_TEST_PG_HOST]="${host//[\[\]]/}"
        [QUEUECTL_TEST_PG_PORT]=$port
        [QUEUECTL_TEST_PG_USER]=$ADMIN
        [QUEUECTL_TEST_PG_PASSWORD_FILE]=$DIR/admin.password
        [QUEUECTL_TEST_PG_PASSFILE]=$DIR/pgpass
        [QUEUECTL_TEST_PG_SOCKET_DIR]=$DIR/run
        [QUEUECTL_TEST_PG_CA_FILE]=$DIR/ca.crt
        [QUEUECTL_TEST_PG_DIR]=$DIR
        [QUEUECTL_TEST_PG_DATA]=$DIR/data
        [QUEUECTL_TEST_PG_BINDIR]=$BINDIR
    )
    local k
    for k in $(printf '%s\n' "${!v[@]}" | sort); do
        printf 'export %s=%q\n' "$k" "${v[$k]}"
    done
}

# pg_start: start the server in DIR on the port in DIR/port; true if it runs.
pg_start() {
    # pg_ctl (as postgres) creates the log afresh; its own words go beside it.
    rm -f "$DIR/log/postgres.log"
    as_pg "$BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/log/postgres.log" -w -t 60 -s start >"$DIR/log/pg_ctl.out" 2>&1
}

pg_stop_now() {
    local pid
    [[ -f $DIR/data/postmaster.pid ]] || return 0
    as_pg "$BINDIR/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 -s stop >/dev/null 2>&1 && return 0
    # pg_ctl could not stop it (or there was nothing to stop): make sure.
    pid=$(head -n1 "$DIR/data/postmaster.pid" 2>/dev/null) || return 0
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
}

log_tail() { tail -n 20 "$DIR/log/pg_ctl.out" "$DIR/log/postgres.log" 2>/dev/null | sed 's/^/  /' >&2 || true; }

remove_dir() {
    local watcher
    pg_stop_now
    watcher=$(cat "$DIR/watcher.pid" 2>/dev/null) || watcher=
    if [[ -n $watcher && $watcher != "$BASHPID" && $watcher != "$$" ]] && alive "$watcher"; then
        kill "$watcher" 2>/dev/null || true
    fi
    rm -rf -- "$DIR"
}

cmd_start() {
    LISTEN=127.0.0.1
    local durable=0 owner=
    while [[ $# -gt 0 ]]; do
        case $1 in
            --listen) LISTEN=${2:?--listen needs addresses}; shift 2 ;;
            --durable) durable=1; shift ;;
            --owner) owner=${2:?--owner needs a pid}; shift 2 ;;
            *) usage ;;
        esac
    done
    [[ $LISTEN =~ ^[A-Za-z0-9.:*,\ -]+$ ]] || die "bad --listen '$LISTEN'"
    [[ -z $owner || $owner =~ ^[0-9]+$ ]] || die "bad --owner '$owner'"
    check_tools

    DIR=$(mktemp -d "${TMPDIR:-/tmp}/qpg-XXXXXXXX")
    DIR=$(cd "$DIR" && pwd -P)
    [[ $DIR =~ ^[A-Za-z0-9/._-]+$ ]] || { rmdir "$DIR"; die "temp dir $DIR has characters postgresql.conf would need quoted"; }
    touch "$DIR/$MARKER"
    # From here on a failure (or Ctrl-C) removes what we made.
    trap 'status=$?; trap - EXIT; log_tail; remove_dir; exit $((status ? status : 1))' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chmod 0711 "$DIR"
    mkdir -m 0700 "$DIR/data" "$DIR/tls" "$DIR/log"
    mkdir -m 0755 "$DIR/run"
    echo "$LISTEN" >"$DIR/listen"

    (umask 077 && openssl rand -hex 24 >"$DIR/admin.password")
    make_tls
    give_pg "$DIR/data" "$DIR/tls" "$DIR/tls"/* "$DIR/tls/newcerts" "$DIR/log" "$DIR/run"
    (umask 077 && cp "$DIR/admin.password" "$DIR/tls/initdb.pw")
    give_pg "$DIR/tls/initdb.pw"
    as_pg "$BINDIR/initdb" -D "$DIR/data" -U "$ADMIN" --pwfile="$DIR/tls/initdb.pw" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
        >"$DIR/log/initdb.log" 2>&1 || { cat "$DIR/log/initdb.log" >&2; die "initdb failed"; }
    rm -f "$DIR/tls/initdb.pw"

    cat >"$DIR/data/pg_hba.conf" <<EOF
# queuectl tests: the password everywhere; TLS optional (sslmode decides).
local all all scram-sha-256
host  all all 0.0.0.0/0 scram-sha-256
host  all all ::/0 scram-sha-256
EOF
    # Not synchronous_commit=off: an immediate stop (`restart`) would lose the
    # last commits, and restart tests must see every committed row again.
    local safety="fsync = off
full_page_writes = off"
    [[ $durable == 1 ]] && safety="# --durable: fsync and full_page_writes on"
    cat >>"$DIR/data/postgresql.conf" <<EOF

# --- queuectl tests (tests/postgres/server.sh) ---
listen_addresses = '$LISTEN'
unix_socket_directories = '$DIR/run'
max_connections = 200
ssl = on
ssl_cert_file = '$DIR/tls/server.crt'
ssl_key_file = '$DIR/tls/server.key'
$safety
include = 'queuectl-port.conf'
EOF
    local tries=0 port
    while :; do
        port=$(free_port)
        echo "port = $port" >"$DIR/data/queuectl-port.conf"
        give_pg "$DIR/data/queuectl-port.conf"
        echo "$port" >"$DIR/port"
        pg_start && break
        # Someone took the port between our look and the bind: another one.
        tries=$((tries + 1))
        if ! grep -q 'Address already in use' "$DIR/log/postgres.log" || [[ $tries -ge 10 ]]; then
            die "PostgreSQL did not start"
        fi
        pg_stop_now
    done

    (
        umask 077
        printf '*:%s:*:%s:%s\n' "$port" "$ADMIN" "$(cat "$DIR/admin.password")" >"$DIR/pgpass"
    )
    if [[ -n $owner ]]; then
        starttime "$owner" >"$DIR/owner" 2>/dev/null || die "owner $owner is not running"
        echo "$owner" >>"$DIR/owner"
        setsid bash "$SELF" watch "$DIR" </dev/null >/dev/null 2>&1 &
        echo $! >"$DIR/watcher.pid"
    fi
    trap - EXIT INT TERM
    print_env
}

# watch DIR: (internal) stop and remove the server once its owner is gone.
cmd_watch() {
    set_dir "$1" || exit 0
    local start owner
    { read -r start && read -r owner; } <"$DIR/owner"
    while alive "$owner" "$start" && [[ -d $DIR ]]; do sleep 1; done
    [[ -d $DIR ]] && remove_dir
}

cmd_stop() {
    [[ -n ${1:-} ]] || usage
    [[ -e $1 ]] || return 0
    set_dir "$1"
    remove_dir
}

cmd_down() {
    set_dir "$1"
    check_tools
    pg_stop_now
}

cmd_up() {
    set_dir "$1"
    check_tools
    pg_start || { log_tail; die "PostgreSQL did not start again on port $(cat "$DIR/port")"; }
}

cmd_env() {
    set_dir "$1"
    print_env
}

case ${1:-} in
    check) check_tools ;;
    start) shift; cmd_start "$@" ;;
    stop) cmd_stop "${2:-}" ;;
    restart) cmd_down "${2:-}" && cmd_up "${2:-}" ;;
    down) cmd_down "${2:-}" ;;
    up) cmd_up "${2:-}" ;;
    env) cmd_env "${2:-}" ;;
    watch) cmd_watch "${2:-}" ;;
    *) usage ;;
esac
