#!/usr/bin/env bash
# `--workers N` scale-out of the reference gateway on the lent GPU machine's 16 cores, against the
# paced mock (no GPU used), in one command of at most 10 minutes (issue 20, item 5): the gateway
# as `python -m reference_gateway --workers N` for N = 1, 2, 4, 8 side by side with direct, at
# 256 and 1,024 streams, with the CPU of every process per token event (loadtests/cpu.py).
# The mock runs as MOCK_WORKERS processes on one port and the load generator as LOAD_WORKERS
# locust workers, so that neither is what runs out of CPU (their columns show it).
#
# Before: bash loadtests/fetch_gpu_wheels.sh (CPU machine; fills loadtests/wheels/, carried along).
# Run:    OUT=... bash loadtests/gpu_workers.sh   (everything lands in $OUT/workers)
# After:  python -m loadtests.overhead --render $OUT/workers/results.json --md reports/benchmarks/gateway-workers-gpu.md
#
# Knobs: LEVELS (256,1024) GW_WORKERS (1,2,4,8) ROUNDS (2) ROUND_S (5) WARMUP_S (2) LOAD_WORKERS (6)
# MOCK_WORKERS (3) PYTHON (python3) SKIP_WHEELS (0: install loadtests/wheels/gw first)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${OUT:-/tmp/respcheck-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_workers.log") 2>&1
PY=${PYTHON:-python3}
WORK=$(mktemp -d /tmp/respcheck-gpu-workers.XXXXXX)
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    timeout 120 $PY -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$WORK/gw" \
        loadtests/wheels/gw/*.whl
fi
echo "machine: $(uname -a); $(nproc) cores; $($PY --version)"
timeout 560 env PYTHONPATH="$REPO:$WORK/gw" $PY -m loadtests.overhead \
    --levels "${LEVELS:-256,1024}" --gateway-workers "${GW_WORKERS:-1,2,4,8}" --rounds "${ROUNDS:-2}" \
    --round-duration "${ROUND_S:-5}" --warmup "${WARMUP_S:-2}" --workers "${LOAD_WORKERS:-6}" \
    --mock-workers "${MOCK_WORKERS:-3}" --out "$OUT/workers" \
    --label "paced mock x${MOCK_WORKERS:-3} on the GPU machine's CPU cores"
