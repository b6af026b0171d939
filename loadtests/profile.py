"""py-spy of the gateway during one benchmark round, summed up as its top frames.

``python -m loadtests.overhead --profile-levels 1,256`` records the (first) gateway process
during its first measured window at each of those levels (``py-spy record --nonblocking
--nolineno --format raw``: the target is never paused, so the round's figures stay its own) and
writes ``OUT/profile-gateway-cN.txt`` (collapsed stacks, flamegraph.pl's input) and a summary:
the frames with the most samples of their own (self) and in all (inclusive, each stack counted
once per frame), as shares of the samples. py-spy counts only a thread that is running (not
waiting in ``epoll``): samples / (rate x seconds) is the share of the window the gateway was busy.

py-spy is the ``bench`` extra (``pip install '.[bench]'``); without it the round runs
unprofiled, and the summary says so.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RATE_HZ = 250
TOP = 12


def _py_spy() -> str | None:
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, out: Path, *, levels: list[int], path: str, duration_s: float) -> None:
        self.pid, self.out, self.levels, self.path = pid, out, set(levels), path
        self.duration_s = max(1, math.floor(duration_s))
        self.summaries: dict[str, list[str]] = {}
        self._running: tuple[subprocess.Popen, Path, str] | None = None

    def round_started(self, spec: dict) -> None:
        level = spec["level"]
        name = f"{level} stream{'s' if level != 1 else ''}"
        if spec["path"] != self.path or level not in self.levels or name in self.summaries:
            return
        exe = _py_spy()
        if exe is None:
            self.summaries[name] = ["py-spy is not installed (pip install '.[bench]'): no profile."]
            return
        raw = self.out / f"profile-gateway-c{level}.txt"
        proc = subprocess.Popen([exe, "record", "--pid", str(self.pid), "--duration", str(self.duration_s),
                                 "--rate", str(RATE_HZ), "--nonblocking", "--nolineno", "--format", "raw",
                                 "--output", str(raw)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._running = (proc, raw, name)

    def round_ended(self, spec: dict) -> None:
        if self._running is None:
            return
        proc, raw, name = self._running
        self._running = None
        try:
            proc.wait(self.duration_s + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
        self.summaries[name] = summarize(raw, rate_hz=RATE_HZ, duration_s=self.duration_s) \
            if raw.exists() else [f"py-spy wrote nothing (exit {proc.returncode})."]


def top_frames(stacks: dict[str, int]) -> tuple[int, Counter, Counter]:
    """(samples, self counts, inclusive counts) of collapsed stacks ``"a;b;c" -> count``."""
    own, incl = Counter(), Counter()
    total = 0
    for stack, count in stacks.items():
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    return total, own, incl


def read_collapsed(path: Path) -> dict[str, int]:
    stacks: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] = stacks.get(stack, 0) + int(count)
    return stacks


def summarize(path: Path, *, rate_hz: int, duration_s: float, top: int = TOP) -> list[str]:
    total, own, incl = top_frames(read_collapsed(path))
    if not total:
        return ["no samples."]
    busy = total / (rate_hz * duration_s)
    lines = [f"{total} samples, busy {busy:.0%} of the window; file `{path.name}`.", "",
             "| self | frame | | inclusive | frame |", "|---:|---|---|---:|---|"]
    # frames on (nearly) every stack are the event loop's plumbing (runpy, asyncio.run, run_forever):
    # left out of the inclusive column, which is there to show where the time goes below them
    roots = max(incl.values()) * 0.95
    below = [(frame, count) for frame, count in incl.most_common() if count < roots][:top]
    for (f1, c1), (f2, c2) in zip(own.most_common(top), below):
        lines.append(f"| {c1 / total:.1%} | `{_short(f1)}` | | {c2 / total:.1%} | `{_short(f2)}` |")
    return lines


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    func, _, where = frame.partition(" (")
    where = where.rstrip(")").removeprefix(str(REPO) + "/")
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            if marker == "lib/python3":
                where = "stdlib/" + where.split("/", 1)[-1]
    return f"{func} ({where})".replace("|", "\\|")
