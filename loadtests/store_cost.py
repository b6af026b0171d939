"""What storing responses costs the gateway, before vs after a change, side by side in one run:
``python -m loadtests.store_cost [--before REV] [--levels 64,256] [--rounds 3] [--requests N]``.

Two gateways run at once, as processes of their own (loadtests/servers.py) in front of one
paced mock upstream (``mock-paced:0:10``: a token every 10 ms): ``after``, the code of this
working tree, and ``before``, the code of ``REV`` (``git archive`` into a temporary directory;
default: the commit before the one that added reference_gateway/store_writer.py, i.e. the
store as it was: one synchronous commit per response on the event loop, a stream stored only
when final). Each keeps its own SQLite file (``synchronous=FULL``, as by default).

Each round sends, to each gateway in turn (the order reversed every other round, so drift of a
shared machine hits both alike), ``--requests`` streamed ``store: true`` requests, ``level`` at a
time, then as many with ``store: false``. What is measured is the gateway process's CPU time
(user + system, all its threads: the writer thread's commits count) over the batch, divided by
the responses and by the SSE events it sent; the store's cost is the difference between
``store: true`` and ``store: false`` of the same gateway in the same round. The load generator
is this process (asyncio + httpx); its own CPU is not counted.

Writes ``--out`` (default reports/load/store-cost/results.json) and, with ``--write-benchmark``,
reports/benchmarks/store-cost.md (keeping its hand-written "## Reading" section).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

from loadtests import servers
from loadtests.report import machine_info, write_benchmark_md

BENCH_MD = Path("reports/benchmarks/store-cost.md")
MODEL = "mock-paced:0:10"
REQUEST_TIMEOUT_S = 60.0
# A response ends incomplete here: the paced mock writes exactly max_output_tokens (length).
FINAL = ('"type":"response.completed"', '"type":"response.incomplete"')
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, thread: int | None = None) -> float:
    """User + system CPU time of process ``pid`` (all its threads), or of one of its threads
    (``thread``: its id; the main thread's id is ``pid``: the gateway's event loop), from /proc."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14, 15)


def before_rev(repo: Path) -> str:
    added = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", "reference_gateway/store_writer.py"],
                           cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise SystemExit("store_cost: cannot find the commit that added store_writer.py; give --before REV")
    return f"{added[-1]}^"


def checkout(repo: Path, rev: str, into: Path) -> str:
    """``rev``'s tree, extracted into ``into``; its full commit hash."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=repo, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", commit], cwd=repo, capture_output=True, check=True).stdout
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    return commit


async def batch(base_url: str, *, requests: int, level: int, store: bool, output_tokens: int) -> dict:
    """``requests`` streamed creates, ``level`` at a time: responses completed, events received."""
    body = {"model": MODEL, "input": "store cost", "max_output_tokens": output_tokens, "stream": True,
            "store": store}
    done = events = errors = 0
    gate = asyncio.Semaphore(level)
    limits = httpx.Limits(max_connections=level, max_keepalive_connections=level)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        async def one() -> None:
            nonlocal done, events, errors
            async with gate:
                try:
                    async with client.stream("POST", "/responses", json=body) as r:
                        completed = False
                        async for line in r.aiter_lines():
                            if line.startswith("data: "):
                                events += 1
                                completed = completed or any(t in line for t in FINAL)
                        done += completed
                        errors += not completed
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(requests)))
    return {"responses": done, "events": events, "errors": errors}


async def measure(gateway: servers.ServerProcess, **load) -> dict:
    cpu0, loop0, t0 = cpu_seconds(gateway.pid), cpu_seconds(gateway.pid, thread=gateway.pid), time.monotonic()
    result = await batch(gateway.base_url, **load)
    result["cpu_s"] = cpu_seconds(gateway.pid) - cpu0
    result["loop_cpu_s"] = cpu_seconds(gateway.pid, thread=gateway.pid) - loop0
    result["wall_s"] = time.monotonic() - t0
    return result


def summarise(samples: list[dict]) -> dict:
    """Pooled over rounds: CPU ms per response and µs per event, store on and off, and the store's
    own cost (on minus off)."""
    out = {}
    for store in (True, False):
        rows = [s for s in samples if s["store"] is store]
        cpu, loop = sum(r["cpu_s"] for r in rows), sum(r["loop_cpu_s"] for r in rows)
        responses, events = sum(r["responses"] for r in rows), sum(r["events"] for r in rows)
        out["on" if store else "off"] = {
            "responses": responses, "events": events, "errors": sum(r["errors"] for r in rows),
            "cpu_ms_per_response": 1000 * cpu / max(responses, 1),
            "loop_cpu_ms_per_response": 1000 * loop / max(responses, 1),
            "cpu_us_per_event": 1e6 * cpu / max(events, 1),
            "responses_per_s": responses / max(sum(r["wall_s"] for r in rows), 1e-9),
        }
    out["store_ms_per_response"] = out["on"]["cpu_ms_per_response"] - out["off"]["cpu_ms_per_response"]
    out["store_loop_ms_per_response"] = (out["on"]["loop_cpu_ms_per_response"]
                                         - out["off"]["loop_cpu_ms_per_response"])
    # Per round (paired: the same gateway, store on then off, back to back): how much the
    # difference moves from round to round, i.e. how far to trust the pooled one.
    pairs = {}
    for r in samples:
        pairs.setdefault(r["round"], {})[r["store"]] = r
    out["store_ms_per_response_by_round"] = [
        1000 * (p[True]["cpu_s"] / max(p[True]["responses"], 1) - p[False]["cpu_s"] / max(p[False]["responses"], 1))
        for _, p in sorted(pairs.items()) if True in p and False in p]
    return out


def render_md(doc: dict) -> str:
    lines = [
        "# Store cost: progressive persistence vs one commit per response",
        "",
        f"Regenerate: `{doc['command']}`",
        "",
        f"Machine: {doc['machine'].get('cpus')} CPUs ({doc['machine'].get('cpu', '?')}), shared with other "
        f"work; Python {doc['machine'].get('python')}. Upstream: the paced mock (`{MODEL}`), "
        f"{doc['output_tokens']} output "
        f"tokens per response; {doc['requests']} requests per batch, {doc['rounds']} rounds, interleaved.",
        f"`before` = {doc['before']} (one synchronous SQLite commit per response, on the event loop; a "
        f"stream stored only when final); `after` = this tree (a stored stream inserted at "
        f"`response.created`, its output every 0.25 s, final before its terminal event; all through "
        f"the group-committing writer thread).",
        "",
        "Gateway CPU (user + system, all threads), pooled over the rounds:",
        "",
        "| streams | code | store | responses | errors | CPU ms / response | of which event loop | "
        "CPU µs / event | responses/s |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for level in doc["levels"]:
        for code in ("before", "after"):
            s = doc["summary"][str(level)][code]
            for store in ("on", "off"):
                row = s[store]
                lines.append(f"| {level} | {code} | {store} | {row['responses']} | {row['errors']} | "
                             f"{row['cpu_ms_per_response']:.2f} | {row['loop_cpu_ms_per_response']:.2f} | "
                             f"{row['cpu_us_per_event']:.1f} | "
                             f"{row['responses_per_s']:.1f} |")
    lines += ["", "The store's own cost: CPU ms per response, store on minus store off (same gateway, same "
              "rounds), pooled; on the event loop's thread alone; and each round's paired difference:",
              "", "| streams | code | store cost, all threads | on the event loop | per round |",
              "|---:|---|---:|---:|---|"]
    for level in doc["levels"]:
        for code in ("before", "after"):
            s = doc["summary"][str(level)][code]
            rounds = ", ".join(f"{v:.2f}" for v in s["store_ms_per_response_by_round"])
            lines.append(f"| {level} | {code} | {s['store_ms_per_response']:.2f} | "
                         f"{s['store_loop_ms_per_response']:.2f} | {rounds} |")
    return "\n".join(lines) + "\n"


async def run(args, gateways: dict[str, servers.ServerProcess]) -> dict:
    samples: dict[int, dict[str, list[dict]]] = {level: {code: [] for code in gateways} for level in args.levels}
    codes = list(gateways)
    for level in args.levels:
        for n in range(args.rounds):
            for code in codes if n % 2 == 0 else codes[::-1]:
                for store in (True, False):
                    result = await measure(gateways[code], requests=args.requests, level=level, store=store,
                                           output_tokens=args.output_tokens)
                    samples[level][code].append({**result, "store": store, "round": n})
                    print(f"level {level} round {n} {code:6} store={str(store):5} {result}", file=sys.stderr)
    return {"samples": {str(k): v for k, v in samples.items()},
            "summary": {str(level): {code: summarise(rows) for code, rows in by_code.items()}
                        for level, by_code in samples.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.store_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--before", help="the git revision to compare with (default: before store_writer.py)")
    p.add_argument("--levels", type=lambda t: [int(v) for v in t.split(",")], default=[64, 256])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=512, help="requests per batch (default 512)")
    p.add_argument("--output-tokens", type=int, default=32)
    p.add_argument("--out", default="reports/load/store-cost")
    p.add_argument("--write-benchmark", action="store_true", help=f"also write {BENCH_MD}")
    args = p.parse_args(argv)
    repo = Path(__file__).resolve().parent.parent
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="store-cost-") as tmp:
        tmp = Path(tmp)
        (tmp / "before").mkdir()
        before = checkout(repo, args.before or before_rev(repo), tmp / "before")
        with servers.spawn("mock", log=out / "mock.log") as mock, \
                servers.spawn("gateway", upstream=mock.base_url, log=out / "before.log", code_root=tmp / "before",
                              config={"store": str(tmp / "before.sqlite3")}) as old, \
                servers.spawn("gateway", upstream=mock.base_url, log=out / "after.log",
                              config={"store": str(tmp / "after.sqlite3")}) as new:
            doc = asyncio.run(run(args, {"before": old, "after": new}))
    doc.update(command="python -m loadtests.store_cost " + " ".join(argv if argv is not None else sys.argv[1:]),
               machine=machine_info(), before=before[:12], levels=args.levels, rounds=args.rounds,
               requests=args.requests, output_tokens=args.output_tokens)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    md = render_md(doc)
    (out / "store-cost.md").write_text(md)
    if args.write_benchmark:
        write_benchmark_md(BENCH_MD, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
