"""A load-generator worker: ``python -m loadtests.worker --master-host HOST --master-port PORT``.

``respcheck load --workers N`` starts N of these on the same machine. To spread the load over
several machines, start the master with a reachable bind address and the number of workers
that will come from elsewhere, then start the workers there (same checkout, same Python
packages):

    # machine A (master; runs its own N local workers too, N may be 0)
    respcheck load --target http://10.0.0.5:8080/v1 --workers 0 --external-workers 2 \\
        --master-bind 0.0.0.0:5557 --users 512 --duration 60s
    # machines B and C
    python -m loadtests.worker --master-host <A's address> --master-port 5557

The worker needs nothing else: each stage's description (target, workload, end time, its share
of the arrival rate) comes from the master as a locust custom message, and the worker sends its
samples back (``respcheck_flush``) once the stage's requests have drained. Stage end times are
wall-clock, so the machines' clocks must agree (NTP) to well under the warm-up.
"""

from __future__ import annotations

import argparse
import logging
import sys

import gevent
import locust  # noqa: F401  (first: gevent's monkey-patching)
from locust.env import Environment

from loadtests.user import LoadUser, StageState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.worker")
    parser.add_argument("--master-host", default="127.0.0.1")
    parser.add_argument("--master-port", type=int, default=5557)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("locust").setLevel(logging.ERROR)

    env = Environment(user_classes=[LoadUser], stop_timeout=0)
    state = env.respcheck = StageState()
    runner = env.create_worker_runner(args.master_host, args.master_port)

    def flush_when_drained(drain_s: float) -> None:
        state.wait_drained(drain_s)
        runner.send_message("respcheck_flush", {"samples": [s.to_wire() for s in state.take_samples()],
                                                "inflight": state.inflight})

    def on_stage(msg, **_kw) -> None:
        state.begin(msg.data)
        gevent.spawn(flush_when_drained, float(msg.data.get("drain_s", 60.0)))

    def on_report(client_id, data) -> None:
        data["respcheck"] = {"done": state.done, "failed": state.failed,
                             "violations": state.violations, "inflight": state.inflight}

    runner.register_message("respcheck_stage", on_stage)
    env.events.report_to_master.add_listener(on_report)
    runner.greenlet.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
