"""The overhead benchmark's probes: per-process CPU time from /proc (loadtests/cpu.py) and the
py-spy summary (loadtests/profile.py). No timing is asserted: only that the readings move the
right way and that the summary counts what the stacks say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import cpu
from loadtests.profile import read_collapsed, summarize, top_frames

linux = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@linux
def test_process_seconds_grow_with_work_and_vanish_with_the_process():
    before = cpu.process_seconds(os.getpid())
    x = 0
    for i in range(300_000):
        x += i * i
    after = cpu.process_seconds(os.getpid())
    assert before is not None and after is not None and after > before
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpu.process_seconds(child.pid) is None  # gone: no reading, not zero
    assert cpu.total_seconds([child.pid]) is None
    assert cpu.total_seconds([child.pid, os.getpid()]) >= after


@linux
def test_descendants_finds_a_grandchild():
    code = "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); " \
           "print(p.pid, flush=True); p.wait()"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(parent.stdout.readline())
        tree = cpu.descendants(parent.pid)
        assert tree[0] == parent.pid and grandchild in tree
        assert os.getpid() not in tree
    finally:
        os.kill(grandchild, 9)
        parent.wait(10)


def test_profile_summary_counts_self_and_inclusive(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("main (app.py);loop (app.py);send (/x/site-packages/uvicorn/h.py) 30\n"
                   "main (app.py);loop (app.py);parse (orjson) 10\n"
                   "main (app.py);loop (app.py);loop (app.py) 10\n"
                   "a line that is not a stack\n")
    total, own, incl = top_frames(read_collapsed(raw))
    assert total == 50
    assert own["send (/x/site-packages/uvicorn/h.py)"] == 30 and own["loop (app.py)"] == 10
    assert incl["loop (app.py)"] == 50  # a recursive frame counts once per stack
    lines = summarize(raw, rate_hz=10, duration_s=10)
    assert lines[0].startswith("50 samples, busy 50%")
    assert "| 60.0% | `send (uvicorn/h.py)` |" in "\n".join(lines)


def test_profile_summary_of_an_empty_capture(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text("")
    assert summarize(raw, rate_hz=10, duration_s=1) == ["no samples."]
