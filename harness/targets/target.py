"""Targets: the server a run judges, chosen by ``--target``.

    (none) | reference      the embedded gateway over its embedded deterministic upstream
    http(s)://HOST:PORT/v1  any server, by base URL
    vllm                    a real vLLM spawned here over a tiny model (vllm_model.py)
    lmdeploy, ollama, ...   a server you started, at its documented default URL
    reference+UPSTREAM      the reference gateway in front of UPSTREAM's chat completions
                            (reference+native:UPSTREAM: in front of its own /v1/responses);
                            UPSTREAM is a base URL or a profile name (reference+vllm)

The profiles are data (specs/targets.yaml); `respcheck targets` lists them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from harness.core.catalogue import SpecError, load_profile
from harness.core.transcript import Exchange
from harness.targets import spawned
from harness.targets.model_dir import cache_root
from harness.targets.pool import ServerPool, Upstream
from harness.targets.spawn import (
    DEFAULT_START_TIMEOUT_S,
    SpawnedServer,
    SpawnError,
    free_port,
)
from harness.targets.suite_servers import open_suite_servers
from harness.targets.vllm_model import ModelChoiceError, choose
from reference_gateway.config import GatewayConfig

# How long a preflight GET /models may take before the target is declared unreachable (or the
# run's --deadline, when shorter).
PREFLIGHT_TIMEOUT_S = 10.0
EMBEDDED_MODEL = "mock-1"
KINDS = ("url", "reference", "vllm", "spawned", "external")
PROFILE_FIELDS = ("name", "kind", "description", "default_url", "default_port", "start", "needs",
                  "responses_api", "unsupported", "source", "notes")
NEEDS_FIELDS = ("install", "executable", "module", "python")
COMPOSITE_PREFIX = "reference+"
NATIVE_PREFIX = "native:"

# vLLM: the model name it serves, and the server's flags besides --model, --port and the
# model's own (vllm_model.py: --load-format dummy for the random-weight one)
# (shared/notes/vllm-on-cpu.md, "Command that worked").
VLLM_SERVED_MODEL = "tiny"
VLLM_MAX_MODEL_LEN = 4096
VLLM_ARGS = ("--served-model-name", VLLM_SERVED_MODEL, "--enforce-eager",
             "--dtype", "bfloat16", "--max-model-len", str(VLLM_MAX_MODEL_LEN),
             "--enable-auto-tool-choice", "--tool-call-parser", "hermes")
VLLM_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
            # without it, `store` and `previous_response_id` do not work
            "VLLM_ENABLE_RESPONSES_API_STORE": "1"}
VLLM_LOG_NAME = "vllm.log"

Notify = Callable[[str], None]
# The preflight's GET /models: (base_url, api_key, deadline_s) -> the Exchange. It is the run's
# guarded transport (harness/run/client.py ``get_models``: deadline, body cap, no decoding),
# handed in by the caller because targets/ may not import run/ (README, "Layout").
Preflight = Callable[[str, str | None, float], Exchange]


class TargetError(Exception):
    """The target cannot be used; the message says what to do (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    base_url: str  # ends in /v1
    model: str
    api_key: str | None = None
    # Template variables of the run's own servers (harness/targets/suite_servers.py): {{mcp.tools_url}}
    variables: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "base_url": self.base_url, "model": self.model}


# -- profiles (specs/targets.yaml) ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Needs:
    install: str | None
    executable: str | None
    module: str | None
    python: str | None


@dataclass(frozen=True, slots=True)
class TargetProfile:
    name: str
    kind: str
    description: str
    default_url: str | None
    default_port: int | None
    start: str | None
    needs: Needs
    responses_api: bool
    unsupported: tuple[str, ...]
    source: str | None
    notes: str | None

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in PROFILE_FIELDS} | {
            "needs": {f: getattr(self.needs, f) for f in NEEDS_FIELDS},
            "unsupported": list(self.unsupported)}


@functools.cache
def load_profiles() -> dict[str, TargetProfile]:
    """The profiles of specs/targets.yaml by name; SpecError if a field is missing or wrong."""
    text = resources.files("specs").joinpath("targets.yaml").read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"specs/targets.yaml: {exc}") from None
    out: dict[str, TargetProfile] = {}
    for raw in (data or {}).get("profiles") or []:
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"specs/targets.yaml: profile {name!r}"
        missing = [f for f in PROFILE_FIELDS if not isinstance(raw, dict) or f not in raw]
        if missing:
            raise SpecError(f"{where}: missing {', '.join(missing)}")
        needs = raw["needs"]
        if not isinstance(needs, dict) or set(needs) != set(NEEDS_FIELDS):
            raise SpecError(f"{where}: needs must have exactly {', '.join(NEEDS_FIELDS)}")
        if raw["kind"] not in KINDS:
            raise SpecError(f"{where}: kind {raw['kind']!r} is not one of {', '.join(KINDS)}")
        if raw["kind"] == "external" and not (raw["default_url"] and raw["start"]):
            raise SpecError(f"{where}: an external profile needs default_url and start")
        if raw["kind"] == "spawned" and name not in spawned.SPAWNED:
            raise SpecError(f"{where}: no launcher for a spawned {name!r} in harness/targets/spawned.py")
        if name in out or not isinstance(name, str) or name.startswith(COMPOSITE_PREFIX):
            raise SpecError(f"{where}: duplicate or invalid name")
        out[name] = TargetProfile(
            name=name, kind=raw["kind"], description=raw["description"],
            default_url=raw["default_url"], default_port=raw["default_port"],
            start=" ".join(raw["start"].split()) if raw["start"] else None,
            needs=Needs(**needs), responses_api=bool(raw["responses_api"]),
            unsupported=tuple(raw["unsupported"] or ()), source=raw["source"],
            notes=" ".join(raw["notes"].split()) if raw["notes"] else None)
    return out


def vllm_python() -> Path:
    """The python of vLLM's venv: $RESPCHECK_VLLM_PYTHON, else .venv-vllm/bin/python in the
    working directory, else next to this project's checkout."""
    env = os.environ.get("RESPCHECK_VLLM_PYTHON")
    if env:
        return Path(env).expanduser()
    rel = Path(load_profiles()["vllm"].needs.python or ".venv-vllm/bin/python")
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / rel).exists():
            return base / rel
    return Path.cwd() / rel


def is_installed(profile: TargetProfile) -> bool | None:
    """Whether what the profile needs is installed here; None when it needs nothing."""
    needs = profile.needs
    if profile.kind == "spawned":
        return spawned.is_installed(profile.name)
    if needs.executable:
        return shutil.which(needs.executable) is not None
    if needs.module:
        python = str(vllm_python()) if profile.kind == "vllm" else (
            shutil.which(needs.python or "python3") or "")
        if not python or not Path(python).exists():
            return False
        probe = f"import importlib.util,sys; sys.exit(importlib.util.find_spec({needs.module!r}) is None)"
        try:  # find_spec locates the package without importing it (vllm's import takes seconds)
            return subprocess.run([python, "-c", probe], capture_output=True,
                                  timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False
    return None


# -- opening a target ----------------------------------------------------------------------
def normalize_base_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TargetError(f"target {url!r} is not an http(s) URL; pass e.g. "
                          "--target http://127.0.0.1:8000/v1")
    url = url.removesuffix("/responses")
    if not url.endswith("/v1"):
        url += "/v1"
    return url


def discover_model(base_url: str, api_key: str | None, model: str | None = None, *,
                    preflight: Preflight | None, deadline_s: float | None, notify: Notify,
                    unreachable_hint: str = "start the server or fix --target",
                    label: str | None = None) -> str:
    """The model to send: ``model`` if given, else the first one GET /models lists. The GET is
    made either way: a target that does not answer at all cannot be judged (exit 2), and
    saying so beats a report of every scenario failing transport.reachable. It goes through
    ``preflight`` (the guarded transport), so a server that stalls or floods on /models is cut
    at the deadline or the cap and named for what it did."""
    if preflight is None:
        raise TypeError("open_target needs preflight= (harness.run.client.get_models) to "
                        "open a target it does not start itself")
    deadline = min(PREFLIGHT_TIMEOUT_S, deadline_s) if deadline_s else PREFLIGHT_TIMEOUT_S
    ex = preflight(base_url, api_key, deadline)
    who = f"{label} ({base_url})" if label else f"target {base_url}"
    if ex.status is None:
        error = ex.error or "no answer"
        if error.startswith("no response headers"):
            raise TargetError(f"{who} accepted the connection but GET /models sent {error}; "
                              "fix the server or check --target")
        what = f"{label}: nothing answers at {base_url}" if label else \
            f"target {base_url} is unreachable"
        raise TargetError(f"{what}: {error}; {unreachable_hint}")
    if ex.error:
        what = f"{who} answered GET /models with HTTP {ex.status} but {_body_failure(ex)}"
        if not model:
            raise TargetError(f"{what}; fix the server or pass --model NAME")
        notify(f"{what}; going on with --model {model}")
    if model:
        return model  # any HTTP answer (even 404: /models is optional) proves it is up
    body = ex.json()
    try:
        models = [m["id"] for m in body.get("data", [])]
    except (AttributeError, KeyError, TypeError):
        models = []
    if ex.status != 200 or not models:
        raise TargetError(f"GET {base_url}/models gave HTTP {ex.status} and no model; "
                          "pass --model NAME")
    return models[0]


def _body_failure(ex: Exchange) -> str:
    """The preflight's body went wrong: the transport's words, with what they mean first."""
    error = ex.error or ""
    if "cap" in error and "exceeded" in error:
        return f"an endless body ({error})"
    if "deadline" in error or "timed out" in error:
        return f"a body that did not end in time ({error})"
    return error


def unknown_target_message(spec: str) -> str:
    names = ", ".join(n for n, p in load_profiles().items() if p.kind != "url")
    return (f"unknown target {spec!r}: give a base URL (http://HOST:PORT/v1), a profile "
            f"({names}), or reference+UPSTREAM; see `respcheck targets`")


def resolve_start_timeout(value: float | None) -> float:
    """--start-timeout, else $RESPCHECK_START_TIMEOUT, else the default (300 s)."""
    if value is None:
        env = os.environ.get("RESPCHECK_START_TIMEOUT")
        try:
            value = float(env) if env else DEFAULT_START_TIMEOUT_S
        except ValueError:
            raise TargetError(f"RESPCHECK_START_TIMEOUT={env!r} is not a number of seconds") from None
    if value <= 0:
        raise TargetError(f"the start timeout must be positive, got {value:g}")
    return value


@contextlib.contextmanager
def _open_server(spec: str, *, model: str | None, api_key: str | None,
                 pool: ServerPool, start_timeout_s: float | None,
                 notify: Notify, preflight: Preflight | None,
                 deadline_s: float | None) -> Iterator[Upstream]:
    """A URL, a spawned server (from the run's pool: started once per run), or an external
    profile's default URL, as a running server."""
    if spec.startswith(("http://", "https://")):
        base = normalize_base_url(spec)
        yield Upstream(base.split("//", 1)[1].split("/", 1)[0], base,
                        discover_model(base, api_key, model, preflight=preflight,
                                        deadline_s=deadline_s, notify=notify), api_key)
        return
    profile = load_profiles().get(spec)
    if profile is None or profile.kind in ("url", "reference"):
        raise TargetError(unknown_target_message(spec))
    if profile.kind == "external":
        assert profile.default_url is not None and profile.start is not None
        base = normalize_base_url(profile.default_url)
        hint = f"start it with `{profile.start}` or pass --target URL"
        yield Upstream(profile.name, base,
                        discover_model(base, api_key, model, preflight=preflight,
                                        deadline_s=deadline_s, notify=notify,
                                        unreachable_hint=hint, label=profile.name), api_key)
        return
    if profile.kind == "spawned":
        timeout = resolve_start_timeout(start_timeout_s)
        try:
            server = pool.get(profile.name, lambda: spawned.spawn_server(
                profile.name, pool=pool, start_timeout_s=timeout, notify=notify))
        except SpawnError as exc:
            raise TargetError(str(exc)) from None
        yield dataclasses.replace(server, model=model or server.model)
        return
    vllm = pool.get("vllm", lambda: spawn_vllm(report_dir=pool.log_dir,
                                                 start_timeout_s=start_timeout_s, notify=notify))
    yield Upstream("vllm", vllm.base_url, model or VLLM_SERVED_MODEL)


class _VllmServer:
    def __init__(self, spawned, port: int) -> None:
        self.spawned = spawned
        self.base_url = f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def spawn_vllm(*, report_dir: Path | None = None, start_timeout_s: float | None = None,
               notify: Notify | None = None) -> Iterator[_VllmServer]:
    """Pick the model (vllm_model.choose: the tool-following one unless $RESPCHECK_VLLM_MODEL
    says otherwise), start vLLM on a free port, stop it afterwards."""
    say = notify or (lambda _m: None)
    timeout = resolve_start_timeout(start_timeout_s)
    python = vllm_python()
    if not python.exists():
        raise TargetError("vllm is not installed: run scripts/install-vllm.sh")
    try:
        model = choose()
    except (ModuleNotFoundError, ModelChoiceError) as exc:
        raise TargetError(str(exc)) from None
    except OSError as exc:
        raise TargetError(f"cannot write the tiny model under {cache_root()}: {exc}; "
                          "set $RESPCHECK_CACHE") from None
    port = free_port()
    log = (report_dir if report_dir is not None else cache_root() / "logs") / VLLM_LOG_NAME
    if log.exists():
        log.unlink()  # one run per log
    argv = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model.path),
            *VLLM_ARGS, *model.args, "--port", str(port)]
    say(f"starting vllm on 127.0.0.1:{port} ({model.label}; log {log}; "
        f"up to {timeout:g} s)")
    server = SpawnedServer(argv, ready_url=f"http://127.0.0.1:{port}/v1/models", log_path=log,
                           name="vllm", env=os.environ | VLLM_ENV, start_timeout_s=timeout)
    try:
        server.start()
    except SpawnError as exc:
        raise TargetError(str(exc)) from None
    say(f"vllm ready after {server.ready_after_s:.1f} s")
    try:
        yield _VllmServer(server, port)
    finally:
        server.close()


@contextlib.contextmanager
def open_target(url: str | None = None, *, model: str | None = None,
                api_key: str | None = None, name: str | None = None,
                profile: str = "openai", report_dir: Path | str | None = None,
                start_timeout_s: float | None = None,
                notify: Notify | None = None, preflight: Preflight | None = None,
                deadline_s: float | None = None,
                pool: ServerPool | None = None) -> Iterator[Target]:
    """Yield a ready Target; start (and afterwards stop) whatever the harness owns: the
    embedded gateway, a spawned vLLM or other server, a gateway in front of an upstream.

    ``pool`` holds the spawned servers of a whole run (``respcheck run`` with several
    targets): a server already in it is used, not started again, and it is stopped when the
    pool closes. Without one, this target's servers are stopped with it (their logs in
    ``report_dir``).

    A server the harness does not start (a URL, an external profile) is first asked
    ``GET /models`` through ``preflight`` (harness.run.client.get_models), within
    ``deadline_s`` (the run's --deadline) or PREFLIGHT_TIMEOUT_S, whichever is shorter.

    The reference gateway is configured for the profile being judged: where the profile
    requires the ``data: [DONE]`` sentinel, the gateway sends it (``--done-sentinel``).
    ``notify`` gets one-line progress messages (vLLM takes a minute to start)."""
    try:
        suite = open_suite_servers()
        servers = suite.__enter__()
    except (RuntimeError, OSError) as exc:
        raise TargetError(f"could not start the suite's MCP servers on loopback: {exc}") from None
    own_pool = None
    if pool is None:
        own_pool = pool = ServerPool(log_dir=Path(report_dir) if report_dir is not None else None)
    try:
        with _open_target(url, model=model, api_key=api_key, name=name, profile=profile,
                          start_timeout_s=start_timeout_s, notify=notify,
                          servers=servers, preflight=preflight,
                          deadline_s=deadline_s, pool=pool) as target:
            yield dataclasses.replace(target, variables=servers.variables)
    finally:
        try:
            if own_pool is not None:
                own_pool.close()
        finally:
            suite.__exit__(None, None, None)


@contextlib.contextmanager
def _open_target(url: str | None, *, model: str | None, api_key: str | None, name: str | None,
                 profile: str, start_timeout_s: float | None,
                 notify: Notify | None, servers, preflight: Preflight | None,
                 deadline_s: float | None, pool: ServerPool) -> Iterator[Target]:
    say = notify or (lambda _m: None)
    spec = (url or "reference").strip()
    done = load_profile(profile).done_sentinel == "required"
    if spec == "reference":
        # deferred: reference_gateway.launch brings in uvicorn and starlette
        from reference_gateway.launch import start_embedded

        try:
            embedded = start_embedded(done_sentinel=done, **servers.gateway_fields())
        except (RuntimeError, OSError) as exc:
            raise TargetError(f"could not start the embedded reference gateway: {exc}") from None
        try:
            yield Target(name or "reference", embedded.base_url, model or EMBEDDED_MODEL)
        finally:
            embedded.close()
        return
    if spec.startswith(COMPOSITE_PREFIX):
        upstream_spec = spec[len(COMPOSITE_PREFIX):]
        # reference+native:UPSTREAM: the gateway in front of UPSTREAM's own /v1/responses
        native = upstream_spec.startswith(NATIVE_PREFIX)
        if native:
            upstream_spec = upstream_spec[len(NATIVE_PREFIX):]
        if not upstream_spec or upstream_spec.startswith(COMPOSITE_PREFIX) or upstream_spec == "reference":
            raise TargetError(f"target {spec!r}: give reference+URL or reference+PROFILE (or "
                              "reference+native:..., in front of its /v1/responses), e.g. reference+vllm, "
                              "reference+native:vllm or reference+http://127.0.0.1:8000/v1")
        # deferred: reference_gateway.launch brings in uvicorn and starlette
        from reference_gateway.launch import start_gateway

        # The API key, if any, is the upstream's: the gateway itself asks for none.
        with _open_server(upstream_spec, model=model, api_key=api_key, pool=pool,
                          start_timeout_s=start_timeout_s, notify=say, preflight=preflight,
                          deadline_s=deadline_s) as upstream:
            try:
                gateway = start_gateway(GatewayConfig(upstream_url=upstream.base_url,
                                                      upstream_api_key=upstream.api_key,
                                                      done_sentinel=done,
                                                      upstream_api_kind="responses" if native else "chat_completions",
                                                      **servers.gateway_fields()))
            except (RuntimeError, OSError, ValueError) as exc:
                raise TargetError(f"could not start the reference gateway: {exc}") from None
            try:
                label = f"reference+native:{upstream.name}" if native else f"reference+{upstream.name}"
                yield Target(name or label, gateway.base_url,
                             upstream.model or EMBEDDED_MODEL)
            finally:
                gateway.close()
        return
    with _open_server(spec, model=model, api_key=api_key, pool=pool,
                      start_timeout_s=start_timeout_s, notify=say, preflight=preflight,
                      deadline_s=deadline_s) as server:
        assert server.model is not None
        yield Target(name or server.name, server.base_url, server.model, server.api_key)


# -- `respcheck targets` -------------------------------------------------------------------
def describe_profiles(*, check_installed: bool = True) -> list[dict]:
    """One dict per profile, with ``installed`` (true/false, null: needs nothing)."""
    rows = []
    for p in load_profiles().values():
        row = p.to_dict()
        row["installed"] = is_installed(p) if check_installed else None
        rows.append(row)
    return rows


def format_profiles(rows: list[dict]) -> str:
    """The `respcheck targets` table, then one block of details per profile."""
    def installed(v) -> str:
        return {True: "yes", False: "no", None: "-"}[v]

    head = ("NAME", "KIND", "DEFAULT URL", "INSTALLED", "UNSUPPORTED")
    table = [head] + [(r["name"], r["kind"], r["default_url"] or "-", installed(r["installed"]),
                       ",".join(r["unsupported"]) or "-") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    for r in rows:
        lines.append("")
        lines.append(f"{r['name']}: {r['description']}")
        if r["start"]:
            lines.append(f"  start:   {r['start']}")
        if r["needs"]["install"]:
            lines.append(f"  needs:   {r['needs']['install']} "
                         f"(installed: {installed(r['installed'])})")
        if not r["responses_api"]:
            lines.append(f"  no native /v1/responses: judge reference+{r['name']}")
        if r["unsupported"]:
            lines.append(f"  documented unsupported (expect `unsupported`): "
                         f"{', '.join(r['unsupported'])}")
        if r["source"]:
            lines.append(f"  source:  {r['source']}")
        if r["notes"]:
            lines.append(f"  notes:   {r['notes']}")
    lines.append("")
    lines.append("Also: --target http://HOST:PORT/v1 (any server), --target reference+UPSTREAM "
                 "(the reference gateway in front of a URL or a profile, e.g. reference+vllm).")
    return "\n".join(lines)


def print_profiles(*, as_json: bool = False, out=None) -> None:
    out = out or sys.stdout
    rows = describe_profiles()
    out.write(json.dumps(rows, indent=1) + "\n" if as_json else format_profiles(rows) + "\n")
