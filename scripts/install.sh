#!/usr/bin/env bash
# Install opsrl (editable) with its dependencies.
#   bash scripts/install.sh          # the library and the `opsrl` command
#   bash scripts/install.sh test     # plus the test extras (what the README's test command needs)
#   bash scripts/install.sh ray      # plus Ray for multi-machine sweeps (test,ray: both)
# torch: an installed torch (e.g. your CUDA build) is kept as it is. Without one, the CPU build
# torch==2.13.0 is installed first, so that pip never pulls CUDA packages on a CPU-only machine.
# A non-editable install (pip install .) works too: the wheel carries problems/, solvers/ and sweeps/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install "torch==2.13.0"
fi
extras=${1:-}
"$PY" -m pip install -e ".${extras:+[$extras]}"
