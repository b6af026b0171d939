#!/usr/bin/env bash
# Train the tool-following model (harness/targets/tool_model/) on the lent GPU machine in one
# command, then evaluate it there with check.py. Run from the repo root (the `run` tool does):
#   bash loadtests/tool_model_gpu.sh
# Writes $OUT/model/ (the model directory to copy to harness/targets/tool_model/weights/),
# $OUT/train.log, $OUT/check.log, $OUT/check.json. Nothing to carry: torch, transformers,
# tokenizers and jinja2 are on that machine (shared/notes/gpu-machine.md).
# Knobs: TRAIN_S (training seconds, 300), STEPS (12000), LR (1.5e-3), BATCH (64), EXAMPLES (60000).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/tool-model-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true
(nvidia-smi -L || true) | tee "$OUT/nvidia-smi.txt"
$PY -c 'import sys, torch, transformers, tokenizers, jinja2; print(sys.version.split()[0], torch.__version__, transformers.__version__, tokenizers.__version__, jinja2.__version__, torch.cuda.is_available())'
$PY -c 'import jsonschema' 2>/dev/null || echo "no jsonschema here: check.py skips schema validation"
DEVICE=cuda
$PY -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' || DEVICE=cpu
$PY -m harness.targets.tool_model.train "$OUT/model" --device "$DEVICE" --time-budget "${TRAIN_S:-300}" \
    --steps "${STEPS:-12000}" --lr "${LR:-1.5e-3}" --batch "${BATCH:-64}" --examples "${EXAMPLES:-60000}" \
    2>&1 | tee "$OUT/train.log"
$PY -m harness.targets.tool_model.check "$OUT/model" --n 200 --json "$OUT/check.json" 2>&1 | tee "$OUT/check.log" || true
ls -la "$OUT/model"
