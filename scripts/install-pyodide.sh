#!/usr/bin/env bash
# Install the code_interpreter sandbox's Node side: Pyodide, exactly the release pinned in
# reference_gateway/sandbox/package.json and package-lock.json, into the git-ignored
# reference_gateway/sandbox/node_modules/ (where reference_gateway/sandbox/spawn.py looks).
# `npm ci` installs what the lock file says, nothing newer; it runs only when the installed
# version differs, so a second run takes well under a second. Needs Node.js >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")/../reference_gateway/sandbox"

command -v node >/dev/null || { echo "install-pyodide.sh: Node.js >= 20 is not on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-pyodide.sh: npm is not on PATH" >&2; exit 1; }
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "install-pyodide.sh: Node.js >= 20 is needed (its permission model), found $(node --version)" >&2
    exit 1
fi

want=$(node -p 'require("./package.json").dependencies.pyodide')
have=$(node -p 'try { require("./node_modules/pyodide/package.json").version } catch { "" }')
if [ "$have" = "$want" ] && [ -f node_modules/pyodide/pyodide.asm.wasm ] &&
        [ -f node_modules/pyodide/python_stdlib.zip ]; then
    echo "install-pyodide.sh: pyodide $want already installed"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "install-pyodide.sh: pyodide $want installed in $(pwd)/node_modules"
