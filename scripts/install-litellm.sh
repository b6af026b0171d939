#!/usr/bin/env bash
# Install the LiteLLM proxy into .venv-litellm, so that `respcheck run --target litellm` can
# spawn it: its /v1/responses in front of a chat-completions upstream (the harness writes the
# proxy's config: one model routed to vLLM, or to the embedded mock upstream).
#
# Idempotent: does nothing when the pinned version is already in the venv.
# Usage: scripts/install-litellm.sh [VENV_DIR]   (default: .venv-litellm)
# Environment: PYTHON (default python3), LITELLM_VERSION (default 1.106.12).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-litellm}"
python="${PYTHON:-python3}"
version="${LITELLM_VERSION:-1.106.12}"

installed() {
    "$venv/bin/python" -c "import sys, importlib.metadata as m
sys.exit(m.version('litellm') != '$version')" 2>/dev/null && [ -x "$venv/bin/litellm" ]
}
if installed; then
    echo "litellm $version already in $venv"
else
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "litellm[proxy]==$version"
fi
"$venv/bin/python" -c 'import sys, importlib.metadata as m; print("litellm", m.version("litellm"), "in", sys.prefix)'
