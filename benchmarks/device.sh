#!/usr/bin/env bash
# The GPU check of issue 12, for a machine with PyTorch, JAX and Python 3.12 but no TensorFlow
# and no network (the GPU machines this project is lent: one NVIDIA H200).
#
# 1. Here, once, with the network: fill the wheel folder (~61 MiB, ignored by git) with what
#    segsweep needs beyond the image's torch, JAX, NumPy and SciPy:
#        bash benchmarks/device.sh --fetch-wheels
#    It takes mlflow-skinny, not mlflow: full MLflow pulls pyarrow, matplotlib and the server
#    (over 64 MiB with the rest); a study run needs only the client, the SQLite store
#    (sqlalchemy, alembic) and pandas (for logging a model).
# 2. On the GPU machine (the device tool carries the ignored folder: carry benchmarks/wheels):
#        bash benchmarks/device.sh
#    It installs those wheels offline into a venv that sees the image's packages, runs segsweep
#    from src/ (PYTHONPATH), then, within 8 minutes:
#    - a 2-trial `study run --gpus 0,0` on JAX and on torch: both workers on one GPU, exactly
#      2 trials, none left RUNNING (checked: exit 1 otherwise, after the measurements);
#    - training images/s at 256 px, float32 against mixed precision, for each backend, at the
#      largest batch of 32, 128, 512 that fits (benchmarks/device_throughput.py).
#    Everything it prints, and the studies' logs, also go to $OUT (or /tmp/segsweep-device).
# SEGSWEEP_DEVICE_CPU=1 rehearses it all on a CPU (--workers 2, small sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WHEELS=${SEGSWEEP_WHEELS:-$REPO/benchmarks/wheels}
NEEDS=(keras==3.15.1 optuna==5.1.0 mlflow-skinny==3.17.2 sqlalchemy alembic pandas pillow
  tifffile scikit-learn click)

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$WHEELS"
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --abi cp312 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any -d "$WHEELS" "${NEEDS[@]}"
  rm -f "$WHEELS"/numpy-*.whl "$WHEELS"/scipy-*.whl "$WHEELS"/ml_dtypes-*.whl  # JAX brings them
  du -sh "$WHEELS"
  exit 0
fi

OUT=${OUT:-/tmp/segsweep-device}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device.log") 2>&1
START=$SECONDS
stamp() { echo "[$((SECONDS - START)) s] $*"; }

if [ "${SEGSWEEP_DEVICE_CPU:-0}" = 1 ]; then
  PLACE=(--workers 2) SIZE=64 STUDY_SIZE=32 BATCHES=4,8 GPU="" BUDGET=40
else
  PLACE=(--gpus 0,0) SIZE=256 STUDY_SIZE=128 BATCHES=32,128,512 GPU=0 BUDGET=75
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

stamp "installing ${#NEEDS[@]} packages offline from $WHEELS"
VENV=${SEGSWEEP_DEVICE_VENV:-/tmp/segsweep-device-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install -q --no-index --find-links "$WHEELS" "${NEEDS[@]}"
PY=$VENV/bin/python
export PYTHONPATH=$REPO/src:$REPO
KERAS_BACKEND=jax "$PY" -c 'import jax, torch, keras; print("jax", jax.__version__,
  jax.devices(), "| torch", torch.__version__, torch.cuda.is_available(), "| keras",
  keras.__version__)'

WORK=$(mktemp -d /tmp/segsweep-device-XXXX)
FAILED=0
for backend in jax torch; do
  stamp "2-trial study on $backend, ${PLACE[*]}"
  dir=$WORK/$backend
  mkdir -p "$dir" && cd "$dir"
  "$PY" -m segsweep data synth ph --n 24 --size "$STUDY_SIZE" --seed 1 >/dev/null
  "$PY" -m segsweep study create s --data ph --set "train.backend=\"$backend\"" \
    --set "data.image_size=$STUDY_SIZE" --set train.epochs=3 --set train.batch_size=8 \
    --set 'space.base_filters=[16]' --set 'space.depth=[3]' --set 'search.pruner="none"' \
    --set tracking.overlay_every=100 >/dev/null
  timeout 150 "$PY" -m segsweep study run --trials 2 "${PLACE[@]}" || echo "study run: exit $?"
  "$PY" -m segsweep study status --json > status.json
  "$PY" - "$backend" <<'EOF' || FAILED=1
import json, sys
s = json.load(open("status.json"))
n = sum(s["states"].get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL"))
print(f"{sys.argv[1]}: {n} trials finished, {s['states'].get('RUNNING', 0)} RUNNING, "
      f"states {s['states']}, best {s['best'] and s['best']['value']}")
sys.exit(0 if n == 2 and not s["states"].get("RUNNING", 0) else 1)
EOF
  cp -r studies/logs "$OUT/logs-$backend" 2>/dev/null || true
  cd "$REPO"
done

for backend in jax torch; do
  for mixed in off on; do
    if [ $((SECONDS - START)) -gt 420 ]; then  # keep the whole check within 8 minutes
      stamp "throughput: $backend, mixed precision $mixed: skipped, past 7 minutes"
      continue
    fi
    stamp "throughput: $backend, mixed precision $mixed, $SIZE px"
    timeout $((BUDGET + 30)) "$PY" -m benchmarks.device_throughput "$backend" "$mixed" \
      --size "$SIZE" --batches "$BATCHES" --budget "$BUDGET" --gpu "$GPU" \
      2>>"$OUT/throughput-stderr.log" | tee -a "$OUT/throughput.jsonl" || echo "exit $?"
  done
done
stamp "done$([ $FAILED = 0 ] || echo ': a study check FAILED')"
exit $FAILED
