"""Real servers the harness starts itself, besides vLLM: how each is installed, started and
known to be ready. Each runs from what its own install script put in place, on 127.0.0.1 and a
free port, in its own process group, its output in ``REPORT_DIR/<name>.log``
(harness/targets/spawn.py), and is stopped at the end of the run.

    transformers-serve      `transformers serve` (scripts/install-transformers-serve.sh,
                            .venv-transformers) on the tool-following model when its weights
                            are committed (tool_model/weights), else on the tiny model with
                            random weights on disk (model_weights.py); the model is named per
                            request by its directory
    llama.cpp               `llama-server --jinja` (scripts/install-llama-cpp.sh: the binary in
                            the cache, gguf-py in .venv-llama-cpp) on a GGUF written from those
                            same weights (gguf_export.py), cached in the cache's gguf/
    litellm                 the LiteLLM proxy (scripts/install-litellm.sh, .venv-litellm): its
                            /v1/responses in front of the embedded mock upstream's chat completions
    open-responses-server   open-responses-server (scripts/install-open-responses-server.sh,
                            .venv-open-responses-server) in front of the same mock upstream

Why the two proxies front the embedded mock upstream (reference_gateway/mock_upstream.py) and
not vLLM: the mock is deterministic and follows the tool protocol, so what the suite finds
there is the proxy's own translation, never an effect of random weights; and it needs no vLLM,
so CI judges both in seconds. It is the upstream `reference` judges too, so the columns
`reference`, `litellm` and `open-responses-server` of one comparison differ only by the
gateway in front of one model.

Not installed: one line naming the install script (TargetError upstairs, exit 2).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.targets import vllm_model
from harness.targets.model_dir import cache_root, ensure_model_dir
from harness.targets.model_weights import ensure_weights_dir
from harness.targets.pool import ServerPool, Upstream
from harness.targets.spawn import SpawnedServer, SpawnError, free_port

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # scripts/install-llama-cpp.sh
LLAMA_SERVED_MODEL = "tiny"
LLAMA_CONTEXT = 4096
MOCK_MODEL = "mock-1"  # the embedded upstream's default model (reference_gateway/mock_upstream.py)
MOCK_UPSTREAM_KEY = "mock-upstream"
# Served to the proxies: any key works for the mock upstream; the proxies insist on one.
PROXY_UPSTREAM_KEY = "sk-respcheck-mock"
GGUF_EXPORT = Path(__file__).with_name("gguf_export.py")
# How long writing the GGUF may take (a second here; a cold venv start is most of it).
GGUF_TIMEOUT_S = 120.0

Notify = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one server: argv and environment, the path that answers 200 when it is
    ready, the model to send, files to write first (under the log folder, which is also the
    working directory), and the path the API is under."""
    argv: list[str]
    ready_path: str
    model: str
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    api_path: str = "/v1"
    api_key: str | None = None


def find_in_checkout(rel: str) -> Path:
    """``rel`` under the working directory, else next to this project's checkout (the venvs
    the install scripts make live in the repository root)."""
    path = Path(rel).expanduser()
    if path.is_absolute():
        return path
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / path).exists():
            return base / path
    return Path.cwd() / path


def llama_server_binary() -> Path:
    env = os.environ.get("RESPCHECK_LLAMA_SERVER")
    return Path(env).expanduser() if env else cache_root() / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}"


# name -> (install script, the files that must exist)
def _requirements(name: str) -> list[Path]:
    return {
        "transformers-serve": [find_in_checkout(".venv-transformers/bin/transformers")],
        "llama.cpp": [llama_server_binary(), find_in_checkout(".venv-llama-cpp/bin/python")],
        "litellm": [find_in_checkout(".venv-litellm/bin/litellm")],
        "open-responses-server": [find_in_checkout(".venv-open-responses-server/bin/python")],
    }[name]


SPAWNED = ("transformers-serve", "llama.cpp", "litellm", "open-responses-server")


def install_script(name: str) -> str:
    return f"scripts/install-{name.replace('.', '-')}.sh"


def is_installed(name: str) -> bool:
    return all(p.exists() for p in _requirements(name))


def _weights() -> Path:
    """What transformers serve and llama.cpp serve: the tool-following model when its weights
    are in the checkout (vLLM's default too, vllm_model.default), so that their tool scenarios
    judge the server; else the tiny Llama with deterministic random weights (model_weights.py)."""
    if vllm_model.default() == vllm_model.TOOL:
        return vllm_model.WEIGHTS_DIR
    return ensure_weights_dir(ensure_model_dir())


def ensure_gguf(weights_dir: Path) -> Path:
    """The GGUF of ``weights_dir`` (cached in the cache's ``gguf/``; rewritten when the weights,
    the tokenizer or gguf_export.py change: their hash is the ``.stamp`` file)."""
    digest = hashlib.sha256(GGUF_EXPORT.read_bytes())
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"):
        digest.update(f.encode() + b"\0" + (weights_dir / f).read_bytes())
    # in the cache, never beside the weights: the tool model's are in the checkout
    out = cache_root() / "gguf" / f"{weights_dir.parent.name}-{weights_dir.name.removesuffix('-weights')}.gguf"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = out.with_name(out.name + ".stamp")
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == digest.hexdigest():
        return out
    python = find_in_checkout(".venv-llama-cpp/bin/python")
    try:
        done = subprocess.run([str(python), str(GGUF_EXPORT), str(weights_dir), str(out)],
                capture_output=True, text=True, timeout=GGUF_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpawnError(f"could not write the GGUF of {weights_dir}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpawnError(f"could not write the GGUF of {weights_dir}: {last}")
    stamp.write_text(digest.hexdigest() + "\n")
    return out


def _launch(name: str, port: int, upstream: Upstream | None) -> Launch:
    if name == "transformers-serve":
        weights = _weights()
        return Launch(
            [str(find_in_checkout(".venv-transformers/bin/transformers")), "serve",
             "--host", "127.0.0.1", "--port", str(port), str(weights)],
            "/v1/models", str(weights), env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if name == "llama.cpp":
        gguf = ensure_gguf(_weights())
        return Launch(
            [str(llama_server_binary()), "-m", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--jinja", "--alias", LLAMA_SERVED_MODEL,
             "-c", str(LLAMA_CONTEXT), "--threads", "2", "--no-webui",
             # greedy unless a request says otherwise, as vLLM and transformers serve read the
             # model's generation_config.json (llama-server does not: its default is 0.8)
             "--temp", "0"],
            "/health", LLAMA_SERVED_MODEL)
    assert upstream is not None
    if name == "litellm":
        # The proxy refuses to start without a master key; a fresh one per run, which the
        # harness then sends (and redacts in transcripts, as any --api-key).
        master_key = f"sk-respcheck-{secrets.token_hex(16)}"
        config = {
            "model_list": [{"model_name": upstream.model, "litellm_params": {
                # custom_openai/: no Responses config of its own, so LiteLLM bridges
                # /v1/responses through the upstream's /v1/chat/completions (its docs,
                # https://docs.litellm.ai/docs/response_api_native_passthrough)
                "model": f"custom_openai/{upstream.model}", "api_base": upstream.base_url,
                "api_key": PROXY_UPSTREAM_KEY}}],
        }
        return Launch(
            [str(find_in_checkout(".venv-litellm/bin/litellm")), "--config", "{litellm.yaml}",
             "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
            "/health/liveliness", upstream.model or MOCK_MODEL,
            env={"LITELLM_LOG": "INFO", "LITELLM_TELEMETRY": "False",
                 "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISABLE_SCHEMA_UPDATE": "True",
                 "LITELLM_MASTER_KEY": master_key},
            api_key=master_key,
            files={"litellm.yaml": json.dumps(config, indent=1)})
    if name == "open-responses-server":
        return Launch(
            [str(find_in_checkout(".venv-open-responses-server/bin/python")), "-m",
             "open_responses_server.cli", "start"],
            "/health", upstream.model or MOCK_MODEL,
            # Its Responses API is POST /responses, at the root (api_controller.py; its README
            # sets OPENAI_BASE_URL=http://localhost:8080 for clients): any other path, /v1/...
            # included, is proxied to the upstream as /v1/PATH. So it is judged at its root.
            api_path="",
            env={"OPENAI_BASE_URL_INTERNAL": upstream.base_url.removesuffix("/v1"),
                "OPENAI_BASE_URL": f"http://127.0.0.1:{port}",
                "OPENAI_API_KEY": PROXY_UPSTREAM_KEY,
                "API_ADAPTER_HOST": "127.0.0.1", "API_ADAPTER_PORT": str(port)})
    raise KeyError(name)


@contextlib.contextmanager
def spawn_server(name: str, *, pool: ServerPool, start_timeout_s: float,
                notify: Notify) -> Iterator[Upstream]:
    """Start ``name`` (one of SPAWNED), yield it as an Upstream, stop it afterwards.
    SpawnError (one line) when it is not installed or does not come up."""
    if not is_installed(name):
        raise SpawnError(f"{name} is not installed: run {install_script(name)}")
    upstream = None
    if name in ("litellm", "open-responses-server"):
        upstream = pool.get(MOCK_UPSTREAM_KEY, _mock_upstream)
    port = free_port()
    try:
        launch = _launch(name, port, upstream)
    except ModuleNotFoundError as exc:  # tokenizers missing in the project's venv
        raise SpawnError(str(exc)) from None
    except OSError as exc:
        raise SpawnError(f"cannot write the tiny model under {cache_root()}: {exc}; "
                "set $RESPCHECK_CACHE") from None
    # absolute: the server runs in it, and config files are named to it by path
    log_dir = (pool.log_dir if pool.log_dir is not None else cache_root() / "logs").resolve()
    log = log_dir / f"{name}.log"
    log_dir.mkdir(parents=True, exist_ok=True)
    if log.exists():
        log.unlink()  # one run per log
    argv = list(launch.argv)
    for fname, text in launch.files.items():  # a config file, named in argv as {NAME}
        (log_dir / fname).write_text(text)
        argv = [a.replace(f"{{{fname}}}", str(log_dir / fname)) for a in argv]
    notify(f"starting {name} on 127.0.0.1:{port} (log {log}; up to {start_timeout_s:g} s)")
    server = SpawnedServer(argv, ready_url=f"http://127.0.0.1:{port}{launch.ready_path}",
                           log_path=log, name=name, env=os.environ | launch.env,
                           cwd=log_dir, start_timeout_s=start_timeout_s)
    server.start()
    notify(f"{name} ready after {server.ready_after_s:.1f} s")
    try:
        yield Upstream(name, f"http://127.0.0.1:{port}{launch.api_path}", launch.model,
                       launch.api_key)
    finally:
        server.close()


@contextlib.contextmanager
def _mock_upstream() -> Iterator[Upstream]:
    # deferred: reference_gateway.launch brings in uvicorn and starlette
    from reference_gateway.launch import start_mock_upstream

    with start_mock_upstream() as mock:
        yield Upstream("mock-upstream", mock.base_url, MOCK_MODEL)
