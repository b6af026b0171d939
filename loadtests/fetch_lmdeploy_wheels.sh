#!/usr/bin/env bash
# Download what loadtests/lmdeploy_gpu.sh installs on the lent GPU machine (no network there;
# Python 3.12, x86-64; torch 2.11 (CUDA), transformers, accelerate, numpy, aiohttp, httpx,
# tokenizers, safetensors are already there: shared/notes/gpu-machine.md). Run on the CPU machine,
# from the repo root; loadtests/wheels/ is git-ignored and carried to the device.
#
# The lmdeploy wheel is ~107 MB, over the 64 MiB one command may carry, and almost all of it is
# TurboMind (lmdeploy/turbomind/_turbomind*.so, 364 MB unpacked, plus libxgrammar.a). The
# PyTorch engine (`--backend pytorch`) does not load it, so this script repacks the wheel
# without those two files (lmdeploy-slim/, a few MB) instead of sending it in parts; the RECORD
# is rewritten so pip accepts it. The untouched wheel stays in loadtests/wheels/lmdeploy-full/
# (not carried) for reference. respcheck/ holds the checker's own needs (it runs there too).
#
# lmdeploy's runtime needs, installed with --no-deps (the pins keep what is on the machine):
# fastapi/uvicorn/pydantic (not there), openai>=2.45 (lmdeploy's pin; 2.x needs no httpx2),
# fire, mmengine-lite, einops, partial-json-parser, shortuuid, pybase64, pyzmq, cloudpickle,
# sentencepiece, tiktoken, openai-harmony, xgrammar, peft<=0.14, protobuf, pillow, timm.
# Not brought: ray (the single-GPU engine runs without it), tilelang, flash-linear-attention,
# opencv, rdkit (only some model families import them).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
PY=${PY:-.venv/bin/python}
VERSION=${LMDEPLOY_VERSION:-0.18.0}
DEST=loadtests/wheels
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
          --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64
          --platform manylinux1_x86_64)
rm -rf "$DEST/lmdeploy-slim" "$DEST/lmdeploy-deps" "$DEST/respcheck"
mkdir -p "$DEST/lmdeploy-full" "$DEST/lmdeploy-slim" "$DEST/lmdeploy-deps" "$DEST/respcheck"
[ -f "$DEST/lmdeploy-full/lmdeploy-$VERSION-cp312-cp312-manylinux_2_28_x86_64.whl" ] || \
    "$PIP" download -q "${PLATFORM[@]}" --no-deps -d "$DEST/lmdeploy-full" "lmdeploy==$VERSION"
"$PY" - "$DEST/lmdeploy-full/lmdeploy-$VERSION-cp312-cp312-manylinux_2_28_x86_64.whl" "$DEST/lmdeploy-slim" <<'PYEOF'
import base64, hashlib, sys, zipfile
from pathlib import Path
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
drop = lambda n: n.startswith("lmdeploy/turbomind/_turbomind") or n.endswith("libxgrammar.a")
out = dest / src.name
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
    record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
    rows = []
    for info in zin.infolist():
        if drop(info.filename) or info.filename == record_name:
            continue
        data = zin.read(info)
        zout.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{info.filename},sha256={digest},{len(data)}")
    rows.append(f"{record_name},,")
    zout.writestr(record_name, "\n".join(rows) + "\n")
print(f"{out}: {out.stat().st_size / 1e6:.1f} MB (was {src.stat().st_size / 1e6:.1f} MB)")
PYEOF
"$PIP" download -q "${PLATFORM[@]}" --no-deps -d "$DEST/lmdeploy-deps" \
    fastapi==0.136.3 "starlette<1" uvicorn pydantic==2.14.3 pydantic-core==2.50.4 annotated-types \
    annotated-doc typing-inspection "openai>=2.45,<3" distro jiter sniffio python-multipart \
    fire termcolor mmengine-lite addict yapf rich markdown-it-py mdurl pygments einops \
    partial-json-parser shortuuid pybase64 pyzmq cloudpickle sentencepiece tiktoken regex \
    openai-harmony xgrammar "peft<=0.14.0" protobuf pillow timm h11 click platformdirs \
    "apache-tvm-ffi==0.1.11" ninja
# respcheck itself runs there too (from the carried tree): its own needs, resolved from pyproject
"$PIP" download -q "${PLATFORM[@]}" -d "$DEST/respcheck" .
# Not needed there, and they push the carry past 64 MiB: uvloop is on that machine already;
# watchfiles is a uvicorn extra; hypothesis (+ sortedcontainers) serves only
# `respcheck fuzz`, imported lazily.
# httptools stays: reference_gateway.http_protocol imports it (the 2026-12-05 run without it
# got lmdeploy ready, then respcheck stopped at that import).
rm -f "$DEST"/respcheck/{uvloop,watchfiles,hypothesis,sortedcontainers}-*.whl
du -sh "$DEST/lmdeploy-slim" "$DEST/lmdeploy-deps" "$DEST/respcheck"
