#!/usr/bin/env bash
# Stop the PostgreSQL cluster that start-local.sh brought up in BASE_DIR (fast shutdown:
# open sessions are cut, committed work is kept). Does nothing if it is not running.
#
#   infra/postgres/stop-local.sh BASE_DIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$here/common.sh"

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BASE_DIR" >&2
    exit 2
fi
pgdata="$(cd "$1" && pwd)/pgdata"
if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    echo "error: $pgdata is not a PostgreSQL cluster (made by start-local.sh)" >&2
    exit 2
fi
PG_BIN=$(find_pg_bin)
PG_OWNER=$(pg_owner)
if as_owner "$PG_BIN/pg_ctl" status --pgdata="$pgdata" >/dev/null 2>&1; then
    as_owner "$PG_BIN/pg_ctl" stop --pgdata="$pgdata" --mode=fast --wait --timeout=60 >&2
else
    echo "PostgreSQL is not running on $pgdata" >&2
fi
