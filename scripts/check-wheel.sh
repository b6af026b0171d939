#!/usr/bin/env bash
# Builds the wheel, installs it (not editable) in a fresh venv, and runs the two faces from it:
# `respcheck run` on the embedded gateway, and `respcheck serve` answering a real POST.
# The wheel carries no Pyodide (scripts/install-pyodide.sh installs it into a checkout), so the
# two code_interpreter scenarios are `unsupported` there, never `fail`.
# An editable install hides a package or a data file left out of the wheel; this does not.
# Run from anywhere; it works in a temp folder and removes it. Exit 0 when both work.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
server_pid=""
# setuptools builds in the checkout's build/: leave it as it was found.
had_build=""; [ -e "$repo/build" ] && had_build=1
cleanup() {
    local rc=$?
    [ -n "$had_build" ] || rm -rf "$repo/build"
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
fail() { echo "check-wheel.sh: $*" >&2; exit 1; }

python3 -m venv "$work/venv"
"$work/venv/bin/pip" wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo" >"$work/pip.log" 2>&1 ||
    { tail -20 "$work/pip.log" >&2; fail "could not build the wheel of $repo"; }
"$work/venv/bin/pip" install --quiet "$work"/dist/*.whl >"$work/pip.log" 2>&1 ||
    { tail -20 "$work/pip.log" >&2; fail "the wheel did not install"; }

# Outside the source tree, so that nothing is imported from the checkout.
cd "$work"
rc=0
"$work/venv/bin/respcheck" run --report-dir "$work/report" >"$work/run.log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
    tail -20 "$work/run.log" >&2
    fail "respcheck run from the wheel exited $rc (0 expected)"
fi
"$work/venv/bin/python" - "$work/report/summary.json" <<'EOF' || fail "respcheck run from the wheel judged nothing"
import json, sys
totals = json.load(open(sys.argv[1]))["totals"]
print(f"check-wheel.sh: respcheck run from the wheel: {totals}")
sys.exit(0 if totals["pass"] > 0 and totals["fail"] == 0 else 1)
EOF

port="$("$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$work/venv/bin/respcheck" serve --port "$port" --db :memory: >"$work/serve.log" 2>&1 &
server_pid=$!
"$work/venv/bin/python" - "$port" <<'EOF' || { tail -20 "$work/serve.log" >&2; fail "respcheck serve from the wheel did not answer"; }
import sys, time
import httpx
base = f"http://127.0.0.1:{sys.argv[1]}/v1"
deadline = time.monotonic() + 60  # the embedded upstream starts first
while True:
    try:
        if httpx.get(base.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
            break
    except httpx.TransportError:
        pass
    if time.monotonic() > deadline:
        sys.exit("no /health within 60 s")
    time.sleep(0.2)
model = httpx.get(base + "/models", timeout=10).json()["data"][0]["id"]
answer = httpx.post(base + "/responses", json={"model": model, "input": "Say hello", "max_output_tokens": 32},
                    timeout=30)
body = answer.json()
assert answer.status_code == 200 and body["status"] == "completed", (answer.status_code, body)
print(f"check-wheel.sh: respcheck serve from the wheel answered {body['id']} ({body['status']})")
EOF
