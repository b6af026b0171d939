"""Real clients against a target: would Codex, the Agents SDK, the AI SDK and openai-node work?

``respcheck clients --target T`` (and ``respcheck run --clients ...``) runs, for each selected
client, its driver (clients/drivers/, one small script per client) against the target's base URL
and model. A driver runs a fixed task with the real, pinned client (clients/package-lock.json,
clients/requirements.txt; scripts/install-clients.sh installs them): a text turn, a tool round,
a follow-up turn, and prints one JSON line (``{"client", "version", "status", "steps",
"error"}``). This module starts it in its own process group, kills the group at the deadline,
and turns its line into one entry of summary.json's ``clients`` list:

    {"client": "codex", "version": "0.171.0", "status": "pass" | "fail" | "skip",
     "steps": [{"step": "text" | "tool" | "follow_up", "status": ..., "error": ...}],
     "error": "the first failing step's error, in the client's own words" | null,
     "duration_s": 4.2}

A client that is not installed is ``skip`` (never pass) with the error "... is not installed:
run scripts/install-clients.sh". The clients live next to the checkout (clients/ and
.venv-clients/ at the repository root); a respcheck installed from the wheel has none, and every
client is ``skip`` there: the scenarios under suites/scenarios/clients/ replay the request shapes
each client sends, so the suite still says whether a server takes them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import __version__
from harness.core.findings import FAIL, PASS, SKIP, UNSUPPORTED
from harness.targets.target import Target

# The checkout's root: clients/ (drivers, package.json, node_modules) and .venv-clients/.
ROOT = Path(__file__).resolve().parents[2]
STEPS = ("text", "tool", "follow_up")
INSTALL_HINT = "run scripts/install-clients.sh"
# Seconds one step of a driver may take (each client call is bounded by it in the driver); the
# driver process as a whole gets len(STEPS) times that plus DRIVER_SLACK_S before its process
# group is killed. A CPU vLLM answers a turn in well under a minute.
DEFAULT_STEP_DEADLINE_S = 120.0
DRIVER_SLACK_S = 30.0
MAX_ERROR_CHARS = 600
# The key the drivers send (a target that wants a real one gets --api-key).
PLACEHOLDER_API_KEY = "respcheck"


@dataclass(frozen=True, slots=True)
class Client:
    """One real client: its driver and what must be on disk for it to run."""

    name: str
    title: str            # what a person calls it, with the package
    driver: str           # file under clients/drivers/
    runtime: str          # "node", "python" (this interpreter; stdlib only) or "clients-venv"
    needs: tuple[str, ...]  # paths under ROOT that an installed client has

    def command(self, root: Path) -> list[str] | None:
        """The driver's command line (without arguments), or None when it cannot run here."""
        if any(not (root / p).exists() for p in self.needs):
            return None
        script = str(root / "clients" / "drivers" / self.driver)
        if self.runtime == "clients-venv":
            return [str(root / ".venv-clients" / "bin" / "python"), script]
        node = shutil.which("node")
        if node is None:
            return None
        return [node, script] if self.runtime == "node" else [sys.executable, script]


CLIENTS: tuple[Client, ...] = (
    Client("codex", "Codex CLI (npm @openai/codex)", "codex.py", "python",
           ("clients/node_modules/@openai/codex/package.json", "clients/node_modules/.bin/codex")),
    Client("agents", "OpenAI Agents SDK (PyPI openai-agents)", "agents_sdk.py", "clients-venv",
           (".venv-clients/bin/python",)),
    Client("ai-sdk", "Vercel AI SDK (npm ai + @ai-sdk/openai)", "ai_sdk.mjs", "node",
           ("clients/node_modules/ai/package.json",
            "clients/node_modules/@ai-sdk/openai/package.json")),
    Client("openai-node", "openai Node SDK (npm openai)", "openai_node.mjs", "node",
           ("clients/node_modules/openai/package.json",)),
)
CLIENT_NAMES = tuple(c.name for c in CLIENTS)


def select(names: list[str] | None) -> list[Client]:
    """The clients named (all when ``names`` is empty or holds "all"), in CLIENTS order;
    ValueError naming the unknown one."""
    wanted = {n.strip() for raw in names or () for n in raw.split(",") if n.strip()}
    if not wanted or "all" in wanted:
        return list(CLIENTS)
    unknown = sorted(wanted - set(CLIENT_NAMES))
    if unknown:
        raise ValueError(f"no client named {unknown[0]!r}; choose from {', '.join(CLIENT_NAMES)}"
                         " or all")
    return [c for c in CLIENTS if c.name in wanted]


def _cut(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


def _skipped(client: Client, reason: str) -> dict:
    return {"client": client.name, "title": client.title, "version": None, "status": SKIP,
            "steps": [{"step": s, "status": SKIP, "error": None} for s in STEPS],
            "error": reason, "duration_s": 0.0}


def run_client(client: Client, target: Target, *, step_deadline_s: float = DEFAULT_STEP_DEADLINE_S,
               root: Path | None = None, slack_s: float = DRIVER_SLACK_S) -> dict:
    """Run one client's driver against ``target``; its ``clients`` entry (module docstring).
    ``root``: where clients/ and .venv-clients/ are (default ROOT, the checkout)."""
    root = ROOT if root is None else root
    command = client.command(root)
    if command is None:
        return _skipped(client, f"{client.name} is not installed: {INSTALL_HINT}")
    args = [*command, "--base-url", target.base_url, "--model", target.model,
            "--api-key", target.api_key or PLACEHOLDER_API_KEY, "--deadline", f"{step_deadline_s:g}"]
    limit = step_deadline_s * len(STEPS) + slack_s
    started = time.monotonic()
    proc = subprocess.Popen(args, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        out, err = proc.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    duration = round(time.monotonic() - started, 3)
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith("{")), None)
    try:
        entry = json.loads(line) if line else None
    except ValueError:
        entry = None
    if not isinstance(entry, dict) or entry.get("status") not in (PASS, FAIL, SKIP):
        why = (f"the driver did not finish within {limit:g} s (killed)" if timed_out else
               f"the driver printed no result (exit {proc.returncode}): "
               + ((err.strip().splitlines() or ["no output"])[-1]))
        entry = {"client": client.name, "version": None, "status": FAIL, "error": _cut(why),
                 "steps": [{"step": s, "status": FAIL, "error": None} for s in STEPS]}
    steps = {s.get("step"): s for s in entry.get("steps") or [] if isinstance(s, dict)}
    return {"client": client.name, "title": client.title, "version": entry.get("version"),
            "status": entry["status"],
            "steps": [{"step": s, "status": (steps.get(s) or {}).get("status", SKIP),
                       "error": (steps.get(s) or {}).get("error")} for s in STEPS],
            "error": _cut(entry["error"]) if entry.get("error") else None,
            "duration_s": duration}


def run_clients(target: Target, clients: list[Client], *,
                step_deadline_s: float = DEFAULT_STEP_DEADLINE_S, root: Path | None = None,
                progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Each client in turn against ``target``; the ``clients`` list of summary.json."""
    out = []
    for client in clients:
        entry = run_client(client, target, step_deadline_s=step_deadline_s, root=root)
        out.append(entry)
        if progress is not None:
            progress(entry)
    return out


def totals(entries: list[dict]) -> dict[str, int]:
    """summary.json's ``clients_totals``: how many clients passed, failed, were skipped."""
    counts = Counter(e.get("status") for e in entries)
    return {PASS: counts[PASS], FAIL: counts[FAIL], SKIP: counts[SKIP]}


def clients_summary(target: Target, entries: list[dict], *, started_at: str,
                    duration_s: float) -> dict:
    """summary.json of ``respcheck clients`` (no scenarios were run: ``results`` is empty)."""
    return {"tool": "respcheck", "version": __version__, "profile": "openai",
            "target": target.to_dict(), "started_at": started_at, "duration_s": duration_s,
            "totals": {s: 0 for s in (PASS, FAIL, UNSUPPORTED, SKIP)}, "results": [],
            "scenarios": [], "clients": entries, "clients_totals": totals(entries)}


def describe(entry: dict) -> str:
    """One console line for a client's entry: ``codex 0.171.0  FAIL  text: {...}``."""
    steps = " ".join(f"{s['step']}={s['status']}" for s in entry["steps"])
    line = f"{entry['client']:<12} {entry.get('version') or '-':<10} {entry['status'].upper():<5} {steps}"
    return line + (f"  {entry['error']}" if entry.get("error") else "")
