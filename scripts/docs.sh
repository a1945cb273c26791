#!/usr/bin/env bash
# Build the documentation site strictly into build/docs/html (warnings are errors).
#   bash scripts/docs.sh          build
#   bash scripts/docs.sh serve    build, then serve it on http://localhost:${PORT:-8000}
# Creates (or reuses) .venv and installs dynvi with its docs extra.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${DOCS_OUT:-build/docs/html}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if [ -z "${DYNVI_SKIP_INSTALL:-}" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[docs]"
fi
.venv/bin/python -m sphinx -W --keep-going -q -b html docs "$OUT"
echo "docs built in $OUT"
if [ "${1:-}" = "serve" ]; then
  exec .venv/bin/python -m http.server "${PORT:-8000}" --directory "$OUT"
fi
