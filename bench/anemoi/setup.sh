#!/usr/bin/env bash
# Create the virtual environment bench/bench_store.py runs ECMWF's anemoi-datasets in.
#
#   bash bench/anemoi/setup.sh            # the pinned versions of bench/anemoi/requirements.txt
#   bash bench/anemoi/setup.sh --latest   # newest anemoi-datasets[create]; rewrites the pins
#
# anemoi-datasets gets a venv of its own (bench/.anemoi-venv, git-ignored) because it pins
# zarr 2 while AirCast's store is zarr 3. Everything comes from PyPI as wheels (ecCodes through
# the eccodeslib wheel, so no system library is needed). Idempotent: an existing venv is reused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${ANEMOI_VENV:-$here/../.anemoi-venv}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
if [[ "${1:-}" == "--latest" ]]; then
    "$venv/bin/python" -m pip install --quiet "anemoi-datasets[create]"
    {
        sed -n '1,/^# bench\/anemoi\/setup.sh --latest/p' "$here/requirements.txt"
        "$venv/bin/python" -m pip freeze
    } > "$here/requirements.txt.new"
    mv "$here/requirements.txt.new" "$here/requirements.txt"
else
    "$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt"
fi
"$venv/bin/python" - <<'EOF'
from importlib.metadata import version
import sys
names = ("anemoi-datasets", "anemoi-transform", "earthkit-data", "eccodes", "zarr", "numpy")
print("anemoi venv ready:", sys.executable)
print("  " + ", ".join(f"{n} {version(n)}" for n in names))
EOF
