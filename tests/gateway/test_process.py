"""A gateway process's own settings (process.py): young objects collected rarely, what existed
at start frozen, and reference cycles still collected, only later."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, weakref
from reference_gateway.process import GC_THRESHOLDS, tune_gc

class Node:
    pass

tune_gc()
assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()  # the modules' objects, at least

collected = []
first = Node()
first.self = first  # a cycle: only the collector frees it
weakref.finalize(first, collected.append, True)
del first
for _ in range(GC_THRESHOLDS[0] // 4):  # two lists each: half the threshold
    a, b = [], []
    a.append(b); b.append(a)  # young cyclic garbage, below the threshold: not yet collected
assert collected == [], "collected before the threshold"
for _ in range(GC_THRESHOLDS[0]):
    a, b = [], []
    a.append(b); b.append(a)
assert collected == [True], "a cycle was never collected"
print("ok")
"""


def test_tune_gc_freezes_and_still_collects_cycles():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
