#!/usr/bin/env bash
# Create (or reuse) .venv, install dynvi with its benchmark extras, run the headline benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[bench]"
.venv/bin/python -m benchmarks "$@"
