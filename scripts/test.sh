#!/usr/bin/env bash
# Create (or reuse) .venv, build the dynvi wheel and install it (not editable) with
# its test and docs extras, then: ruff (lint + format check), mypy on the public
# API, the strict docs build, and the whole test suite against the installed wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
WHEELS=$(mktemp -d)
.venv/bin/python -m pip wheel -q --no-deps -w "$WHEELS" .
WHEEL=$(ls "$WHEELS"/dynvi-*.whl)
.venv/bin/python -m pip install -q "$WHEEL[test,docs]"
.venv/bin/python -m pip install -q --no-deps --force-reinstall "$WHEEL"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
DYNVI_SKIP_INSTALL=1 bash scripts/docs.sh
# The suite runs from a copy without dynopt/ and genvi/, so that the imports
# resolve to the installed wheel (tests/test_installed.py checks it).
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE" "$WHEELS"' EXIT
cp -r tests benchmarks docs README.md conftest.py pyproject.toml "$STAGE"/
cd "$STAGE"
DYNVI_TEST_INSTALLED=1 DYNVI_REQUIRE_DOCS=1 DYNVI_DOCS_HTML="$ROOT/build/docs/html" \
  "$ROOT"/.venv/bin/python -m pytest -n 2 -q -p no:cacheprovider "$@"
