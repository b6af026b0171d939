#!/usr/bin/env bash
# Install the real clients that `respcheck clients` (harness/run/clients.py) drives, exactly as
# pinned by the project's files:
#   clients/package.json + package-lock.json  -> clients/node_modules (npm ci): @openai/codex
#       (Codex CLI), ai + @ai-sdk/openai (the Vercel AI SDK's OpenAI Responses provider), openai
#       (openai-node)
#   clients/requirements.txt                   -> .venv-clients (openai-agents, Python)
# Idempotent: each half runs only when what is installed differs from the pins, so a second run
# takes about a second. Needs Node.js >= 20 with npm, and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "install-clients.sh: Node.js >= 20 is not on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-clients.sh: npm is not on PATH" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "install-clients.sh: Node.js >= 20 is needed, found $(node --version)" >&2
    exit 1
fi

# npm: the lock file's hash is kept next to node_modules after a successful `npm ci`.
lock_hash=$(sha256sum clients/package-lock.json | cut -d' ' -f1)
if [ "$(cat clients/node_modules/.respcheck-lock-sha256 2>/dev/null)" = "$lock_hash" ]; then
    echo "install-clients.sh: node clients already installed (clients/node_modules)"
else
    (cd clients && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_hash" > clients/node_modules/.respcheck-lock-sha256
    echo "install-clients.sh: node clients installed in clients/node_modules"
fi

# Python: the same, with requirements.txt's hash inside the venv.
req_hash=$(sha256sum clients/requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv-clients/.respcheck-requirements-sha256 2>/dev/null)" = "$req_hash" ]; then
    echo "install-clients.sh: python clients already installed (.venv-clients)"
else
    [ -x .venv-clients/bin/python ] || python3 -m venv .venv-clients
    .venv-clients/bin/pip install --quiet --disable-pip-version-check -r clients/requirements.txt
    echo "$req_hash" > .venv-clients/.respcheck-requirements-sha256
    echo "install-clients.sh: python clients installed in .venv-clients"
fi
