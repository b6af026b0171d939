"""CPU time of processes, read from /proc: what one benchmark round cost each process.

A round's throughput depends on how the machine's cores are shared (other work on the box, the
other processes of the benchmark); the CPU time a process spent per event it handled does not,
or far less. ``loadtests/overhead.py`` samples every process it measures (the mock upstream, the
gateway with its workers, the load generator with its workers) at the start and at the end of
each round's measured window, and divides by the token events of that window.

Source: ``/proc/PID/task/TID/schedstat``, whose first field is the time the thread ran, in
nanoseconds (the scheduler's own accounting, CONFIG_SCHED_INFO), summed over the process's
threads; where it is missing, ``utime + stime`` of ``/proc/PID/stat`` (clock ticks, usually
10 ms: too coarse for one stream's few hundred events in 4 s, fine beyond). A thread that ended
inside the window takes its time with it (the gateway's threads live as long as it does).
Linux only; elsewhere every reading is None and the benchmark prints "-".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def _thread_ns(pid: int) -> int | None:
    total, seen = 0, False
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
            seen = True
        except (OSError, ValueError, IndexError):
            continue
    return total if seen else None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    return text[text.rindex(")") + 2:].split()


def process_seconds(pid: int) -> float | None:
    """CPU seconds process ``pid`` has used so far (all its threads), or None (gone, or no /proc)."""
    ns = _thread_ns(pid)
    if ns is not None:
        return ns / 1e9
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14, 15 of stat)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (children, their children, ...), as /proc lists them now."""
    parent_of: dict[int, int] = {}
    try:
        entries = [e for e in os.listdir(PROC) if e.isdigit()]
    except OSError:
        return [root]
    for entry in entries:
        fields = _stat_fields(int(entry))
        if fields is not None:
            parent_of[int(entry)] = int(fields[1])  # ppid (field 4 of stat)
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parent_of.items() if ppid in frontier and pid not in tree]
        tree += frontier
    return tree


def total_seconds(pids: Iterable[int]) -> float | None:
    """CPU seconds of ``pids`` together; None when none of them could be read."""
    readings = [process_seconds(pid) for pid in pids]
    known = [r for r in readings if r is not None]
    return sum(known) if known else None
