"""What observability costs: ``python -m loadtests.observability [--levels 64] [--rounds 3]``.

The gateway with its metrics off and on (and any other ``--variant NAME=JSON`` of GatewayConfig
fields, e.g. ``json='{"log_format": "json"}'``), each a server process of its own in front of
one paced mock upstream (loadtests/servers.py), measured side by side in one run: each round
runs direct, then every variant, the order reversed on odd rounds (ABBA), so the drift of a
shared machine hits all alike. Reported per variant: TTFT and ITL percentiles, output tokens/s,
the change against the variant ``off``, and the gateway process's CPU time per request (from
/proc, the most direct measure: each process works only during its own rounds).

The middleware's own cost is also measured in process first (``micro``: microseconds per
streamed request, no network). Writes ``--out`` (default reports/load/observability/):
results.json and observability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import locust  # noqa: F401  (first: gevent's monkey-patching)

from loadtests import servers
from loadtests.metrics import Sample
from loadtests.overhead import fmt, pool
from loadtests.report import machine_info
from loadtests.runner import run
from loadtests.workload import Workload

DEFAULT_VARIANTS = {"off": {"metrics": False}, "on": {"metrics": True}}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _variant(text: str) -> tuple[str, dict]:
    name, _, fields = text.partition("=")
    return name.strip(), json.loads(fields or "{}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc; fields 14 and 15 of its stat line)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.observability", description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", type=_ints, default=[64], help="concurrent streams (default 64)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--round-duration", type=float, default=4.0, help="measured seconds per round (default 4)")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--input-tokens", type=int, default=32)
    p.add_argument("--model", default="mock-paced")
    p.add_argument("--variant", type=_variant, action="append", metavar="NAME=JSON",
                   help="a gateway variant (repeatable); default: off={\"metrics\": false} on={\"metrics\": true}")
    p.add_argument("--out", default="reports/load/observability")
    p.add_argument("--no-micro", dest="micro", action="store_false",
                   help="skip the in-process measurement of the middleware alone (``micro``)")
    args = p.parse_args(argv)
    variants = dict(args.variant) if args.variant else DEFAULT_VARIANTS
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    micro_us = micro() if args.micro else None  # first, while nothing else runs

    mock = servers.spawn("mock", log=out / "mock.log")
    gateways: dict[str, servers.ServerProcess] = {}
    try:
        for name, fields in variants.items():
            gateways[name] = servers.spawn("gateway", upstream=mock.base_url, log=out / f"gateway-{name}.log",
                                           config=fields)
        direct_wl = Workload(api="chat", model=args.model, input_tokens=args.input_tokens,
                             output_tokens=args.output_tokens, check="off").to_dict()
        gw_wl = Workload(api="responses", model=args.model, input_tokens=args.input_tokens,
                         output_tokens=args.output_tokens, check="off").to_dict()
        stages = []
        for level in args.levels:
            for r in range(args.rounds):
                order = [("direct", mock.base_url, direct_wl)] + [(n, g.base_url, gw_wl) for n, g in gateways.items()]
                if r % 2:
                    order.reverse()
                for path, url, wl in order:
                    stages.append({"label": f"{path} c={level} r{r}", "users": level, "rate": None,
                                   "base_url": url, "workload": wl, "path": path, "level": level})
        config = {
            "base_url": next(iter(gateways.values())).base_url, "target_name": "observability cost",
            "api_key": None, "workload": gw_wl, "stages": stages, "warmup_s": args.warmup,
            "duration_s": args.round_duration, "deadline_s": 60.0, "idle_s": 30.0, "drain_s": 30.0,
            "workers": 0, "external_workers": 0, "master_bind": "127.0.0.1:0", "slo": None,
            "report_dir": str(out), "progress": True,
        }
        cpu_before = {n: cpu_seconds(g.pid) for n, g in gateways.items()}
        t0 = time.time()
        results = run(config)
        elapsed = time.time() - t0
        cpu = {n: cpu_seconds(g.pid) - cpu_before[n] for n, g in gateways.items()}
    finally:
        for g in gateways.values():
            g.close()
        mock.close()
    samples: list[Sample] = results.pop("_samples")
    table = aggregate(results["stages"], samples, stages, ["direct", *gateways])
    # every request each gateway served, warm-up and drain included (its CPU time covers them)
    served = {n: sum(1 for s in samples if s.stage.startswith(f"{n} c=")) for n in gateways}
    doc = {"command": "python -m loadtests.observability " + shlex.join(sys.argv[1:] if argv is None else argv),
           "machine": machine_info(), "elapsed_s": elapsed, "args": {**vars(args), "variant": variants},
           "levels": table, "micro_us": micro_us,
           "cpu": {n: {"seconds": cpu[n], "requests": served[n],
                       "ms_per_request": cpu[n] / served[n] * 1000 if served[n] else None} for n in gateways}}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = render_md(doc)
    (out / "observability.md").write_text(md)
    print(md)
    return 0


def micro(requests: int = 20000, events: int = 40) -> dict[str, float]:
    """The middleware's own cost, no network: microseconds per streamed create of ``events``
    SSE chunks through ``observe.ObserveRequests`` (metrics on; metrics on + JSON access log to
    /dev/null), minus the same requests through the bare ASGI app."""
    import asyncio
    import logging

    from starlette.routing import Route

    from reference_gateway.config import GatewayConfig
    from reference_gateway.observe import ObserveRequests, Telemetry

    route = Route("/v1/responses", lambda request: None, methods=["POST"])
    chunks = [b"event: response.created\ndata: {}\n\n"] * 4 + \
        [b'event: response.output_text.delta\ndata: {"delta": " lorem"}\n\n'] * (events - 4)
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]}

    async def app(scope, receive, send):
        scope["route"] = route
        await send(start)
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def sink(message):
        pass

    async def timed(asgi) -> float:
        scope = {"type": "http", "method": "POST", "path": "/v1/responses", "headers": []}
        t0 = time.perf_counter()
        for _ in range(requests):
            await asgi(dict(scope), None, sink)
        return (time.perf_counter() - t0) / requests * 1e6

    upstream = "http://127.0.0.1:9/v1"  # never called
    out: dict[str, float] = {}
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        for name, fields in (("metrics on", {}), ("metrics on + json logs", {"log_format": "json"})):
            wrapped = ObserveRequests(app, telemetry=Telemetry(GatewayConfig(upstream_url=upstream, **fields)),
                                      routes=[route])
            bare = asyncio.run(timed(app))
            stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # the JSON handler writes to sys.stderr
            try:
                observed = asyncio.run(timed(wrapped))
            finally:
                sys.stderr.close()
                sys.stderr = stderr
            out[name] = observed - bare
    finally:
        root.handlers = saved[0]
        root.setLevel(saved[1])
    return out


def aggregate(stage_results: list[dict], samples: list[Sample], specs: list[dict], paths: list[str]) -> list[dict]:
    by_label = {st["label"]: st for st in stage_results}
    return [{"level": level, **{path: pool(by_label, samples, specs, level=level, path=path) for path in paths}}
            for level in sorted({s["level"] for s in specs})]


def render_md(doc: dict) -> str:
    a, m = doc["args"], doc["machine"]
    names = list(a["variant"])
    lines = [
        "Command: `" + doc["command"].strip() + f"` ({doc['elapsed_s']:.0f} s)", "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cpus')} CPUs, Python {m.get('python')}. Upstream: the paced "
        f"mock ({a['model']}); mock, gateways and load generator are separate processes on this machine. "
        f"Closed loop, streamed, {a['output_tokens']} output tokens; {a['rounds']} rounds per level of "
        f"{a['warmup']:g} s warm-up + {a['round_duration']:g} s measured, direct and each variant in turn "
        "(ABBA). Variants: " + ", ".join(f"`{n}` = `{json.dumps(a['variant'][n])}`" for n in names) + ".", "",
        "| streams | path | requests | failed | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | out tok/s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in doc["levels"]:
        for path in ("direct", *names):
            d = row[path]
            lines.append(f"| {row['level']} | {path} | {d['requests']} | {d['failed']} | {fmt(d['ttft_ms']['p50'])} | "
                         f"{fmt(d['ttft_ms']['p99'])} | {fmt(d['itl_ms']['p50'])} | {fmt(d['itl_ms']['p99'])} | "
                         f"{fmt(d['output_tok_s'], 0)} |")
    base = names[0]
    lines += ["", f"Against `{base}` (ms; ratio of output tokens/s):", "",
              "| streams | variant | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | throughput ratio |",
              "|---:|---|---:|---:|---:|---:|---:|"]
    for row in doc["levels"]:
        b = row[base]
        for name in names[1:]:
            v = row[name]
            diff = {f"{k}_{p}": (v[f"{k}_ms"][p] - b[f"{k}_ms"][p]) if None not in (v[f"{k}_ms"][p], b[f"{k}_ms"][p])
                    else None for k in ("ttft", "itl") for p in ("p50", "p99")}
            ratio = v["output_tok_s"] / b["output_tok_s"] if b["output_tok_s"] else None
            lines.append(f"| {row['level']} | {name} | {fmt(diff['ttft_p50'])} | {fmt(diff['ttft_p99'])} | "
                         f"{fmt(diff['itl_p50'])} | {fmt(diff['itl_p99'])} | {fmt(ratio, 3)} |")
    lines += ["", "Gateway CPU time over the whole run (each process busy only in its own rounds):", "",
              "| variant | CPU s | requests | CPU ms per request |", "|---|---:|---:|---:|"]
    for name in names:
        c = doc["cpu"][name]
        lines.append(f"| {name} | {c['seconds']:.2f} | {c['requests']} | {fmt(c['ms_per_request'], 3)} |")
    if doc.get("micro_us"):
        lines += ["", "The middleware alone, in process (no network; a streamed create of 40 SSE chunks through "
                  "`observe.ObserveRequests`, minus the bare app): "
                  + "; ".join(f"{name}: {us:.1f} µs per request" for name, us in doc["micro_us"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
