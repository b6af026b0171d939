#!/usr/bin/env bash
# Both GPU jobs of issue 19 in one command (the lent machine is scarce and starts slowly):
#   1. loadtests/tool_model_gpu.sh  -> $OUT/tool/   (train + check the tool-following model)
#   2. loadtests/lmdeploy_gpu.sh    -> $OUT/lmdeploy/ (LMDeploy's PyTorch engine, judged), run at
#      the same time on the tiny random-weight Llama of harness/targets/model_dir.py (weights
#      drawn here: the tool model is not trained yet when LMDeploy starts)
# Run from the repo root with the wheels of loadtests/fetch_lmdeploy_wheels.sh carried. Since the
# tool model's weights are committed (14 MB) the tree and all three wheel sets exceed one call's
# 64 MiB: run lmdeploy_gpu.sh in its two stages instead (reports/lmdeploy-gpu.md).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session-out}
mkdir -p "$OUT/tool" "$OUT/lmdeploy"
TINY=$(mktemp -d /tmp/tiny-llama.XXXXXX)
OUT="$OUT/tool" TRAIN_S=${TRAIN_S:-300} bash loadtests/tool_model_gpu.sh > "$OUT/tool/session.log" 2>&1 &
TOOL_PID=$!
if PYTHONPATH=$PWD RESPCHECK_CACHE="$TINY/cache" python3 - "$TINY/model" <<'PYEOF' > "$OUT/lmdeploy/tiny-model.log" 2>&1
import shutil, sys, torch
from pathlib import Path
from transformers import LlamaConfig, LlamaForCausalLM
from harness.targets.model_dir import ensure_model_dir
src, dest = ensure_model_dir(), Path(sys.argv[1])
shutil.copytree(src, dest)
import json
cfg = json.loads((dest / "config.json").read_text())
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "torch_dtype")}))
model.to(torch.bfloat16).save_pretrained(dest, safe_serialization=True)
for name in ("config.json",):   # ours, not save_pretrained's
    shutil.copy(src / name, dest / name)
print("tiny model in", dest, sorted(p.name for p in dest.iterdir()))
PYEOF
then
    OUT="$OUT/lmdeploy" MODEL_DIR="$TINY/model" JUDGE_S=${JUDGE_S:-240} bash loadtests/lmdeploy_gpu.sh > /dev/null 2>&1
else
    echo "could not build the tiny model (see tiny-model.log)" > "$OUT/lmdeploy/run.log"
fi
wait "$TOOL_PID"
echo "tool model exit $?"
tail -30 "$OUT/tool/session.log"
tail -15 "$OUT/lmdeploy/run.log"
# One archive: what comes back from the lent machine is capped in number of files (a model
# directory and a report folder are over it; 2026-12-05 the tokenizer files were left behind).
tar czf /tmp/gpu-session.tgz -C "$OUT" tool lmdeploy && rm -rf "$OUT/tool" "$OUT/lmdeploy" \
    && mv /tmp/gpu-session.tgz "$OUT/gpu-session.tgz" && ls -la "$OUT"
