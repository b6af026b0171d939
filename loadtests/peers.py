"""Other Responses API servers in front of the same chat-completions upstream, for
``python -m loadtests.overhead --peer NAME``: the gateway's peers, measured in the same rounds.

- ``litellm``: the LiteLLM proxy (``litellm --config CONFIG.yaml``), the model routed to the
  upstream as ``hosted_vllm/MODEL`` (an OpenAI-compatible chat server; LiteLLM bridges its
  ``/v1/responses`` to chat completions for it);
- ``open-responses-server``: ``open_responses_server.api_controller:app`` under uvicorn, its
  upstream from ``OPENAI_BASE_URL_INTERNAL``.

Neither is a dependency of this project: each is found, in this order, at the path of an
environment variable (``RESPCHECK_LITELLM``: the ``litellm`` executable;
``RESPCHECK_OPEN_RESPONSES_SERVER_PYTHON``: a Python that imports ``open_responses_server``),
in the venv its install script makes (scripts/install-litellm.sh: ``.venv-litellm``,
scripts/install-open-responses-server.sh: ``.venv-open-responses-server``), then on PATH.
A peer that cannot be found is one line saying what to install.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

PEERS = ("litellm", "open-responses-server")
READY_DEADLINE_S = 120.0
REPO = Path(__file__).resolve().parent.parent


class PeerMissing(RuntimeError):
    pass


def _find(env: str, venv_file: str, on_path: str | None) -> str:
    if os.environ.get(env):
        return os.environ[env]
    local = REPO / venv_file
    if local.exists():
        return str(local)
    found = shutil.which(on_path) if on_path else None
    if found:
        return found
    raise PeerMissing(f"not installed: set {env}, or run the install script that makes {venv_file}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Peer:
    """A peer server in a process group of its own, ready once ``GET /health`` (or any route)
    answers; ``base_url`` is what ``/responses`` is appended to; its output in OUT/peer-NAME.log."""

    def __init__(self, name: str, upstream: str, model: str, out: Path) -> None:
        if name not in PEERS:
            raise PeerMissing(f"unknown peer {name!r} (one of {', '.join(PEERS)})")
        self.name = name
        out = out.resolve()   # the peer runs in `out`: a relative --out would be looked up twice
        port = _free_port()
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = out / f"peer-{name}.log"
        env = {**os.environ}
        self.api_key: str | None = None
        if name == "litellm":
            self.api_key = "sk-" + secrets.token_hex(32)  # it refuses to start without a master key
            env["LITELLM_MASTER_KEY"] = self.api_key
            exe = _find("RESPCHECK_LITELLM", ".venv-litellm/bin/litellm", "litellm")
            config = out / "peer-litellm.yaml"
            config.write_text(
                "model_list:\n"
                f"  - model_name: {model}\n"
                "    litellm_params:\n"
                f"      model: hosted_vllm/{model}\n"
                f"      api_base: {upstream}\n"
                "      api_key: none\n"
                "      use_chat_completions_api: true\n"
                "litellm_settings:\n"
                "  drop_params: true\n"
                "  turn_off_message_logging: true\n"
                "general_settings:\n"
                "  disable_spend_logs: true\n")
            cmd = [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
            env.update(LITELLM_LOG="ERROR", DISABLE_SCHEMA_UPDATE="true", LITELLM_TELEMETRY="False")
        else:
            python = _find("RESPCHECK_OPEN_RESPONSES_SERVER_PYTHON", ".venv-open-responses-server/bin/python", None)
            self.base_url = f"http://127.0.0.1:{port}"  # it serves POST /responses, not /v1/responses
            cmd = [python, "-m", "uvicorn", "open_responses_server.api_controller:app", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", "--no-access-log"]
            env.update(OPENAI_BASE_URL_INTERNAL=upstream.removesuffix("/").removesuffix("/v1"),
                       OPENAI_API_KEY="none", API_ADAPTER_HOST="127.0.0.1", API_ADAPTER_PORT=str(port))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True, cwd=out)
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the peer {name} did not start (log: {self.log})")
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.3)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
