#!/usr/bin/env bash
# pgtmp.sh - run a command against a throwaway PostgreSQL server.
#
# Usage: tests/pg/pgtmp.sh CMD [ARGS...]
#
# Creates a cluster with initdb in a fresh temporary directory, starts postgres on a unix socket
# in that directory only (listen_addresses='': no TCP port, so nothing collides with a system
# server or another test run), creates the database modeld_test, runs CMD with
#   MODELD_TEST_PG  postgresql://modeld@/modeld_test?host=<dir>   (the store URL)
#   PGTMP_DIR       the directory (socket, data/, log)
#   PGTMP_CTL       a command prefix that runs pg_ctl on this cluster as its owner, e.g.
#                   `$PGTMP_CTL restart -m fast` (the e2e test of a database restart uses it)
# and stops the server and removes the directory when CMD ends (or on a signal). Exits with
# CMD's status.
#
# Root: postgres refuses to run as root, and CI runs as root in a fresh Debian container, so as
# root the cluster is owned by and runs as the `postgres` system user that Debian's postgresql
# package creates (or $MODELD_PG_USER), through runuser. As any other user it runs as that user.
# The server is tuned for tests, not durability (fsync off).
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "pgtmp: no PostgreSQL server binaries (apt-get install postgresql)" >&2
    exit 2
fi

as=()
if [ "$(id -u)" = 0 ]; then
    dir=$(mktemp -d /tmp/modeld-pg.XXXXXX) # $TMPDIR may be root's own, closed to the server
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/modeld-pg.XXXXXX")
fi
if [ "$(id -u)" = 0 ]; then
    user=${MODELD_PG_USER:-postgres}
    if ! id "$user" >/dev/null 2>&1; then
        echo "pgtmp: running as root needs the user '$user' (the postgresql package makes it)" >&2
        rm -rf "$dir"
        exit 2
    fi
    chown "$user" "$dir"
    as=(runuser -u "$user" --)
fi
chmod 0755 "$dir"

stop() {
    "${as[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

"${as[@]}" "$PGBIN/initdb" -D "$dir/data" -A trust -U modeld -E UTF8 --no-locale -N \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
opts="-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off"
opts="$opts -c full_page_writes=off -c max_connections=100 -c shared_buffers=16MB"
"${as[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 -o "$opts" start >/dev/null ||
    { cat "$dir/log" >&2; exit 1; }
"$PGBIN/createdb" -h "$dir" -U modeld modeld_test

export MODELD_TEST_PG="postgresql://modeld@/modeld_test?host=$dir"
export PGTMP_DIR="$dir"
export PGTMP_CTL="${as[*]} $PGBIN/pg_ctl -D $dir/data -l $dir/log -w -t 60 -o \"$opts\""
set +e
"$@"
rc=$?
set -e
exit $rc
