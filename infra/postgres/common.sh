# shellcheck shell=bash
# Sourced by start-local.sh and stop-local.sh: where the PostgreSQL binaries are and how to run
# them as the cluster's owner. Not meant to be run on its own.

# The server binaries: PG_BIN if set, else the directory of `initdb` on PATH, else the newest
# Debian install under /usr/lib/postgresql (Debian keeps pg_ctl and initdb off PATH).
find_pg_bin() {
    if [[ -n "${PG_BIN:-}" ]]; then
        printf '%s\n' "$PG_BIN"
        return
    fi
    local initdb
    if initdb=$(command -v initdb); then
        dirname "$(readlink -f "$initdb")"
        return
    fi
    local newest
    newest=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)
    if [[ -z "$newest" ]]; then
        echo "error: no PostgreSQL server binaries (initdb, pg_ctl) found; install them" \
            "(Debian: apt-get install postgresql-15) or set PG_BIN to their directory" >&2
        return 1
    fi
    printf '%s\n' "$newest"
}

# initdb and postgres refuse to run as root (a server bug must not own the machine), so as
# root the cluster belongs to PG_RUN_AS (default: the `postgres` user the Debian package
# creates) and every server command runs as that user.
pg_owner() {
    if [[ $EUID -eq 0 ]]; then
        local user="${PG_RUN_AS:-postgres}"
        if ! id -u "$user" >/dev/null 2>&1; then
            echo "error: running as root, and the user '$user' that should own the cluster" \
                "does not exist; create it (useradd --system $user) or set PG_RUN_AS" >&2
            return 1
        fi
        printf '%s\n' "$user"
    else
        id -un
    fi
}

# Run a command as the cluster's owner, from / (the caller's working directory may be
# unreadable for that user, which makes initdb and pg_ctl warn or fail).
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$PG_OWNER" -- "$@")
    else
        (cd / && "$@")
    fi
}

# Hand files to the cluster's owner (only needed, and only possible, as root).
own() {
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_OWNER": "$@"
    fi
}

# Percent-encode a string for the password part of a URL (RFC 3986: all but unreserved).
urlencode() {
    local LC_ALL=C s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
        [A-Za-z0-9._~-]) out+="$c" ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s\n' "$out"
}
