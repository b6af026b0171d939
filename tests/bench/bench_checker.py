"""Throughput of the verdict engine (SSE decoder + stream checker) on one core, in events/s.

    .venv/bin/python tests/bench/bench_checker.py [--reps 7] [--repeat-recorded 20] [--deltas 10000]

Not a pytest test (no ``test_`` prefix): a script that prints a markdown table. Workloads:

* ``recorded``: the 12 streams recorded from OpenAI (shared/fixtures/openai-recorded), framed
  as OpenAI frames them, each judged as its own stream, the set repeated N times. Realistic:
  tool items, reasoning, large response.completed frames.
* ``synthetic``: one message stream with 10,000 output_text deltas (the hot case: a long
  answer streamed token by token).

Each body is fed to the decoder in 4 KiB chunks (what an HTTP client hands over). Modes:
``decode`` (SSEDecoder only), ``check, no schemas`` (decode + StreamChecker with
validate_schemas=False), ``check + schemas`` (the full verdict, what drivers run). Each mode runs
``--reps`` times after a warm-up (validators compile lazily), the modes interleaved; best and
median are reported, with a json.loads calibration to compare machines.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit")]

from harness.core.sse import SSEDecoder  # noqa: E402
from harness.core.stream import StreamChecker  # noqa: E402
from harness.core.verdict import events_to_sse  # noqa: E402
from stream_builder import message_stream, to_sse  # noqa: E402

FIXTURES = ROOT / ".." / "shared" / "fixtures" / "openai-recorded"
CHUNK = 4096


def chunked(body: bytes) -> list[bytes]:
    return [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]


def workloads(repeat_recorded: int, deltas: int) -> dict[str, list[list[bytes]]]:
    recorded = [chunked(events_to_sse(p.read_bytes()))
                for p in sorted(FIXTURES.glob("*.chunks.txt"))]
    tokens = [f" tok{n % 97}" for n in range(deltas)]
    synthetic = [chunked(to_sse(message_stream([tokens])))]
    return {"recorded": recorded * repeat_recorded, "synthetic": synthetic}


def run_decode(streams) -> int:
    n = 0
    for chunks in streams:
        dec = SSEDecoder()
        for c in chunks:
            n += len(dec.feed(c))
        n += len(dec.close())
    return n


def _run_check(streams, schemas: bool) -> int:
    n = 0
    for chunks in streams:
        dec = SSEDecoder()
        checker = StreamChecker("openai", log=dec.log, validate_schemas=schemas)
        checker.headers(200, "text/event-stream")
        feed = checker.feed
        for c in chunks:
            for frame in dec.feed(c):
                feed(frame)
        for frame in dec.close():
            feed(frame)
        checker.close()
        n += checker._n
    return n


def run_check_noschema(streams) -> int:
    return _run_check(streams, False)


def run_check_schema(streams) -> int:
    return _run_check(streams, True)


MODES = {"decode": run_decode, "check, no schemas": run_check_noschema,
         "check + schemas": run_check_schema}


def measure(streams, reps: int) -> dict[str, tuple[int, float, float]]:
    """Every mode, interleaved rep by rep (this VM's speed drifts by 2x over seconds, so
    modes timed one after another are not comparable): {mode: (events, best s, median s)}."""
    events = {name: fn(streams) for name, fn in MODES.items()}  # warm-up: compiles validators
    times: dict[str, list[float]] = {name: [] for name in MODES}
    for _ in range(reps):
        for name, fn in MODES.items():
            t0 = time.perf_counter()
            fn(streams)
            times[name].append(time.perf_counter() - t0)
    return {name: (events[name], min(t), statistics.median(t)) for name, t in times.items()}


def calibrate(reps: int) -> float:
    """µs for json.loads of one ~200-byte output_text.delta event: the yardstick of
    shared/notes/validation-speed.md (2.0 µs there), to compare machines."""
    data = json.dumps({"type": "response.output_text.delta", "sequence_number": 12,
                       "item_id": "msg_0123456789abcdef0123456789abcdef0123456789abcd",
                       "output_index": 0, "content_index": 0, "delta": " tok42",
                       "logprobs": [], "obfuscation": "J4mkASepgs2g"})
    loads, n = json.loads, 20_000
    best = min(_timed(lambda: [loads(data) for _ in range(n)]) for _ in range(reps))
    return best / n * 1e6


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--repeat-recorded", type=int, default=20)
    ap.add_argument("--deltas", type=int, default=10_000)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the "
                    "first allowed)")
    ap.add_argument("--profile", metavar="WORKLOAD", help="cProfile check + schemas on it")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    loads = workloads(args.repeat_recorded, args.deltas)
    if args.profile:
        streams = loads[args.profile]
        run_check_schema(streams)
        prof = cProfile.Profile()
        prof.enable()
        run_check_schema(streams)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    print(f"machine: {machine()}")
    print(f"reps {args.reps} (after one warm-up, modes interleaved), one core, 4 KiB chunks")
    print(f"calibration: json.loads of a ~200-byte delta event = {calibrate(args.reps):.2f} µs "
          "(2.0 µs on the machine of shared/notes/validation-speed.md)\n")
    print("| workload | mode | events | best s | median s | events/s (best) | "
          "events/s (median) | µs/event (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for wname, streams in loads.items():
        size = sum(len(c) for s in streams for c in s)
        for mname, (events, best, med) in measure(streams, args.reps).items():
            print(f"| {wname} ({len(streams)} streams, {size / 1e6:.1f} MB) | {mname} | "
                  f"{events} | {best:.4f} | {med:.4f} | {events / best:,.0f} | "
                  f"{events / med:,.0f} | {med / events * 1e6:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
