"""``respcheck load``: load-test a Responses API server (or a chat-completions upstream), with
every stream judged by the conformance checker while under load.

    respcheck load                                   # the embedded reference gateway, 8 users, 30 s
    respcheck load --target http://127.0.0.1:8000/v1 --model M --users 1,16,64 --duration 60s \\
        --output-tokens 128 --slo ttft:500,tpot:50
    respcheck load --target URL --api chat --rate 2,4,8 --users 256    # open loop, Poisson arrivals

``main(argv) -> int`` parses and checks the arguments in this process (a bad one: exit 2 with
one line on stderr), starts the default target if none is given, checks the target answers,
then runs the load generator (``python -m loadtests.runner``) as a process of its own, since
locust monkey-patches the process it runs in for gevent. Exit status: 0, or 1 when a request
failed or a MUST check was violated under load, or 2 when the run could not happen.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadtests.metrics import parse_slo
from loadtests.observe import CHECK_MODES
from loadtests.workload import MIN_RESPONSES_OUTPUT_TOKENS, Workload

DEFAULT_REPORT_DIR = "reports/load"
# On top of the stages' own time: starting workers, the target's first answers, writing reports.
RUN_SLACK_S = 120.0


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, then exit 2 (DESIGN: output contract)
        raise UsageError(message)


def duration(text: str) -> float:
    """``20s``, ``1.5m``, ``500ms``, ``1h`` or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 20s, 1m, 500ms)")
    value = float(m.group(1)) * {"ms": 0.001, None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]
    return value


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _rate_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of rates (req/s), got {text!r}") from None
    if not values or any(not (v > 0) or math.isinf(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive rates, got {text!r}")
    return values


def _slo(text: str) -> dict[str, float]:
    try:
        return parse_slo(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _pos_int(text: str) -> int:
    v = _nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


_slo.__name__ = "SLO"
duration.__name__ = "duration"


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="respcheck load", description="Load-test a Responses API server (exact "
                "TTFT/TPOT/ITL/E2EL percentiles, throughput, goodput) and judge every stream.")
    p.add_argument("--target", metavar="URL", help="base URL of the server (/v1 added if missing); "
                   "default: the embedded reference gateway, started on free ports in a subprocess")
    p.add_argument("--api", choices=("responses", "chat"), default="responses",
                   help="POST /v1/responses (default) or /v1/chat/completions")
    p.add_argument("--model", help="model name (default: the first of GET /v1/models)")
    p.add_argument("--api-key", default=os.environ.get("RESPCHECK_API_KEY"),
                   help="bearer token (default: $RESPCHECK_API_KEY)")
    p.add_argument("--users", "--concurrency", dest="users", type=_int_list, default=None, metavar="N[,N...]",
                   help="concurrent streams (closed loop); a list is a sweep, one stage each (default 8; "
                        "with --rate: the cap on requests in flight, default 256)")
    p.add_argument("--rate", type=_rate_list, metavar="R[,R...]",
                   help="open loop: Poisson arrivals at R requests/s in total (one pacer per process, "
                        "each with its share); a list is a sweep")
    p.add_argument("--duration", type=duration, default=30.0, help="measurement window per stage (default 30s)")
    p.add_argument("--warmup", type=duration, default=2.0, help="warm-up per stage, not measured (default 2s)")
    p.add_argument("--input-tokens", type=_pos_int, default=32, help="prompt length in words ~ tokens (default 32)")
    p.add_argument("--output-tokens", type=_pos_int, default=None,
                   help="max_output_tokens / max_tokens (default: the server's own length)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help="stream the answers (default) or not")
    p.add_argument("--check", choices=CHECK_MODES, default="full",
                   help="conformance checks in the load generator: full (default), grammar (no schema "
                        "validation), off (SSE framing only; for benchmarks of the server itself)")
    p.add_argument("--profile", choices=("openai", "openresponses"), default="openai")
    p.add_argument("--workers", type=_nonneg_int, default=0,
                   help="load-generator worker processes (locust master/worker; default 0: one process)")
    p.add_argument("--external-workers", type=_nonneg_int, default=0,
                   help="workers from other machines to wait for (python -m loadtests.worker ...)")
    p.add_argument("--master-bind", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where the master listens for workers (default 127.0.0.1, a free port)")
    p.add_argument("--slo", type=_slo, metavar="METRIC:MS[,...]",
                   help="service-level bounds for goodput, e.g. ttft:500,tpot:50 (metrics: ttft, tpot, e2el, itl)")
    p.add_argument("--deadline", type=duration, default=60.0, help="per-request deadline (default 60s)")
    p.add_argument("--idle-timeout", type=duration, default=30.0, help="longest silence within a response (default 30s)")
    p.add_argument("--drain", type=duration, default=None,
                   help="how long a stage waits for requests in flight after its window (default: --deadline)")
    p.add_argument("--report-dir", default=DEFAULT_REPORT_DIR, help=f"default {DEFAULT_REPORT_DIR}/")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    return p


def base_url(target: str) -> str:
    url = target.rstrip("/")
    if not re.match(r"^https?://", url):
        raise UsageError(f"--target must be an http(s) URL, got {target!r}")
    return url if url.endswith("/v1") else url + "/v1"


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """Validate what argparse cannot; raise UsageError with a one-line reason."""
    if args.rate and args.users and len(args.users) > 1:
        raise UsageError("sweep one thing at a time: with --rate R1,R2.. give a single --users cap")
    if args.duration <= 0:
        raise UsageError("--duration must be positive")
    if args.deadline <= 0 or args.idle_timeout <= 0:
        raise UsageError("--deadline and --idle-timeout must be positive")
    if (args.api == "responses" and args.output_tokens is not None
            and args.output_tokens < MIN_RESPONSES_OUTPUT_TOKENS):
        raise UsageError(f"--output-tokens must be >= {MIN_RESPONSES_OUTPUT_TOKENS} for the Responses API "
                         f"(its minimum max_output_tokens)")
    if not args.stream and args.slo and ({"ttft", "tpot", "itl"} & set(args.slo)):
        raise UsageError("--no-stream has no TTFT/TPOT/ITL: bound only e2el in --slo")
    if args.rate:
        cap = (args.users or [256])[0]
        stages = [{"label": f"rate={r:g}", "users": cap, "rate": r} for r in args.rate]
    else:
        stages = [{"label": f"c={n}", "users": n, "rate": None} for n in (args.users or [8])]
    workload = Workload(api=args.api, model=args.model or "", input_tokens=args.input_tokens,
                        output_tokens=args.output_tokens, stream=args.stream, check=args.check,
                        profile=args.profile)
    return {
        "base_url": None, "target_name": args.target or "reference", "api_key": args.api_key,
        "workload": workload.to_dict(), "stages": stages,
        "warmup_s": args.warmup, "duration_s": args.duration,
        "deadline_s": args.deadline, "idle_s": args.idle_timeout,
        "drain_s": args.drain if args.drain is not None else args.deadline,
        "workers": args.workers, "external_workers": args.external_workers,
        "master_bind": args.master_bind, "slo": args.slo, "report_dir": args.report_dir,
        "progress": not args.quiet,
    }


def preflight(url: str, api_key: str | None, model: str | None, deadline_s: float) -> str:
    """Check the target answers; return the model to use. Raise UsageError (exit 2) if not.

    The ``GET /models`` is the conformance run's own preflight: the guarded transport
    (harness/run/client.py ``get_models``: a deadline of ``deadline_s`` or the preflight's
    10 s, whichever is shorter, a body cap, no decoding) read by harness/targets/target.py
    ``discover_model``, so a server that refuses, stalls or floods on /models is named in the
    same one line as ``respcheck run`` names it. With ``model`` given, a /models that answers
    badly is a notice and the run goes on (/models is optional)."""
    from harness.run.client import get_models
    from harness.targets.target import TargetError, discover_model

    def notify(message: str) -> None:
        print(f"respcheck load: {message}", file=sys.stderr)

    try:
        return discover_model(url, api_key, model, preflight=get_models, deadline_s=deadline_s,
                              notify=notify)
    except TargetError as exc:
        raise UsageError(str(exc)) from None


def _time_budget(config: dict[str, Any]) -> float:
    per_stage = config["warmup_s"] + config["duration_s"] + config["drain_s"] + 15.0
    extra = 600.0 if config["external_workers"] else 0.0
    return per_stage * len(config["stages"]) + RUN_SLACK_S + extra


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser().parse_args(argv)
        config = build_config(args)
    except UsageError as exc:
        print(f"respcheck load: {exc} (run with --help for usage)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"respcheck load: {exc}", file=sys.stderr)
        return 2
    from loadtests import servers

    target = None
    report_dir = Path(config["report_dir"])
    try:
        if args.target in (None, "reference"):
            report_dir.mkdir(parents=True, exist_ok=True)
            try:
                target = servers.spawn("embedded", log=report_dir / "target.log")
            except RuntimeError as exc:
                raise UsageError(str(exc)) from None
            config["base_url"] = target.base_url
            config["target_name"] = "reference (embedded)"
            model = args.model or "mock-1"
        else:
            config["base_url"] = base_url(args.target)
            model = args.model
        config["workload"]["model"] = preflight(config["base_url"], args.api_key, model,
                                                args.deadline)
        return _run_generator(config)
    except UsageError as exc:
        print(f"respcheck load: {exc}", file=sys.stderr)
        return 2
    finally:
        if target is not None:
            target.close()


def _run_generator(config: dict[str, Any]) -> int:
    Path(config["report_dir"]).mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="respcheck-load-", delete=False) as f:
        json.dump(config, f)
        path = f.name
    repo_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = repo_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen([sys.executable, "-m", "loadtests.runner", path], env=env, stdin=subprocess.DEVNULL)
    try:
        return proc.wait(_time_budget(config))
    except subprocess.TimeoutExpired:
        print("respcheck load: the load generator overran its time budget; stopped", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return 130
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        os.unlink(path)
