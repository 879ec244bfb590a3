#!/usr/bin/env bash
# The GPU run's entry point (issue 14): install the carried wheels, then every stage.
#   on the device:  bash bench/gpu/run.sh                  (results in $OUT)
#   on a CPU:       PYTHON=.venv/bin/python OUT=/tmp/o bash bench/gpu/run.sh --dry
# CARRY (default .carry) holds whl/ (cp312 wheels) and default/ (the store), made by
# bench/gpu/make_carry.py; with no wheels there the environment is used as it is.
set -uo pipefail
cd "$(dirname "$0")/../.."
CARRY=${CARRY:-.carry}
PYTHON=${PYTHON:-python3}
: "${OUT:?set OUT to the folder the results go to}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
PY_VERSION=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if compgen -G "$CARRY/whl/*.whl" >/dev/null && [ "$PY_VERSION" != "3.12" ]; then
  echo "the carried wheels are cp312 and this is Python $PY_VERSION: using its packages as they are"
elif compgen -G "$CARRY/whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$CARRY"/whl/*.whl || { echo "installing the wheels failed"; exit 2; }
  export PYTHONPATH="/tmp/site:$PWD"
fi
"$PYTHON" bench/gpu/run.py --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
