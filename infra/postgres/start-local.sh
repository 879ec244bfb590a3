#!/usr/bin/env bash
# Bring up a PostgreSQL cluster for the Prefect server on this host, and print its URL.
#
#   infra/postgres/start-local.sh BASE_DIR
#   eval "$(infra/postgres/start-local.sh /srv/aircast/postgres)"   # exports the URL
#
# BASE_DIR holds everything: pgdata/ (the cluster), run/ (its unix socket), postgres.log and,
# when no password was given, password (generated once, mode 600). Idempotent: an existing
# cluster is started (or left running), an existing database is kept.
#
# Environment (all optional):
#   POSTGRES_USER      the cluster's superuser and the URL's user        (default: prefect)
#   POSTGRES_PASSWORD  its password; default: BASE_DIR/password, generated on first run
#   POSTGRES_DB        the database the Prefect server uses              (default: prefect)
#   PGPORT             TCP port, on 127.0.0.1 only                        (default: 5432)
#   PG_BIN             directory of initdb/pg_ctl (default: found on PATH or /usr/lib/postgresql)
#   PG_RUN_AS          owner of the cluster when run as root              (default: postgres)
#
# stdout is one line, `export PREFECT_API_DATABASE_CONNECTION_URL=...`; everything else goes
# to stderr, so that the output can be eval'ed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$here/common.sh"

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BASE_DIR" >&2
    exit 2
fi
mkdir -p "$1"
base=$(cd "$1" && pwd)
user="${POSTGRES_USER:-prefect}"
db="${POSTGRES_DB:-prefect}"
port="${PGPORT:-5432}"
pgdata="$base/pgdata"
sock="$base/run"
log="$base/postgres.log"

# Identifiers go into SQL and the URL unquoted: keep them to what needs no quoting anywhere.
for name in "$user" "$db"; do
    if [[ ! "$name" =~ ^[a-z_][a-z0-9_]*$ ]]; then
        echo "error: '$name' is not a plain lower-case identifier ([a-z_][a-z0-9_]*);" \
            "choose another POSTGRES_USER / POSTGRES_DB" >&2
        exit 2
    fi
done
if [[ ! "$port" =~ ^[0-9]+$ ]]; then
    echo "error: PGPORT='$port' is not a port number" >&2
    exit 2
fi
# The kernel limits a unix socket's path to 107 bytes.
if ((${#sock} + 20 > 107)); then
    echo "error: the socket path $sock/.s.PGSQL.$port is too long for a unix socket;" \
        "choose a shorter BASE_DIR" >&2
    exit 2
fi

PG_BIN=$(find_pg_bin)
PG_OWNER=$(pg_owner)

mkdir -p "$pgdata" "$sock"
chmod 700 "$pgdata" "$sock"
if [[ $EUID -eq 0 ]]; then
    own "$base" "$pgdata" "$sock"
    if ! runuser -u "$PG_OWNER" -- test -w "$pgdata"; then
        echo "error: $PG_OWNER cannot write $pgdata: a parent directory of $base is closed" \
            "to it; choose a BASE_DIR under a directory it can enter (e.g. /srv, /var/lib)" >&2
        exit 1
    fi
fi

password="${POSTGRES_PASSWORD:-}"
if [[ -z "$password" ]]; then
    if [[ ! -s "$base/password" ]]; then
        # hex: nothing in it needs escaping in a URL
        (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$base/password")
    fi
    password=$(<"$base/password")
fi

if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    echo "initialising a PostgreSQL cluster in $pgdata (owner $PG_OWNER)" >&2
    pwfile=$(mktemp)
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$password" >"$pwfile"
    own "$pwfile"
    # local (socket) connections: trust, the socket directory is the owner's alone (mode 700);
    # TCP on 127.0.0.1: password (scram), as the Prefect server connects
    as_owner "$PG_BIN/initdb" --pgdata="$pgdata" --username="$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C >&2
    rm -f "$pwfile"
    echo "include_if_exists = 'aircast.conf'" >>"$pgdata/postgresql.conf"
fi

# Rewritten on every start, so a changed PGPORT takes effect; a file rather than `pg_ctl -o`,
# whose option string goes through a shell.
cat >"$pgdata/aircast.conf" <<EOF
# written by infra/postgres/start-local.sh; changes are lost on its next run
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
EOF
own "$pgdata/aircast.conf"

if as_owner "$PG_BIN/pg_ctl" status --pgdata="$pgdata" >/dev/null 2>&1; then
    echo "PostgreSQL is already running on $pgdata" >&2
else
    touch "$log"
    own "$log"
    if ! as_owner "$PG_BIN/pg_ctl" start --pgdata="$pgdata" --log="$log" --wait --timeout=60 \
        >&2; then
        echo "error: PostgreSQL did not start; the end of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
fi

psql=("$PG_BIN/psql" --host="$sock" --port="$port" --username="$user" --no-psqlrc
    --quiet --tuples-only --no-align)
if [[ -z "$("${psql[@]}" --dbname=postgres \
    --command="select 1 from pg_database where datname = '$db'")" ]]; then
    "${psql[@]}" --dbname=postgres --command="create database $db" >/dev/null
    echo "created the database $db" >&2
fi
# The password the URL below carries, also for a cluster made with another one; through stdin,
# so that it shows in no process list.
printf "alter role %s password '%s';\n" "$user" "${password//\'/\'\'}" |
    "${psql[@]}" --dbname=postgres >/dev/null

echo "PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port," \
    "database $db, user $user; data $pgdata, log $log" >&2
echo "stop it with: $here/stop-local.sh $base" >&2
echo "export PREFECT_API_DATABASE_CONNECTION_URL='postgresql+asyncpg://$user:$(urlencode "$password")@127.0.0.1:$port/$db'"
