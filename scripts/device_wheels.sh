#!/usr/bin/env bash
# Download, here, the wheels that the GPU machine's image lacks (it reaches no registry):
# sigpy, PyWavelets, fastmri, runstats; for its Python 3.12 on x86-64. They land in .whl/
# (git-ignored) and travel with `carry: [".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" -d .whl \
    sigpy==0.1.27 PyWavelets fastmri==0.3.0 runstats
ls -la .whl
