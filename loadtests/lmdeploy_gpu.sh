#!/usr/bin/env bash
# LMDeploy's PyTorch engine on the lent GPU machine, judged by respcheck there (issue 19, part 3).
# One command, run from the repo root (the `run` tool does): bash loadtests/lmdeploy_gpu.sh
#
# Before: bash loadtests/fetch_lmdeploy_wheels.sh on the CPU machine, and carry
#   loadtests/wheels/lmdeploy-slim, loadtests/wheels/lmdeploy-deps, loadtests/wheels/respcheck
# (the lmdeploy wheel without TurboMind, see that script). With the tool model's weights in the
# tree they no longer fit one call: carry respcheck/ with STAGE=install first, then the lmdeploy
# sets (reports/lmdeploy-gpu.md, "How it ran").
# What it does: installs lmdeploy + its missing needs into one folder and respcheck's needs into
# another (they pin different openai releases), starts
#   lmdeploy serve api_server harness/targets/tool_model/weights --backend pytorch
#     --model-name tiny --tool-call-parser qwen --server-port 23333
# (the project's tool-following model: a Llama with a ChatML/Hermes chat template; qwen's parser
# reads <tool_call>{json}</tool_call>), waits for GET /v1/models, then runs
#   respcheck run --target lmdeploy --keep-going --report-dir $OUT/report
# Everything lands in $OUT: lmdeploy.log, report/ (summary.json, report.md, transcripts), run.log.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${OUT:-/tmp/lmdeploy-gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
PY=${PYTHON:-python3}
PORT=23333
MODEL_DIR=${MODEL_DIR:-$REPO/harness/targets/tool_model/weights}
WORK=$(mktemp -d /tmp/lmdeploy-gpu.XXXXXX)
T0=$(date +%s)
log() { echo "[lmdeploy_gpu +$(( $(date +%s) - T0 ))s] $*"; }
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -- -"$SERVER_PID" 2>/dev/null || kill "$SERVER_PID" 2>/dev/null
        sleep 2
        kill -9 -- -"$SERVER_PID" 2>/dev/null || true
    fi
    log "done"
}
trap cleanup EXIT

(nvidia-smi -L || true)
$PY -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'
$PY -c 'import triton; print("triton", triton.__version__)' || echo "no triton"
# Each wheel set installs into $SITES/<set> (kept on the machine while it stays warm): with the
# tool model's weights in the tree, the three sets no longer fit one call's 64 MiB, so
# `STAGE=install` carries respcheck's set alone and installs it, and the next call carries the
# lmdeploy sets and runs (a set already installed and not carried is reused).
SITES=${SITES:-/tmp/lmdeploy-sites}
install_set() {   # install_set NAME DEST WHEEL_DIRS...
    local name=$1 dest=$2; shift 2
    if ls "$1"/*.whl >/dev/null 2>&1; then
        rm -rf "$dest"
        timeout 180 $PY -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$dest" \
            $(for d in "$@"; do echo "$d"/*.whl; done) || { log "pip install ($name) failed"; exit 1; }
        touch "$dest/.installed"
    elif [ ! -f "$dest/.installed" ]; then
        echo "loadtests/wheels/$(basename "$1") is empty and $dest holds no earlier install: run bash loadtests/fetch_lmdeploy_wheels.sh first and carry it"
        exit 2
    fi
}
install_set respcheck "$SITES/rc" loadtests/wheels/respcheck
[ "${STAGE:-}" = install ] && { log "respcheck's wheels installed in $SITES/rc"; exit 0; }
install_set lmdeploy "$SITES/lmd" loadtests/wheels/lmdeploy-slim loadtests/wheels/lmdeploy-deps
log "wheels installed"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHONPATH="$SITES/lmd" $PY -c 'import lmdeploy; print("lmdeploy", lmdeploy.__version__)' || { log "import lmdeploy failed"; exit 1; }

setsid env PYTHONPATH="$SITES/lmd" $PY -m lmdeploy serve api_server "$MODEL_DIR" --backend pytorch \
    --model-name tiny --tool-call-parser qwen --server-name 127.0.0.1 --server-port "$PORT" \
    --cache-max-entry-count 0.05 --session-len 4096 ${LMDEPLOY_ARGS:-} > "$OUT/lmdeploy.log" 2>&1 &
SERVER_PID=$!
READY=0
for _ in $(seq 1 ${READY_S:-240}); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if $PY -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models', timeout=2)" 2>/dev/null; then READY=1; break; fi
    sleep 1
done
if [ "$READY" != 1 ]; then
    log "lmdeploy api_server did not become ready; last lines of lmdeploy.log:"
    tail -40 "$OUT/lmdeploy.log"
    exit 1
fi
log "lmdeploy ready"
$PY - "$PORT" <<'PYEOF' | tee "$OUT/smoke.txt"
import json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/v1"
print(urllib.request.urlopen(base + "/models", timeout=10).read().decode()[:300])
for body in ({"model": "tiny", "input": "Say hello.", "max_output_tokens": 32},
             {"model": "tiny", "input": "What is the weather in Paris?", "max_output_tokens": 64,
              "tools": [{"type": "function", "name": "get_weather", "description": "Current weather for a city",
                         "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                         "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}]}):
    req = urllib.request.Request(base + "/responses", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            print(r.status, r.read().decode()[:1500])
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode()[:1500])
PYEOF
PYTHONPATH="$REPO:$SITES/rc" timeout ${JUDGE_S:-300} $PY -c 'import sys; from harness.faces.cli import main; sys.exit(main())' \
    run --target lmdeploy --keep-going --deadline 30 --report-dir "$OUT/report"
log "respcheck exit status $?"
