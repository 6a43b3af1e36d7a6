#!/usr/bin/env bash
# with-server.sh CMD [ARG...]: run CMD beside a private PostgreSQL 15, then
# stop the server and remove its data (also when CMD fails or on Ctrl-C);
# exits with CMD's status. The README's test command:
#
#   bash tests/postgres/with-server.sh cargo nextest run --workspace --no-fail-fast --locked
#
# CMD sees the variables server.sh prints (see there), notably
#   QUEUECTL_TEST_PG  postgresql://queuectl_admin:PASSWORD@127.0.0.1:PORT/postgres
# a superuser URL with the password IN it (a throwaway one), so it works with
# any client as it is; tests make their own databases from it
# (tests/it/support/postgres.rs). PGPASSFILE is deliberately not set, so tests
# of password sources decide for themselves (QUEUECTL_TEST_PG_PASSFILE,
# QUEUECTL_TEST_PG_PASSWORD_FILE). Where PostgreSQL 15 is missing it runs CMD
# without a server, saying so (the PostgreSQL tests then skip, saying why);
# with CI=true that is a failure instead.
set -euo pipefail

[[ $# -gt 0 ]] || { sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! missing=$(bash "$here/server.sh" check 2>&1); then
    if [[ ${CI:-} == true ]]; then
        echo "with-server.sh: PostgreSQL cannot run here: $missing" >&2
        exit 1
    fi
    echo "with-server.sh: no PostgreSQL here ($missing); running without one: the PostgreSQL tests skip" >&2
    exec "$@"
fi

# --owner $$: should this script be killed outright, the server goes anyway.
exports=$(bash "$here/server.sh" start --owner $$)
eval "$exports"
trap 'bash "$here/server.sh" stop "$QUEUECTL_TEST_PG_DIR"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo "with-server.sh: PostgreSQL on $QUEUECTL_TEST_PG_HOST:$QUEUECTL_TEST_PG_PORT ($QUEUECTL_TEST_PG_DIR)" >&2

status=0
"$@" || status=$?
exit "$status"
