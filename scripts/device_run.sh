#!/usr/bin/env bash
# The prepared GPU run (see scripts/device_run.py): installs mrirecon without touching the
# machine's CUDA torch, then runs the CUDA tests, the GPU benchmarks and the training probe.
#   bash scripts/device_run.sh --out "$OUT" [--train-minutes N] [--data .device_data/train.npz]
#   bash scripts/device_run.sh --dry-run --out /tmp/x      # CPU, tiny sizes
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
for a in "$@"; do [ "$a" = "--dry-run" ] && dry=1; done
if [ "$dry" = 0 ]; then
    # Packages the GPU image lacks travel as wheels in .whl/ (scripts/device_wheels.sh makes them);
    # nothing is fetched there, and torch is never reinstalled.
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
fi
exec python3 scripts/device_run.py "$@"
