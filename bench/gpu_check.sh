#!/usr/bin/env bash
# The GPU check of the speed issue: the LSTM and the hybrid LSTM trained for two epochs over as many users
# as the full-scale benchmark's training window (cohorts dt 1-7 of the 1x twin, 841,943 users, 70 % of them
# in the training split), with mixed precision and pinned memory, at the models' default batch (128) and at
# a batch sized for the card; it prints seconds per epoch and sequences per second.
#
#   bench/gpu_check.sh prepare      here, once: a 20,000-user twin's tensors into .gpu_check/small (4 MB)
#   bench/gpu_check.sh run          on the lent machine, with carry [".gpu_check/small"]
#
# The lent machine has torch but neither DuckDB nor Dagster, and full-scale tensors are too big to send, so
# `run` repeats the small twin's users up to the full-scale count (bench/tile_tensors.py says why that
# keeps what an epoch costs). Settings: BATCHES (default "128 1024"), WORKERS (DataLoader processes,
# default 8), EPOCHS (default 2), USERS (default 841943), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
stage=.gpu_check
python=${PYTHON:-python3}
case "${1:-}" in
  prepare)
    rm -rf "$stage/source" "$stage/data" "$stage/small" "$stage/dagster_home"
    churn-dagster generate --out "$stage/source" --users 20000 --seed 0
    mkdir -p "$stage/dagster_home"
    DAGSTER_HOME=$PWD/$stage/dagster_home churn-dagster materialize --source "$stage/source" --data-dir "$stage/data" --data-only
    mkdir -p "$stage/small/tensors"
    for day in 01 02 03 04 05 06 07; do
      cp -rL "$stage/data/tensors/cohort=2019-11-$day" "$stage/small/tensors/"
    done
    du -sh "$stage/small"
    ;;
  run)
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    work=$(mktemp -d)
    "$python" -m bench.tile_tensors --data-dir "$stage/small" --out "$work" --users "${USERS:-841943}"
    for batch in ${BATCHES:-128 1024}; do
      "$python" -m bench.train_epoch --data-dir "$work" --epochs "${EPOCHS:-2}" --batch-size "$batch" \
        --num-workers "${WORKERS:-8}"
    done
    rm -rf "$work"
    ;;
  *)
    echo "usage: bench/gpu_check.sh prepare|run" >&2
    exit 2
    ;;
esac
