#!/usr/bin/env bash
# Fresh machine -> the whole test suite. Installs segsweep and its test tools into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# JAX (CPU, ~100 MB) beside TensorFlow, so tests/test_backends.py trains on both; torch's test
# runs wherever torch is installed (PyPI's Linux wheel pulls GBs of CUDA, too much for CI).
.venv/bin/python -m pip install -q -e ".[test,jax]"
.venv/bin/ruff check src tests
# Two processes (pytest-xdist): the process tests mostly wait on TensorFlow start-ups and
# tiny trainings, which leave a second core idle. Tests that share a module's finished study
# go to one process (tests/conftest.py); `-n 0` after the script's name runs them in one.
.venv/bin/python -m pytest -q -n 2 --dist loadgroup "$@"
