"""Prometheus metrics of one gateway: what ``GET /metrics`` shows (text exposition format).

    reference_gateway_requests_total{route, method, status}      counter: every HTTP request, by
        route template (``/v1/responses/{response_id}``; ``other`` for an unknown path) and status
    reference_gateway_streams_in_flight                           gauge: event streams open now
    reference_gateway_time_to_first_token_seconds                 histogram: create request received
        -> first output text / reasoning / tool-argument delta event sent (streams only)
    reference_gateway_request_duration_seconds{streamed}          histogram: create requests
        (POST /v1/responses), received -> last byte sent; ``streamed`` is the request's ``stream``
        ("yes"/"no"; "no" when the body could not be parsed)
    reference_gateway_upstream_errors_total{kind}                 counter: failed upstream calls,
        ``timeout`` | ``connect`` | ``status_5xx`` | ``status_4xx`` | ``protocol`` (not JSON,
        truncated, over a cap, an error chunk mid-stream, a connection broken mid-answer)
    reference_gateway_builtin_tool_calls_total{kind, outcome}     counter: hosted tool calls run,
        kind ``mcp_call`` | ``code_interpreter_call`` | ``web_search_call``, outcome the item's
        final status (``completed`` | ``failed``)

Each gateway (``create_app``) has its own metrics, so two gateways in one process (the tests)
count apart. The label sets of the two error counters are created at zero, so a dashboard sees
every kind before the first failure.

Several worker processes behind one port (``--workers N``): prometheus_client's multiprocess
mode. The process that starts the workers (worker.py's supervisor) sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh private folder before any worker starts, unless it is
already set (then its owner points it at an empty folder, wiped between runs). Every worker
writes its values to files there, and a scrape of any worker reads them all: counters and
histograms summed over every process that ever ran, the in-flight gauge summed over the live
ones (``livesum``). The variable must be set before prometheus_client is imported (it chooses
its value store at import): a gateway that finds it set too late says so at start. A worker
that exits cleanly takes its gauge file with it; one killed outright leaves a file that the
next scrape removes once its pid is gone (``_forget_dead``). Process metrics (``process_*``:
CPU, memory, file descriptors) are exported in single-process mode only, as prometheus_client
does. One gateway per process in this mode (two in one process would share its files).
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess, values
from prometheus_client.process_collector import ProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "reference_gateway_"

# vLLM's own buckets for vllm:time_to_first_token_seconds (vllm/v1/metrics/loggers.py), so a
# gateway histogram and the engine's behind it can be read on one dashboard: 1 ms to 43 min.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
# vLLM's buckets for vllm:e2e_request_latency_seconds (0.3 s to 2 h), below them the start of
# prometheus_client's default buckets: a non-streamed or refused create takes milliseconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)

UPSTREAM_ERROR_KINDS = ("timeout", "connect", "status_5xx", "status_4xx", "protocol")
BUILTIN_KINDS = ("mcp_call", "code_interpreter_call", "web_search_call")
BUILTIN_OUTCOMES = ("completed", "failed")


class MetricsError(ValueError):
    """The multiprocess setup cannot work (one line: what to fix)."""


def multiprocess_path() -> str | None:
    """The multiprocess folder when multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR`` set),
    else None; MetricsError when it is set but unusable."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return None
    if not os.path.isdir(path):
        raise MetricsError(f"{MULTIPROC_ENV}={path!r} is not a folder (create it, empty, before the workers start)")
    if values.ValueClass is values.MutexValue:
        raise MetricsError(f"{MULTIPROC_ENV} was set after prometheus_client was imported; set it before the "
                           "gateway starts (the supervisor of the workers sets it)")
    return path


def _forget_dead(path: str) -> None:
    """Drop the live-gauge files of processes that are gone (killed without a clean exit)."""
    for file in Path(path).glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid), path)
        except PermissionError:  # alive, someone else's
            pass


class GatewayMetrics:
    """The metrics of one gateway, and their exposition."""

    def __init__(self) -> None:
        self.multiprocess_dir = multiprocess_path()
        # Multiprocess mode: values live in the folder's files, read back at each scrape; the
        # metric objects belong to no registry.
        registry = None if self.multiprocess_dir else CollectorRegistry()
        self._registry = registry
        if registry is not None:
            ProcessCollector(registry=registry)
        self.requests = Counter(PREFIX + "requests", "HTTP requests, by route template, method and status.",
                                ("route", "method", "status"), registry=registry)
        self.streams_in_flight = Gauge(PREFIX + "streams_in_flight", "Event streams being sent now.",
                                       registry=registry, multiprocess_mode="livesum")
        self.ttft = Histogram(PREFIX + "time_to_first_token_seconds",
                              "Create request received to its first output delta event sent (streams).",
                              registry=registry, buckets=TTFT_BUCKETS)
        self.duration = Histogram(PREFIX + "request_duration_seconds",
                                  "Create requests (POST /v1/responses), received to last byte sent.",
                                  ("streamed",), registry=registry, buckets=DURATION_BUCKETS)
        self.upstream_errors = Counter(PREFIX + "upstream_errors", "Failed upstream calls, by kind.",
                                       ("kind",), registry=registry)
        self.builtin_calls = Counter(PREFIX + "builtin_tool_calls", "Built-in tool calls run, by kind and outcome.",
                                     ("kind", "outcome"), registry=registry)
        for kind in UPSTREAM_ERROR_KINDS:
            self.upstream_errors.labels(kind)
        for kind in BUILTIN_KINDS:
            for outcome in BUILTIN_OUTCOMES:
                self.builtin_calls.labels(kind, outcome)

    def render(self) -> tuple[bytes, str]:
        """The exposition (body, content type): this process's metrics, or in multiprocess mode
        every process's, merged."""
        if self.multiprocess_dir is None:
            return generate_latest(self._registry), CONTENT_TYPE_LATEST
        _forget_dead(self.multiprocess_dir)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """At the process's clean exit: its streams are over, its live gauge leaves the sum."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)
