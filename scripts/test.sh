#!/usr/bin/env bash
# Fresh machine -> the whole test suite. Installs segsweep and its test tools into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/ruff check src tests
.venv/bin/python -m pytest -q "$@"
