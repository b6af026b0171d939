#!/usr/bin/env bash
# The GPU benchmark in one command (at most 10 minutes), run from the repo root on the lent GPU
# machine (shared/notes/gpu-machine.md): install the carried wheels, build a random-weight
# 0.76 B Llama, start `transformers serve --continuous-batching` on it, put the reference
# gateway in front, and sweep concurrency 1, 16, 64 directly against /v1/chat/completions and
# through the gateway's /v1/responses, interleaved, streamed, 128 output tokens each
# (python -m loadtests.overhead). Everything lands in $OUT: gpu_run.log, serve.log,
# sweep/results.json (+ overhead.md, report.html, samples.csv), conformance/ (a short
# conformance-under-load run through the gateway), nvidia-smi.txt.
#
# Before: bash loadtests/fetch_gpu_wheels.sh (on the CPU machine; fills loadtests/wheels/).
# After:  python -m loadtests.overhead --render $OUT/sweep/results.json \
#             --md reports/benchmarks/gpu-transformers-serve.md
#
# Knobs (environment): LEVELS (1,16,64) ROUNDS (2) ROUND_S (15) WARMUP_S (3) OUTPUT_TOKENS (128)
# INPUT_TOKENS (100) DEVICE (cuda) PYTHON (python3) CONFORMANCE (1) SERVE_ARGS (extra flags for
# transformers serve, e.g. --cb-use-cuda-graph) RESPCHECK_GPU_MODEL=small (tiny model, a CPU dry run).
# Dry run on a CPU machine without the wheels (as tested before hand-over):
#   SKIP_WHEELS=1 PY_SERVE=.venv-vllm/bin/python PY_GW=.venv/bin/python DEVICE=cpu \
#   RESPCHECK_GPU_MODEL=small LEVELS=1,4 ROUNDS=1 ROUND_S=4 OUTPUT_TOKENS=16 bash loadtests/gpu_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${OUT:-/tmp/respcheck-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_run.log") 2>&1
LEVELS=${LEVELS:-1,16,64}
ROUNDS=${ROUNDS:-2}
ROUND_S=${ROUND_S:-15}
WARMUP_S=${WARMUP_S:-3}
OUTPUT_TOKENS=${OUTPUT_TOKENS:-128}
INPUT_TOKENS=${INPUT_TOKENS:-100}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
PY_SERVE=${PY_SERVE:-$PY}   # runs the model builder and transformers serve
PY_GW=${PY_GW:-$PY}         # runs the gateway and the load generator
PORT=${PORT:-8000}
CONFORMANCE=${CONFORMANCE:-1}
SERVE_ARGS=${SERVE_ARGS:-}
BUDGET_S=${BUDGET_S:-570}          # stop starting optional steps past this
SERVE_READY_S=${SERVE_READY_S:-180}
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
log() { echo "[gpu_run +$(elapsed)s] $*"; }

WORK=$(mktemp -d /tmp/respcheck-gpu.XXXXXX)
SERVE_PID=""
GW_PID=""
cleanup() {
    for pid in $GW_PID $SERVE_PID; do
        if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done
    sleep 1
    for pid in $GW_PID $SERVE_PID; do
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    log "done (exit $1)"
}
trap 'cleanup $?' EXIT

log "machine: $(uname -a)"
(command -v nvidia-smi >/dev/null && nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1) || true
$PY_SERVE -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'

# 1. wheels -> two target dirs (transformers serve and the gateway pin different openai/starlette)
SETS="serve gw"
[ "${SKIP_WHEELS:-0}" = 1 ] && SETS=""
mkdir -p "$WORK/serve" "$WORK/gw"
for set in $SETS; do
    if ! ls loadtests/wheels/$set/*.whl >/dev/null 2>&1; then
        echo "loadtests/wheels/$set is empty: run bash loadtests/fetch_gpu_wheels.sh first" >&2
        exit 2
    fi
    timeout 120 $PY_GW -m pip install -q --no-index --no-deps --disable-pip-version-check \
        --target "$WORK/$set" loadtests/wheels/$set/*.whl
done
SERVE_PATH="$WORK/serve${SERVE_PYTHONPATH_EXTRA:+:$SERVE_PYTHONPATH_EXTRA}"
GW_PATH="$REPO:$WORK/gw"
log "wheels installed in $WORK"

# 2. the model
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
MODEL_DIR="$WORK/model"
timeout 180 env PYTHONPATH="$REPO" $PY_SERVE -m loadtests.gpu_model "$MODEL_DIR" "$DEVICE"
log "model built"

# 3. the upstream: transformers serve with continuous batching
SERVE_BIN="$(dirname "$(command -v "$PY_SERVE")")/transformers"
[ -x "$SERVE_BIN" ] || SERVE_BIN=$(command -v transformers || true)
if [ -n "$SERVE_BIN" ]; then SERVE_CMD=("$SERVE_BIN" serve); else SERVE_CMD=($PY_SERVE -m transformers.cli.transformers serve); fi
DTYPE_ARGS=(--dtype bfloat16)
# shellcheck disable=SC2086
PYTHONPATH="$SERVE_PATH" "${SERVE_CMD[@]}" "$MODEL_DIR" --continuous-batching --device "$DEVICE" \
    "${DTYPE_ARGS[@]}" --port "$PORT" $SERVE_ARGS > "$OUT/serve.log" 2>&1 &
SERVE_PID=$!
UPSTREAM="http://127.0.0.1:$PORT/v1"
if ! timeout "$SERVE_READY_S" $PY_GW - "$PORT" "$SERVE_PID" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("transformers serve exited")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    time.sleep(1)
EOF
then
    log "transformers serve did not become ready; last lines of serve.log:"
    tail -30 "$OUT/serve.log"
    exit 1
fi
log "transformers serve ready"

# the model name it serves, and one warm-up request (first-request compilation/allocation)
MODEL=$(timeout 120 $PY_GW - "$UPSTREAM" "$MODEL_DIR" <<'EOF'
import json, sys, time, urllib.request
base, model_dir = sys.argv[1], sys.argv[2]
model = model_dir
try:
    with urllib.request.urlopen(base + "/models", timeout=10) as r:
        ids = [m["id"] for m in json.load(r).get("data", [])]
    print("models:", ids, file=sys.stderr)
    model = next((i for i in ids if i == model_dir or i.rstrip("/").endswith(model_dir.rstrip("/").rsplit("/", 1)[-1])), model_dir)
except Exception as exc:  # noqa: BLE001
    print("GET /models failed:", exc, file=sys.stderr)
body = json.dumps({"model": model, "messages": [{"role": "user", "content": "warm up"}],
                   "max_tokens": 8, "stream": False}).encode()
t = time.monotonic()
req = urllib.request.Request(base + "/chat/completions", data=body, headers={"content-type": "application/json"})
with urllib.request.urlopen(req, timeout=100) as r:
    print("warm-up:", r.status, r.read()[:300].decode("utf-8", "replace"), f"{time.monotonic() - t:.1f} s", file=sys.stderr)
print(model)
EOF
)
log "model name for requests: $MODEL"

# 4. the sweep: direct vs through the gateway, interleaved (the gateway is spawned by overhead.py)
timeout $(( BUDGET_S - $(elapsed) + 20 )) env PYTHONPATH="$GW_PATH" $PY_GW -m loadtests.overhead \
    --upstream "$UPSTREAM" --model "$MODEL" --levels "$LEVELS" --rounds "$ROUNDS" \
    --round-duration "$ROUND_S" --warmup "$WARMUP_S" --output-tokens "$OUTPUT_TOKENS" \
    --input-tokens "$INPUT_TOKENS" --out "$OUT/sweep" --label "transformers serve --continuous-batching ($DEVICE, bf16, 0.76B random Llama)"
log "sweep written to $OUT/sweep"

# 5. optional: conformance under load through the gateway (full checks, 16 streams, 10 s)
if [ "$CONFORMANCE" = 1 ] && [ "$(elapsed)" -lt $(( BUDGET_S - 60 )) ]; then
    GW_LOG="$OUT/gateway-conformance.log"
    PYTHONPATH="$GW_PATH" $PY_GW -m loadtests.servers gateway --upstream "$UPSTREAM" --port 8081 \
        > "$WORK/gw.json" 2> "$GW_LOG" &
    GW_PID=$!
    timeout 30 bash -c "until [ -s '$WORK/gw.json' ]; do sleep 0.2; done"
    timeout $(( BUDGET_S - $(elapsed) + 20 )) env PYTHONPATH="$GW_PATH" $PY_GW -m loadtests \
        --target http://127.0.0.1:8081/v1 --model "$MODEL" --users 16 --duration 10s --warmup 2s \
        --output-tokens 64 --input-tokens "$INPUT_TOKENS" --check full --report-dir "$OUT/conformance" \
        --quiet || log "conformance run exit status $? (1: failures or MUST violations; see conformance/)"
fi
log "finished in $(elapsed) s"
