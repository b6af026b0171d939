#!/usr/bin/env bash
# Install Hugging Face `transformers serve` into .venv-transformers, so that
# `respcheck run --target transformers-serve` can spawn it on the project's tiny model.
#
#   * torch==2.13.0 first, by exact version: pip takes the CPU build that lies on this machine's
#     disk (/work/.library/env/machines/python.md); a bare `torch`, or a range admitting a newer
#     release, would pull a CUDA build of several GB from the registry;
#   * then transformers with its `serving` extra (FastAPI, uvicorn, the openai types), pinned;
#     pip keeps the torch already there, since 2.13.0 satisfies transformers' range.
#
# Idempotent: does nothing when the pinned versions are already in the venv.
# Usage: scripts/install-transformers-serve.sh [VENV_DIR]   (default: .venv-transformers)
# Environment: PYTHON (default python3), TRANSFORMERS_VERSION (default 5.25.0), TORCH_VERSION (2.13.0).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-transformers}"
python="${PYTHON:-python3}"
version="${TRANSFORMERS_VERSION:-5.25.0}"
torch_version="${TORCH_VERSION:-2.13.0}"

if "$venv/bin/python" -c "import sys, torch, transformers, fastapi
sys.exit(transformers.__version__ != '$version' or not torch.__version__.startswith('$torch_version'))" 2>/dev/null; then
    echo "transformers $version (torch $torch_version) already in $venv"
else
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==$torch_version"
    "$venv/bin/pip" install --quiet "transformers[serving]==$version" "torch==$torch_version"
fi
"$venv/bin/python" -c 'import sys, torch, transformers; print("transformers", transformers.__version__, "torch", torch.__version__, "in", sys.prefix)'
