"""The locust user, and the per-process state of a stage that it reads.

Importing this module imports locust, which monkey-patches the process for gevent: import it
only in a load-generator process of its own (``loadtests.runner``, ``loadtests.worker``), never
in the test process or the CLI's parent process.

A stage (one concurrency level, or one arrival rate, of a sweep) is described by a plain dict
sent to every process (in-process for a local run, as a locust custom message to workers):
``{"label", "t_end", "rate", "base_url", "api_key", "workload", "deadline_s", "idle_s"}``.
Users send requests back to back (closed loop) until the wall clock passes ``t_end``; with
``rate`` set they instead wait for arrivals from one Poisson pacer per process (open loop, the
process's share of the total rate), so ``users`` bounds the requests in flight. After
``t_end`` users send nothing and idle until the runner stops them; requests already sent
finish (the drain), so the latencies of a stage are not cut short.
"""

from __future__ import annotations

import random
import time
from typing import Any

import gevent
from gevent.queue import Empty, Queue
from locust import User, constant, task

from loadtests.http1 import Connection
from loadtests.metrics import Sample
from loadtests.observe import ExchangeObserver
from loadtests.workload import Workload

IDLE_POLL_S = 0.05


class StageState:
    """What the users of one process share during a stage."""

    def __init__(self) -> None:
        self.stage: dict[str, Any] | None = None
        self.workload: Workload | None = None
        self.samples: list[Sample] = []
        self.inflight = 0
        self.done = 0
        self.failed = 0
        self.violations = 0
        self.arrivals: Queue | None = None
        self._pacer = None
        self._n = random.getrandbits(40)  # request numbers: distinct across processes

    def begin(self, stage: dict[str, Any]) -> None:
        self.end()
        self.stage = stage
        self.workload = Workload(**stage["workload"])
        self.samples = []
        self.done = self.failed = self.violations = 0
        if stage.get("rate"):
            self.arrivals = Queue()
            self._pacer = gevent.spawn(self._pace, float(stage["rate"]), float(stage["t_end"]))

    def end(self) -> None:
        if self._pacer is not None:
            self._pacer.kill(block=False)
            self._pacer = None

    def accepting(self) -> bool:
        return self.stage is not None and time.time() < self.stage["t_end"]

    def next_number(self) -> int:
        self._n += 1
        return self._n

    def take_samples(self) -> list[Sample]:
        out, self.samples = self.samples, []
        return out

    def record(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.done += 1
        self.failed += not sample.ok
        self.violations += sum(sample.violations.values())

    def _pace(self, rate: float, t_end: float) -> None:
        """Poisson arrivals: exponential gaps of mean 1/rate, on an absolute schedule so that
        a late wake-up does not lower the rate."""
        rng = random.Random()
        t = time.monotonic()
        end_mono = t + (t_end - time.time())
        while True:
            t += rng.expovariate(rate)
            if t >= end_mono:
                return
            gevent.sleep(max(0.0, t - time.monotonic()))
            self.arrivals.put(t)

    def wait_drained(self, deadline_s: float) -> bool:
        """After t_end: wait until no request is in flight (or the deadline)."""
        t_end = self.stage["t_end"] if self.stage else time.time()
        gevent.sleep(max(0.0, t_end - time.time()))
        limit = time.monotonic() + deadline_s
        while self.inflight and time.monotonic() < limit:
            gevent.sleep(0.02)
        return self.inflight == 0


class LoadUser(User):
    """One simulated client: one kept-alive connection, one request at a time."""

    wait_time = constant(0)
    host = "http://127.0.0.1"  # unused (the stage carries the URL); locust wants one

    def on_start(self) -> None:
        self._conn: Connection | None = None
        self._url: str | None = None

    def on_stop(self) -> None:
        if self._conn is not None:
            self._conn.close()

    @task
    def request(self) -> None:
        state: StageState = self.environment.respcheck
        if not state.accepting():
            gevent.sleep(IDLE_POLL_S)
            return
        stage, workload = state.stage, state.workload
        if state.arrivals is not None:
            try:
                state.arrivals.get(timeout=IDLE_POLL_S)
            except Empty:
                return
            if not state.accepting():
                return
        if self._conn is None or self._url != stage["base_url"]:
            if self._conn is not None:
                self._conn.close()
            self._url = stage["base_url"]
            self._conn = Connection(stage["base_url"], api_key=stage.get("api_key"))
        body = workload.body(state.next_number())
        label = stage["label"]

        def observer(t_send: float, t_wall: float) -> ExchangeObserver:
            return ExchangeObserver(api=workload.api, stream=workload.stream, t_send=t_send,
                                    t_send_wall=t_wall, stage=label, check=workload.check,
                                    profile=workload.profile)

        state.inflight += 1
        try:
            obs = self._conn.post(workload.path, body, observer, deadline_s=stage["deadline_s"],
                                  idle_s=stage["idle_s"])
        finally:
            state.inflight -= 1
        sample = obs.sample
        state.record(sample)
        self.environment.events.request.fire(
            request_type="POST", name=f"{workload.path} [{label}]",
            response_time=(sample.e2el or 0.0) * 1000.0, response_length=sample.output_tokens,
            exception=None if sample.ok else RuntimeError(sample.error), context={})
