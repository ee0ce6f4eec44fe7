#!/usr/bin/env bash
# Sets up the machine (system packages, .venv with numba, the pardict package), then runs the main
# job: the seed scenario with numba.typed.Dict (in a subprocess: it aborts) and with pardict.Dict.
#   bash scripts/demo.sh [args for scripts/demo_seed.py]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo
exec .venv/bin/python scripts/demo_seed.py "$@"
