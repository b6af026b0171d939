#!/usr/bin/env bash
# Download the wheels loadtests/gpu_run.sh installs on the lent GPU machine (no network there;
# Python 3.12, x86-64; torch, transformers, httpx, tokenizers already present: see
# shared/notes/gpu-machine.md). Run on the CPU machine, from the repo root, before the GPU
# command; loadtests/wheels/ is git-ignored and carried to the device (about 28 MB in all).
#
#   serve/  what `transformers serve` needs and the machine lacks: fastapi 0.136.3 (newer ones
#           import opentelemetry), pydantic 2.14.3, openai 2.30.0 (3.x needs httpx2), uvicorn...
#   gw/     the reference gateway and the load generator, resolved from this project's pins:
#           starlette, uvicorn, openai 3.54.0 (+ httpx2, httpcore2, truststore), pyyaml,
#           jsonschema-rs, orjson, cryptography (sealing.py, imported by the app), locust 2.47 (+ gevent, greenlet, pyzmq, msgpack, flask, ...).
#           No matplotlib (with numpy it would double the payload): plots are drawn afterwards
#           on the CPU machine from results.json (python -m loadtests.overhead --render).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
DEST=loadtests/wheels
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
          --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64
          --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_5_x86_64
          --platform manylinux1_x86_64)
rm -rf "$DEST/serve" "$DEST/gw"
mkdir -p "$DEST/serve" "$DEST/gw"
"$PIP" download -q "${PLATFORM[@]}" --no-deps -d "$DEST/serve" \
    fastapi==0.136.3 "starlette<1" uvicorn pydantic==2.14.3 pydantic-core==2.50.4 annotated-types \
    annotated-doc typing-inspection openai==2.30.0 distro jiter sniffio python-multipart
"$PIP" download -q "${PLATFORM[@]}" -d "$DEST/gw" \
    "openai==3.54.0" "starlette>=1.10" "uvicorn>=0.54" uvloop httptools orjson "jsonschema-rs>=0.60,<0.61" pyyaml \
    "locust==2.47.0" h11 "websockets>=13" "cryptography>=44,<51"
du -sh "$DEST/serve" "$DEST/gw" "$DEST"
