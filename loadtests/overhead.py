"""Gateway overhead benchmark: ``python -m loadtests.overhead [--levels 1,64,256] [--rounds 3]``.

What the reference gateway adds on top of its upstream. The paced mock upstream (model
``mock-paced``: first token after 50 ms, then one every 10 ms, exactly ``max_tokens`` tokens)
and the gateway run as two server processes of their own; this process is the load generator.
The mock is the lean one by default (loadtests/paced_upstream.py: the embedded mock's chunks for
12-15 µs of CPU each, where the embedded Starlette app takes 28-31 µs of the same 2 cores the
gateway is measured on); ``--mock app`` runs the embedded one, as runs before 2026-12-06 did.
The same closed-loop load (N users, each one streamed request after another) is run directly
against the upstream's ``/v1/chat/completions`` and through the gateway's ``/v1/responses``,
*interleaved*: short rounds alternate direct / gateway (ABBA order across rounds) so that drift
of a shared machine hits both alike. Samples are pooled per (path, level); what is reported:

- added TTFT and ITL, p50 and p99: gateway minus direct, percentile by percentile;
- throughput ratio: gateway output tokens/s over direct output tokens/s (1.0 = no loss), counted
  as the tokens' deltas arrive inside each round's window (see loadtests/metrics.py).

The load generator runs with ``check=off`` (SSE framing only), so the client's cost per event is
the same small thing on both paths and the checker is not what is measured.

``--gateway-workers 1,2`` measures the gateway as ``python -m reference_gateway --workers N``
(reference_gateway/worker.py: a supervisor and N worker processes on one port), once per N, all
in the same interleaved run: each round runs direct and every N in turn (the order reversed on
odd rounds), and each gateway row is compared with the same rounds' direct samples.

Writes ``--out`` (default reports/load/overhead/): results.json, overhead.md, overhead.png; with
``--write-benchmark`` also reports/benchmarks/gateway-overhead.md + .png, keeping the
hand-written "## Reading" section of an existing file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import locust  # noqa: F401  (first: gevent's monkey-patching)

from loadtests import cpu, servers
from loadtests.metrics import Sample, Window, distribution, round_ratios, spread
from loadtests.peers import PEERS, Peer, PeerMissing
from loadtests.profile import Profiler
from loadtests.report import machine_info, write_benchmark_md
from loadtests.runner import run
from loadtests.store_cost import checkout
from loadtests.workload import Workload

FLOOR_PATH = "relay (floor)"
BENCH_MD = Path("reports/benchmarks/gateway-overhead.md")
BENCH_PNG = Path("reports/benchmarks/gateway-overhead.png")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _upstream_words(a: dict) -> str:
    if a.get("upstream"):
        return a["upstream"]
    # results written before --mock existed ran the embedded app
    which = "lean: loadtests/paced_upstream.py" if a.get("mock") == "lean" else "the embedded app"
    return f"the paced mock ({a['model']}; {which})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--levels", type=_ints, default=[1, 64, 256], help="concurrent streams (default 1,64,256)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per level, each one direct + one gateway")
    p.add_argument("--round-duration", type=float, default=4.0, help="measured seconds per round (default 4)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per round (default 1)")
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--input-tokens", type=int, default=32)
    p.add_argument("--model", default="mock-paced", help="mock model (default mock-paced: 50 ms TTFT, 10 ms ITL)")
    p.add_argument("--upstream", help="an already running chat-completions upstream instead of the paced mock")
    p.add_argument("--mock", choices=("lean", "app"), default="lean",
                   help="the paced mock: lean (loadtests/paced_upstream.py, 12-15 µs of CPU per token at 256 streams; "
                   "default) or app (the embedded mock, a Starlette app: 28-31 µs per token)")
    p.add_argument("--workers", type=int, default=0, help="load-generator worker processes (default 0)")
    p.add_argument("--mock-workers", type=int, default=1,
                   help="paced mock processes sharing one port (SO_REUSEPORT; default 1): one mock process "
                   "serves ~30,000 chunks/s, 1,024 streams ask for 102,400")
    p.add_argument("--gateway-workers", type=_ints, metavar="N[,N...]",
                   help="run the gateway as `python -m reference_gateway --workers N`, once per N, side by side "
                   "in one interleaved run (e.g. 1,2); default: one in-process gateway (loadtests/servers.py)")
    p.add_argument("--peer", action="append", default=[], choices=PEERS,
                   help="also measure this Responses server in front of the same upstream, in the same rounds "
                   "(repeatable; loadtests/peers.py says where each is looked for)")
    p.add_argument("--check-path", action="store_true",
                   help="one more path per round: the (first) gateway with the load generator validating every "
                   "event (check=full), to know the load generator's own cost per event with validation on")
    p.add_argument("--floor", action="store_true",
                   help=f"one more path per round: '{FLOOR_PATH}', a byte-for-byte TCP proxy in front of the "
                   "upstream (loadtests/relay.py), read as direct is: its CPU per token event is the floor under "
                   "any Python relay's on this machine")
    p.add_argument("--profile-levels", type=_ints, default=[], metavar="N[,N...]",
                   help="py-spy the (first) gateway during its first measured round at these levels "
                   "(pip install '.[bench]'); top frames into the write-up")
    p.add_argument("--gateway-config", default="{}",
                   help="more GatewayConfig fields for the in-process gateway, as JSON (e.g. '{\"metrics\": false}')")
    p.add_argument("--compare-rev", action="append", default=[], metavar="REV",
                   help="also measure the gateway as it was at git revision REV (its tree extracted into a "
                   "temporary directory, served by that tree's own loadtests/servers.py), in the same rounds, "
                   "as path 'gateway@REV' (repeatable): levers side by side")
    p.add_argument("--out", default="reports/load/overhead")
    p.add_argument("--write-benchmark", action="store_true", help=f"also write {BENCH_MD} and {BENCH_PNG}")
    p.add_argument("--label", help="what the upstream is, for the write-up")
    p.add_argument("--render", metavar="RESULTS_JSON", help="only re-render an earlier run's results.json "
                   "(e.g. one from the GPU machine, which has no matplotlib) into --md and a .png beside it")
    p.add_argument("--md", help="with --render: the Markdown file to write (its '## Reading' section is kept)")
    args = p.parse_args(argv)
    if args.render:
        doc = json.loads(Path(args.render).read_text())
        md_path = Path(args.md or Path(args.render).with_name("overhead.md"))
        write_benchmark_md(md_path, render_md(doc, png_name=md_path.with_suffix(".png").name))
        plot(doc["levels"], md_path.with_suffix(".png"), title=doc["args"].get("label"),
             gateway_paths=doc.get("gateway_paths"))
        print(md_path.read_text())
        return 0
    try:  # the workloads first: a bad --output-tokens is one line, before any server starts
        direct_wl = Workload(api="chat", model=args.model, input_tokens=args.input_tokens,
                             output_tokens=args.output_tokens, check="off").to_dict()
        gw_wl = Workload(api="responses", model=args.model, input_tokens=args.input_tokens,
                         output_tokens=args.output_tokens, check="off").to_dict()
    except ValueError as exc:
        raise SystemExit(f"python -m loadtests.overhead: {exc}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    mock = None
    mocks: list[Any] = []  # --mock-workers beyond the first
    if args.upstream:
        upstream_url = args.upstream
    else:
        kind = "paced" if args.mock == "lean" else "mock"
        if kind == "paced" and not args.model.startswith("mock-paced"):
            raise SystemExit(f"python -m loadtests.overhead: --mock lean serves mock-paced[:TTFT_MS:ITL_MS] "
                             f"only, not {args.model!r}: pass --mock app")
        mock = servers.spawn(kind, log=out / "mock.log", reuse_port=args.mock_workers > 1)
        upstream_url = mock.base_url
        port = int(upstream_url.rsplit(":", 1)[1].split("/")[0])
        mocks = [servers.spawn(kind, log=out / f"mock-{i}.log", port=port, reuse_port=True)
                 for i in range(1, args.mock_workers)]
    gateways: dict[str, Any] = {}  # path name -> a running gateway or peer (base_url, pid, close())
    trees: list[Path] = []  # --compare-rev checkouts
    probe = CpuProbe(out)
    if mock is not None:
        probe.watch("upstream", mock.pid, also=[m.pid for m in mocks])
    try:
        if args.gateway_workers:
            for n in args.gateway_workers:
                gateways[f"gateway w={n}"] = SupervisedGateway(n, upstream_url, out)
                probe.watch(f"gateway w={n}", gateways[f"gateway w={n}"].proc.pid, tree=True)
        else:
            gateways["gateway"] = servers.spawn("gateway", upstream=upstream_url, log=out / "gateway.log",
                                                config=json.loads(args.gateway_config) or None)
            probe.watch("gateway", gateways["gateway"].pid)
        for rev in args.compare_rev:
            tree = Path(tempfile.mkdtemp(prefix="overhead-rev-"))
            trees.append(tree)
            checkout(Path(__file__).resolve().parent.parent, rev, tree)
            gateways[f"gateway@{rev}"] = servers.spawn(
                "gateway", upstream=upstream_url, log=out / f"gateway@{rev}.log", code_root=tree,
                config=json.loads(args.gateway_config) or None)
            probe.watch(f"gateway@{rev}", gateways[f"gateway@{rev}"].pid)
        if args.floor:
            gateways[FLOOR_PATH] = servers.spawn("relay", upstream=upstream_url, log=out / "relay.log")
            probe.watch(FLOOR_PATH, gateways[FLOOR_PATH].pid)
        for name in args.peer:
            try:
                gateways[name] = Peer(name, upstream_url, args.model, out)
            except PeerMissing as exc:
                raise SystemExit(f"python -m loadtests.overhead: --peer {name}: {exc}") from None
            probe.watch(name, gateways[name].pid, tree=True)
        first = next(iter(gateways))
        paths = [("direct", upstream_url, direct_wl, None)] + [
            (path, gw.base_url, direct_wl if path == FLOOR_PATH else gw_wl, path) for path, gw in gateways.items()]
        if args.check_path:
            paths.append((CHECK_PATH, gateways[first].base_url, {**gw_wl, "check": "full"}, first))
        stages = []
        for level in args.levels:
            for r in range(args.rounds):
                order = list(paths)
                if r % 2:
                    order.reverse()
                for path, url, wl, server in order:
                    stages.append({"label": f"{path} c={level} r{r}", "users": level, "rate": None,
                                   "base_url": url, "workload": wl, "path": path, "level": level,
                                   "server": server,
                                   "api_key": getattr(gateways.get(server), "api_key", None)})
        if args.profile_levels:
            probe.profiler = Profiler(gateways[first].pid, out, levels=args.profile_levels, path=first,
                                      duration_s=args.round_duration)
        config = {
            "base_url": next(iter(gateways.values())).base_url, "target_name": "gateway overhead", "api_key": None,
            "workload": gw_wl, "stages": stages, "warmup_s": args.warmup,
            "duration_s": args.round_duration, "deadline_s": 60.0, "idle_s": 30.0, "drain_s": 30.0,
            "workers": args.workers, "external_workers": 0, "master_bind": "127.0.0.1:0",
            "slo": None, "report_dir": str(out), "progress": True,
        }
        t0 = time.time()
        results = run(config, on_window=probe.on_window)
        elapsed = time.time() - t0
    finally:
        for gw in gateways.values():
            gw.close()
        if mock is not None:
            mock.close()
        for m in mocks:
            m.close()
        for tree in trees:
            shutil.rmtree(tree, ignore_errors=True)
    samples: list[Sample] = results.pop("_samples")
    gateway_paths = list(gateways) + ([CHECK_PATH] if args.check_path else [])
    for st in results["stages"]:
        st["cpu_s"] = probe.rounds.get(st["label"], {})
    table = aggregate(results["stages"], samples, stages, gateway_paths=gateway_paths)
    doc = {"gateway_paths": gateway_paths,
           "profiles": probe.profiler.summaries if probe.profiler else {},
           "command": "python -m loadtests.overhead " + " ".join(argv if argv is not None else sys.argv[1:]),
           "measured_at": time.strftime("%Y-%m-%d", time.gmtime()),
           "machine": machine_info(), "elapsed_s": elapsed, "args": vars(args), "levels": table,
           "rounds": [{k: st[k] for k in ("label", "requests", "failed", "request_throughput",
                                          "output_throughput", "streamed_output_throughput", "errors", "cpu_s")}
                      for st in results["stages"]]}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = render_md(doc, png_name="overhead.png")
    (out / "overhead.md").write_text(md)
    plot(table, out / "overhead.png", title=args.label, gateway_paths=gateway_paths)
    print(md)
    if args.write_benchmark:
        write_benchmark_md(BENCH_MD, render_md(doc, png_name=BENCH_PNG.name))
        plot(table, BENCH_PNG, title=args.label, gateway_paths=gateway_paths)
    return 0


class SupervisedGateway:
    """``python -m reference_gateway --workers N`` in front of ``upstream``, in a process group of
    its own (supervisor and workers), its output in OUT/gateway-wN.log; ready once N distinct
    workers answered /health (told apart by the debug-only pid header, worker.py)."""

    READY_DEADLINE_S = 90.0

    def __init__(self, workers: int, upstream: str, out: Path) -> None:
        import socket
        import subprocess

        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = out / f"gateway-w{workers}.log"
        store = out / f"gateway-w{workers}.sqlite3"  # the benchmark's requests say store: false
        cmd = [sys.executable, "-m", "reference_gateway", "--workers", str(workers), "--upstream", upstream,
               "--port", str(port), "--store", str(store), "--code-interpreter", "disabled"]
        env = {**os.environ, "REFERENCE_GATEWAY_WORKER_PID_HEADER": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        seen: set[str] = set()
        deadline = time.monotonic() + self.READY_DEADLINE_S
        while len(seen) < workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the gateway with {workers} workers did not start (log: {self.log})")
            try:  # a fresh connection each time, so that every worker gets its turn
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False)
                seen.add(r.headers.get("x-gateway-worker-pid", "in-process"))
            except httpx.TransportError:
                time.sleep(0.1)

    def close(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


CHECK_PATH = "gateway check=full"


class CpuProbe:
    """The CPU time each benchmark process spent in each round's measured window (loadtests/cpu.py):
    ``upstream`` (the paced mock), every gateway and peer (with its worker processes: ``tree``),
    and ``client`` (the load generator and its workers). Idle servers are read too: a gateway's
    seconds in a direct round are its idle cost."""

    def __init__(self, out: Path) -> None:
        self.watched: dict[str, tuple[int, bool]] = {}
        self.rounds: dict[str, dict[str, float]] = {}  # stage label -> process name -> seconds
        self._start: dict[str, float | None] = {}
        self._pids: dict[str, list[int]] = {}
        self.profiler: Profiler | None = None
        self._also: dict[str, list[int]] = {}

    def watch(self, name: str, pid: int, *, tree: bool = False, also: list[int] | None = None) -> None:
        self.watched[name] = (pid, tree)
        self._also[name] = also or []

    def _read(self, client_pids: list[int]) -> dict[str, float | None]:
        readings = {name: cpu.total_seconds(self._pids[name]) for name in self.watched}
        readings["client"] = cpu.total_seconds(self._pids["client"])
        return readings

    def on_window(self, spec: dict, phase: str, client_pids: list[int]) -> None:
        if phase == "start":
            self._pids = {name: (cpu.descendants(pid) if tree else [pid]) + self._also[name]
                          for name, (pid, tree) in self.watched.items()}
            self._pids["client"] = client_pids
            self._start = self._read(client_pids)
            if self.profiler is not None:
                self.profiler.round_started(spec)
            return
        end = self._read(client_pids)
        self.rounds[spec["label"]] = {name: end[name] - self._start[name] for name in end
                                      if end[name] is not None and self._start.get(name) is not None}
        if self.profiler is not None:
            self.profiler.round_ended(spec)


def _tok_s(stage: dict) -> float:
    """Output tokens/s of one round: streamed arrival-based when the stage streamed."""
    return stage.get("streamed_output_throughput") or stage.get("output_throughput") or 0.0


def pool(by_label: dict[str, dict], samples: list[Sample], specs: list[dict], *, level: int,
         path: str) -> dict[str, Any]:
    """The rounds of one (level, path) pooled: exact latency distributions of the samples sent
    inside each round's measured window, throughput as the mean over rounds."""
    labels = [s["label"] for s in specs if s["level"] == level and s["path"] == path]
    pooled: list[Sample] = []
    for label in labels:
        w = Window(*by_label[label]["window"])
        pooled += [s for s in samples if s.stage == label and w.start <= s.t_send < w.end]
    ok = [s for s in pooled if s.ok]
    rounds = [by_label[lb] for lb in labels]
    window_s = sum(r["window"][1] - r["window"][0] for r in rounds)
    events = sum(_tok_s(r) * (r["window"][1] - r["window"][0]) for r in rounds)
    cpu_s: dict[str, float] = {}
    for r in rounds:
        for name, seconds in (r.get("cpu_s") or {}).items():
            cpu_s[name] = cpu_s.get(name, 0.0) + seconds
    return {
        # per-process CPU: seconds in the pooled windows, per token event that arrived in them
        # (one upstream chunk each), and cores used on average
        "token_events": round(events),
        "cpu_s": cpu_s,
        "cpu_us_per_event": {name: (s * 1e6 / events if events else None) for name, s in cpu_s.items()},
        "cpu_cores": {name: s / window_s for name, s in cpu_s.items()} if window_s else {},
        "requests": len(pooled), "failed": len(pooled) - len(ok),
        "ttft_ms": distribution([s.ttft for s in ok if s.ttft is not None]),
        "itl_ms": distribution([g for s in ok for g in s.itls]),
        "e2el_ms": distribution([s.e2el for s in ok if s.e2el is not None]),
        # tokens as they arrive in the window (metrics.py: "streamed token throughput");
        # completed-request counting jumps by whole waves when E2EL is close to the round's length
        "output_tok_s": sum(_tok_s(r) for r in rounds) / len(rounds),
        "output_tok_s_rounds": [_tok_s(r) for r in rounds],
        "req_s": sum(r["request_throughput"] or 0 for r in rounds) / len(rounds),
    }


def aggregate(stage_results: list[dict], samples: list[Sample], specs: list[dict], *,
              gateway_paths: list[str] | None = None) -> list[dict[str, Any]]:
    """Pool the rounds of each (level, path); compare each gateway path with direct. The first
    gateway path's comparison is also ``added`` / ``throughput_ratio`` (the one-gateway format)."""
    gateway_paths = gateway_paths or ["gateway"]
    by_label = {st["label"]: st for st in stage_results}
    levels = []
    for level in sorted({s["level"] for s in specs}):
        row: dict[str, Any] = {"level": level}
        for path in ("direct", *gateway_paths):
            row[path] = pool(by_label, samples, specs, level=level, path=path)
        d = row["direct"]
        row["vs_direct"] = {}
        for path in gateway_paths:
            g = row[path]
            row["vs_direct"][path] = {
                "added": {f"{m}_{p}": (g[f"{m}_ms"][p] - d[f"{m}_ms"][p])
                          if g[f"{m}_ms"][p] is not None and d[f"{m}_ms"][p] is not None else None
                          for m in ("ttft", "itl") for p in ("p50", "p99")},
                "throughput_ratio": g["output_tok_s"] / d["output_tok_s"] if d["output_tok_s"] else None,
            }
        row["added"] = row["vs_direct"][gateway_paths[0]]["added"]
        row["throughput_ratio"] = row["vs_direct"][gateway_paths[0]]["throughput_ratio"]
        levels.append(row)
    return levels


def fmt(v, nd=2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def render_md(doc: dict[str, Any], *, png_name: str = "overhead.png") -> str:
    m = doc["machine"]
    a = doc["args"]
    paths = doc.get("gateway_paths") or ["gateway"]
    supervised = ""
    if a.get("gateway_workers"):
        supervised = (" Gateway w=N: `python -m reference_gateway --workers N` (w=1: the in-process server; "
                      "N > 1: a supervisor and N worker processes accepting on one port), each N its own "
                      "gateway, all measured in the same interleaved rounds.")
    lines = [
        "# Reference gateway overhead",
        "",
        f"Regenerate: `{doc['command'].strip()}` ({doc['elapsed_s']:.0f} s)"
        + (f"; measured {doc['measured_at']}." if doc.get("measured_at") else ""),
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cpus')} CPUs, Python {m.get('python')}, {m.get('platform')}. "
        f"Upstream: {a.get('label') or _upstream_words(a)}"
        f"; upstream, gateway and load generator are separate processes on this one machine.",
        "",
        f"Workload: closed loop, streamed, ~{a['input_tokens']} input words, {a['output_tokens']} output tokens; "
        f"{a['rounds']} rounds per level of {a['warmup']:g} s warm-up + {a['round_duration']:g} s measured, "
        "direct and gateway alternating (ABBA). Direct: `POST /v1/chat/completions` on the upstream. "
        "Gateway: `POST /v1/responses` through the reference gateway." + supervised + " Latencies in ms, "
        "exact percentiles of the pooled rounds; throughput = output tokens/s, mean over rounds.",
        "",
        "| streams | path | requests | failed | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | E2EL p50 | out tok/s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in doc["levels"]:
        for path in ("direct", *paths):
            d = row[path]
            lines.append(f"| {row['level']} | {path} | {d['requests']} | {d['failed']} | {fmt(d['ttft_ms']['p50'])} | "
                         f"{fmt(d['ttft_ms']['p99'])} | {fmt(d['itl_ms']['p50'])} | {fmt(d['itl_ms']['p99'])} | "
                         f"{fmt(d['e2el_ms']['p50'])} | {fmt(d['output_tok_s'], 0)} |")
    several = len(paths) > 1
    lines += ["", "| streams |" + (" path |" if several else "") + " added TTFT p50 | added TTFT p99 | added ITL p50 | "
              "added ITL p99 | throughput ratio (gateway/direct) | per round: min / median / max |",
              "|---:|" + ("---|" if several else "") + "---:|---:|---:|---:|---:|---|"]
    for row in doc["levels"]:
        for path in paths:
            vs = (row.get("vs_direct", {}).get(path)
                  or {"added": row["added"], "throughput_ratio": row["throughput_ratio"]})  # an older results.json
            ad = vs["added"]
            lines.append(f"| {row['level']} |" + (f" {path} |" if several else "") + f" {fmt(ad['ttft_p50'])} | "
                         f"{fmt(ad['ttft_p99'])} | {fmt(ad['itl_p50'])} | {fmt(ad['itl_p99'])} | "
                         f"{fmt(vs['throughput_ratio'], 3)} | {spread(round_ratios(row, path))} |")
    lines += ["", GOALS, ""]
    lines += render_cpu(doc)
    for name, summary in (doc.get("profiles") or {}).items():
        lines += ["", f"py-spy of the gateway, {name} (`py-spy record --idle=false -r 250`, its measured window):", "",
                  *summary]
    lines += ["", f"![gateway overhead]({png_name})", ""]
    return "\n".join(lines) + "\n"


GOALS = ("Goals (issue 20), on 2 cores: added TTFT p50 < 1 ms and p99 < 5 ms at 1 stream; throughput ratio "
         ">= 0.95 at 64 streams and >= 0.9 at 256; gateway CPU <= 15 µs per relayed token event; the load "
         "generator <= 20 µs per event with validation on (check=full).")


def render_cpu(doc: dict[str, Any]) -> list[str]:
    """The per-process table: CPU µs per token event that arrived in the window (one upstream chunk
    each), and the cores each process used, pooled over the rounds of a (level, path)."""
    paths = doc.get("gateway_paths") or ["gateway"]
    if not any(row.get("direct", {}).get("cpu_s") for row in doc["levels"]):
        return []
    lines = [("CPU per process (loadtests/cpu.py: /proc schedstat at the start and end of each measured window), "
              "per token event that arrived in the window (each one upstream chunk relayed; through a gateway "
              "the client reads ~1.3 SSE events per token: created, in_progress, ... done), and in cores used. "
              "server = the gateway (or peer) the path goes through; direct: none."), "",
             ("| streams | path | token events | upstream µs/event | server µs/event | client µs/event | "
              "upstream cores | server cores | client cores |"),
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in doc["levels"]:
        for path in ("direct", *paths):
            d = row[path]
            us, cores = d.get("cpu_us_per_event") or {}, d.get("cpu_cores") or {}
            server = None if path == "direct" else (path if path in us else paths[0])
            lines.append(f"| {row['level']} | {path} | {d.get('token_events', '-')} | {fmt(us.get('upstream'), 1)} | "
                         f"{fmt(us.get(server), 1) if server else '-'} | {fmt(us.get('client'), 1)} | "
                         f"{fmt(cores.get('upstream'))} | {fmt(cores.get(server)) if server else '-'} | "
                         f"{fmt(cores.get('client'))} |")
    return lines


def plot(levels: list[dict[str, Any]], path: Path, *, title: str | None = None,
         gateway_paths: list[str] | None = None) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs = [str(r["level"]) for r in levels]
    paths = gateway_paths or ["gateway"]
    colors = ("tab:orange", "tab:purple", "tab:brown", "tab:pink")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric, name in ((axes[0], "ttft_ms", "TTFT"), (axes[1], "itl_ms", "ITL")):
        for kind, color in (("direct", "tab:blue"), *zip(paths, colors)):
            ax.plot(xs, [r[kind][metric]["p50"] for r in levels], "o-", color=color, label=f"{kind} p50")
            ax.plot(xs, [r[kind][metric]["p99"] for r in levels], "^--", color=color, label=f"{kind} p99")
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    width = 0.8 / len(paths)
    for i, (gw, color) in enumerate(zip(paths, ("tab:green",) if len(paths) == 1 else colors)):
        ratios = [((r.get("vs_direct") or {}).get(gw) or r)["throughput_ratio"] or 0 for r in levels]
        axes[2].bar([k + (i - (len(paths) - 1) / 2) * width for k in range(len(xs))], ratios, width=width,
                    color=color, label=gw)
    axes[2].set_xticks(range(len(xs)), xs)
    axes[2].axhline(0.98, color="red", linestyle="--", label="goal 0.98")
    axes[2].set_ylim(0, 1.1)
    axes[2].set_xlabel("concurrent streams")
    axes[2].set_title("throughput ratio (gateway / direct)")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"Reference gateway vs direct upstream ({title or 'paced mock'})")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
