"""What a process that serves the gateway sets for itself once its app is built:
``python -m reference_gateway`` (one process or each ``--workers`` worker) and the load tests'
server processes. Not the in-process servers of the tests and of the harness (launch.py): the
process that hosts them keeps its own settings.

Garbage collection. Streaming, the gateway allocates a few container objects per relayed token
(chunk dicts, event dicts, their lists), which trips CPython's youngest-generation collection
every 700 net allocations, and every tenth of those a collection of the middle generation,
every tenth of those a full one that walks every object of the process, imported modules
included. Measured at 256 paced streams (a gateway under `respcheck load`, gc.callbacks timing
each collection): 1.8 s of 8.6 s of the process's CPU went to collections (a full one ~85 ms,
a pause every stream feels), 1,513 of them in ~10 s. With the objects that exist once the app
is built frozen (``gc.freeze``: never walked again) and the thresholds below, 2 collections,
0.06 s, and 6 % more requests in the same window. Reference cycles are still collected, after
100,000 net allocations instead of 700: a bounded delay, a few MB at most.
(reports/benchmarks/gateway-overhead.md.)
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 50, 100)


def tune_gc() -> None:
    """Freeze what exists now (the app, its modules) and collect the young generation rarely."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
