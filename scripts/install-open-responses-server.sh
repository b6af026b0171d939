#!/usr/bin/env bash
# Install open-responses-server (PyPI) into .venv-open-responses-server, so that
# `respcheck run --target open-responses-server` can spawn it: a Responses API in front of a
# chat-completions upstream (vLLM, or the embedded mock upstream), configured by environment.
#
# Idempotent: does nothing when the pinned version is already in the venv.
# Usage: scripts/install-open-responses-server.sh [VENV_DIR]   (default: .venv-open-responses-server)
# Environment: PYTHON (default python3), OPEN_RESPONSES_SERVER_VERSION (default 0.4.1).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-open-responses-server}"
python="${PYTHON:-python3}"
version="${OPEN_RESPONSES_SERVER_VERSION:-0.4.1}"

if "$venv/bin/python" -c "import sys, importlib.metadata as m
sys.exit(m.version('open-responses-server') != '$version')" 2>/dev/null; then
    echo "open-responses-server $version already in $venv"
else
    echo "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet "open-responses-server==$version"
fi
"$venv/bin/python" -c 'import sys, importlib.metadata as m; print("open-responses-server", m.version("open-responses-server"), "in", sys.prefix)'
