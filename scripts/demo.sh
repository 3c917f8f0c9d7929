#!/usr/bin/env bash
# Fresh machine -> a small segsweep study on the built-in phantom lesion data, on the CPU.
# Installs into .venv, creates study 'lesion' (writing the phantom set to data/phantom on first
# use), runs a few trials with 2 workers, and ends with the best trial, the command that starts
# MLflow's UI from here (.venv/bin/mlflow ui) and the URL of the study's runs in it.
# --no-plan: the hand-sized settings below keep the tour near 2 minutes; `segsweep plan --data
# data/phantom` shows what the data would choose.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
# .venv/bin is deliberately not put on PATH: the commands printed are the ones the user, whose
# PATH lacks it, can type afterwards.
.venv/bin/segsweep study create lesion --exist-ok --no-plan \
  --set data.image_size=64 --set train.epochs=6 --set train.batch_size=16 \
  --set space.base_filters=[8,16] --set space.depth=[3] --set tracking.overlay_every=2
.venv/bin/segsweep study run lesion --trials "${TRIALS:-6}" --workers 2
