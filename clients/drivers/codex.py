"""Drive Codex CLI (npm @openai/codex, pinned in clients/package.json) against a Responses server.

    python3 clients/drivers/codex.py --base-url URL --model M [--api-key K] [--deadline S]

Prints one JSON line: {"client", "version", "status", "steps": [{"step", "status", "error"}],
"error"} (harness/run/clients.py reads it). Standard library only.

Codex is configured the way the servers' own docs tell users to (a ``model_providers`` entry
with ``wire_api = "responses"`` in a throwaway ``CODEX_HOME/config.toml``, the key read from an
environment variable), and run as ``codex exec --skip-git-repo-check --json`` in a throwaway
working folder, three times:

  text       a plain prompt; passes when the turn completes with an agent message.
  tool       "call the tool to run `echo respcheck`": passes when Codex ran a command through
             its exec tool (a ``command_execution`` item) and the turn completed after it.
  follow_up  ``codex exec resume <thread of the text step>``: Codex resends its own history;
             passes when that turn completes with an agent message.

Sandbox: ``danger-full-access``. The command runs in the throwaway folder and is whatever the
model asked for; the only thing being judged is the server. Codex's Linux sandbox (landlock and
seccomp) is refused inside many containers and CI runners, and a refused sandbox would be
reported as the server's failure. Each codex process runs in its own process group and is killed
with it at the step's deadline. The first error is Codex's own text (its ``turn.failed`` /
``error`` event), so a user sees what Codex would show them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENT = "codex"
HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent / "node_modules" / "@openai" / "codex"
BIN = HERE.parent / "node_modules" / ".bin" / "codex"
KEY_ENV = "RESPCHECK_CLIENT_API_KEY"
TEXT_PROMPT = "Say hello in one short sentence."
TOOL_PROMPT = ("Call the tool that runs shell commands to run `echo respcheck`, "
               "then tell me what it printed.")
FOLLOW_UP_PROMPT = "Now say goodbye in one short sentence."
# Errors longer than this are cut: the report quotes them, a whole HTML page would drown it.
MAX_ERROR_CHARS = 600


def version() -> str | None:
    try:
        return json.loads((PACKAGE / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def config_toml(base_url: str, model: str) -> str:
    return (f'model = {json.dumps(model)}\n'
            'model_provider = "respcheck"\n'
            'approval_policy = "never"\n'
            'sandbox_mode = "danger-full-access"\n'
            '[model_providers.respcheck]\n'
            'name = "respcheck target"\n'
            f'base_url = {json.dumps(base_url)}\n'
            f'env_key = "{KEY_ENV}"\n'
            'wire_api = "responses"\n'
            'request_max_retries = 0\n'
            'stream_max_retries = 0\n')


def run_codex(args: list[str], *, home: Path, cwd: Path, api_key: str,
              deadline_s: float) -> tuple[list[dict], str, str | None]:
    """(events, stderr, timeout message or None) of one ``codex exec`` in its own process group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CODEX_"))}
    env.update({"CODEX_HOME": str(home), KEY_ENV: api_key, "NO_COLOR": "1"})
    proc = subprocess.Popen([str(BIN), "exec", "--skip-git-repo-check", "--json", *args],
                            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, text=True)
    timed_out = None
    try:
        out, err = proc.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = f"codex did not finish within {deadline_s:g} s (killed)"
    events = []
    for line in out.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, err, timed_out


def _cut(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


def judge(events: list[dict], stderr: str, timed_out: str | None, *, need_command: bool) -> str | None:
    """None when the step passed, else the first error, in Codex's own words."""
    for e in events:
        if e.get("type") == "turn.failed":
            return _cut((e.get("error") or {}).get("message") or json.dumps(e))
    for e in events:
        if e.get("type") == "error":
            return _cut(e.get("message") or json.dumps(e))
    if timed_out:
        return timed_out
    if not any(e.get("type") == "turn.completed" for e in events):
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        return _cut(f"the turn did not complete: {tail[0]}")
    items = [e.get("item") or {} for e in events if e.get("type") == "item.completed"]
    if need_command and not any(i.get("type") == "command_execution" for i in items):
        return "Codex ran no command: the model answered without calling its exec tool"
    if not any(i.get("type") == "agent_message" for i in items):
        return "the turn completed without an agent message"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--api-key", default="respcheck")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds per step")
    a = p.parse_args()
    result = {"client": CLIENT, "version": version(), "status": "fail", "steps": [], "error": None}
    if result["version"] is None or not BIN.exists():
        result.update(status="skip", error="codex is not installed: run scripts/install-clients.sh")
        print(json.dumps(result))
        return 0
    home = Path(tempfile.mkdtemp(prefix="respcheck-codex-home-"))
    work = Path(tempfile.mkdtemp(prefix="respcheck-codex-work-"))
    try:
        (home / "config.toml").write_text(config_toml(a.base_url.rstrip("/"), a.model))
        run = {"home": home, "cwd": work, "api_key": a.api_key or "respcheck",
               "deadline_s": a.deadline}
        thread = None
        for step, args, need_command in (("text", [TEXT_PROMPT], False),
                                         ("tool", [TOOL_PROMPT], True),
                                         ("follow_up", None, False)):
            started = time.monotonic()
            if step == "follow_up":
                if thread is None:
                    result["steps"].append({"step": step, "status": "skip", "duration_s": 0.0,
                                            "error": "the text step started no session"})
                    continue
                args = ["resume", thread, FOLLOW_UP_PROMPT]
            events, stderr, timed_out = run_codex(args, **run)
            if step == "text":
                thread = next((e.get("thread_id") for e in events
                               if e.get("type") == "thread.started"), None)
            error = judge(events, stderr, timed_out, need_command=need_command)
            result["steps"].append({"step": step, "status": "fail" if error else "pass",
                                    "duration_s": round(time.monotonic() - started, 3),
                                    "error": error})
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    failed = [s for s in result["steps"] if s["status"] != "pass"]
    result["status"] = "fail" if failed else "pass"
    result["error"] = next((f"{s['step']}: {s['error']}" for s in failed if s["error"]), None)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
