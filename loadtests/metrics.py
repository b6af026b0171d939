"""Exact load-test metrics, computed from raw per-request samples (no histograms, no buckets).

The definitions follow vLLM's serving benchmark (``benchmarks/benchmark_serving.py``, now
``vllm/benchmarks/serve.py``, ``calculate_metrics``), so numbers here can be set beside the
numbers it prints:

TTFT  time to first token: from the moment the request is sent to the arrival of the first
      content delta, i.e. the first non-empty ``response.output_text.delta`` (or
      ``response.reasoning_text.delta``) of a Responses stream, the first non-empty
      ``delta.content`` (or ``delta.reasoning_content``) of a chat-completions stream. vLLM
      likewise skips chunks whose content is empty (the role-only first chunk).
ITL   inter-token latency: the gap between two consecutive content deltas of one stream. All
      gaps of all requests are pooled into one distribution (vLLM: ``itls += output.itl``).
      A delta that carries several tokens is one gap, as in vLLM.
TPOT  time per output token, per request: ``(E2EL - TTFT) / (output_tokens - 1)``, defined
      for requests with more than one output token (vLLM: ``if output_len > 1``).
E2EL  end-to-end latency: from the send to the terminal event (``response.completed`` /
      ``incomplete`` / ``failed``; for chat the ``[DONE]`` sentinel, else the end of the body).
Output tokens: ``usage.output_tokens`` (chat: ``usage.completion_tokens``) of the final
      event; when the server reports no usage, the number of content deltas.
Throughput: requests (and their output tokens) *completed* inside the measurement window,
      divided by the window's length. The window starts after the warm-up and lasts the
      configured duration; requests sent in it are allowed to finish after it (they count for
      latency, not for throughput), which keeps a closed-loop stage's rate steady-state.
Streamed token throughput: the output tokens whose deltas *arrived* inside the window, divided
      by its length (arrival times are ``t_send + TTFT + ITL...``; a delta carrying several
      tokens counts ``output_tokens / deltas``). When a request lasts about as long as the
      window (a slow GPU upstream: E2EL 10 s, window 15 s) "completed in the window" jumps by
      whole waves of requests; counting tokens as they arrive does not, so comparisons of two
      paths (gateway overhead) use this one.
Goodput: requests completed in the window that meet every ``--slo`` bound (each metric
      ``<=`` its bound, in milliseconds; a request without the metric, e.g. TTFT of a
      non-streamed request, does not meet it), per second of window (vLLM's
      ``--goodput ttft:MS tpot:MS e2el:MS``).
Percentiles: linear interpolation between closest ranks, exactly numpy's default
      (``numpy.percentile(..., method="linear")``, which vLLM calls): for sorted ``x`` of
      length ``n`` and ``q`` in [0, 100], position ``(n - 1) * q / 100``.

Latency percentiles are over successful requests sent inside the window. Failed requests
(transport errors, HTTP errors, streams that end without a terminal event) are counted by
kind; conformance findings (check ids from specs/checks.yaml) are counted by id.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

# Metrics an SLO may bound (vLLM's goodput accepts ttft, tpot and e2el; itl is per gap, so
# a request meets an itl bound when its slowest gap does).
SLO_METRICS = ("ttft", "tpot", "e2el", "itl")
PERCENTILES = (50, 90, 99)


@dataclass(slots=True)
class Sample:
    """One request as the load generator saw it. Times are seconds; ``t_send`` is wall-clock
    (epoch) so samples from several worker processes or machines share one time line, the
    durations are measured on a monotonic clock."""

    t_send: float
    stage: str = ""
    ok: bool = False
    status: int | None = None
    error: str | None = None  # failure kind: "transport", "http_503", "no_terminal", ...
    ttft: float | None = None
    e2el: float | None = None
    itls: list[float] = field(default_factory=list)
    output_tokens: int = 0
    deltas: int = 0
    terminal: str | None = None  # terminal event type, or "[DONE]" / "json" / None
    violations: dict[str, int] = field(default_factory=dict)  # check id -> count

    @property
    def t_done(self) -> float | None:
        return None if self.e2el is None else self.t_send + self.e2el

    @property
    def tpot(self) -> float | None:
        if self.ttft is None or self.e2el is None or self.output_tokens <= 1:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    def to_wire(self) -> list[Any]:
        """A compact, msgpack/JSON-safe form (worker -> master)."""
        return [self.t_send, self.stage, self.ok, self.status, self.error, self.ttft, self.e2el,
                self.itls, self.output_tokens, self.deltas, self.terminal, self.violations]

    @classmethod
    def from_wire(cls, row: Sequence[Any]) -> Sample:
        (t_send, stage, ok, status, error, ttft, e2el, itls, output_tokens, deltas, terminal,
         violations) = row
        return cls(t_send, stage, ok, status, error, ttft, e2el, list(itls), output_tokens,
                   deltas, terminal, dict(violations))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with numpy's default linear interpolation; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return None
    x = sorted(values)
    pos = (len(x) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(x) - 1)
    frac = pos - lo
    # numpy's formula for the linear method: x[lo] + (x[hi] - x[lo]) * frac
    return x[lo] + (x[hi] - x[lo]) * frac


def distribution(values: Sequence[float], *, scale: float = 1000.0) -> dict[str, float | int | None]:
    """n, mean, min, p50/p90/p99, max of ``values`` (seconds), reported ×``scale`` (ms)."""
    x = sorted(values)
    if not x:
        return {"n": 0, "mean": None, "min": None, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    out: dict[str, float | int | None] = {"n": len(x), "mean": sum(x) / len(x) * scale, "min": x[0] * scale}
    for p in PERCENTILES:
        out[f"p{p}"] = percentile(x, p) * scale  # type: ignore[operator]
    out["max"] = x[-1] * scale
    return out


def parse_slo(text: str) -> dict[str, float]:
    """``"ttft:200,tpot:50"`` -> ``{"ttft": 0.2, "tpot": 0.05}`` (milliseconds in, seconds out)."""
    slo: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.replace(" ", ",").split(","))):
        name, sep, value = part.partition(":")
        name = name.strip().lower()
        if not sep or name not in SLO_METRICS:
            raise ValueError(f"bad SLO {part!r}: expected METRIC:MS with METRIC one of {', '.join(SLO_METRICS)}")
        try:
            ms = float(value)
        except ValueError:
            raise ValueError(f"bad SLO {part!r}: {value!r} is not a number of milliseconds") from None
        if not ms > 0 or math.isinf(ms):
            raise ValueError(f"bad SLO {part!r}: the bound must be a positive number of milliseconds")
        slo[name] = ms / 1000.0
    if not slo:
        raise ValueError("empty SLO: expected e.g. ttft:200,tpot:50")
    return slo


def meets_slo(sample: Sample, slo: dict[str, float]) -> bool:
    if not sample.ok:
        return False
    for name, bound in slo.items():
        if name == "itl":
            value = max(sample.itls) if sample.itls else None
        else:
            value = getattr(sample, name)
        if value is None or value > bound:
            return False
    return True


@dataclass(slots=True)
class Window:
    """The measurement window of one stage, wall-clock seconds."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def tokens_arrived_in(sample: Sample, window: Window) -> float:
    """Output tokens of one streamed request whose deltas arrived inside ``window``."""
    if sample.ttft is None or not sample.deltas:
        return 0.0
    t = sample.t_send + sample.ttft
    n = 1 if window.start <= t < window.end else 0
    for gap in sample.itls:
        t += gap
        n += window.start <= t < window.end
    return n * (sample.output_tokens / sample.deltas if sample.output_tokens else 1.0)


def summarize(samples: Iterable[Sample], window: Window, *, slo: dict[str, float] | None = None,
              levels: dict[str, str] | None = None) -> dict[str, Any]:
    """The numbers of one stage. ``levels`` maps check id -> MUST/SHOULD/MAY for the
    violation table (from the check catalogue)."""
    samples = list(samples)
    sent = [s for s in samples if window.start <= s.t_send < window.end]
    ok = [s for s in sent if s.ok]
    done_in_window = [s for s in samples if s.ok and s.t_done is not None
                      and window.start <= s.t_done < window.end]
    length = window.length
    errors = Counter(s.error or "unknown" for s in sent if not s.ok)
    violations: Counter[str] = Counter()
    requests_with_violations = 0
    for s in sent:
        if s.violations:
            requests_with_violations += 1
            violations.update(s.violations)
    itls = [gap for s in ok for gap in s.itls]
    out_tokens = sum(s.output_tokens for s in done_in_window)
    arrived = sum(tokens_arrived_in(s, window) for s in samples if s.ok)
    result: dict[str, Any] = {
        "window_s": length,
        "requests": len(sent),
        "completed": len(ok),
        "failed": len(sent) - len(ok),
        "completed_in_window": len(done_in_window),
        "request_throughput": len(done_in_window) / length if length > 0 else None,
        "output_throughput": out_tokens / length if length > 0 else None,
        "streamed_output_throughput": arrived / length if length > 0 and arrived else None,
        "output_tokens_mean": (sum(s.output_tokens for s in ok) / len(ok)) if ok else None,
        "ttft_ms": distribution([s.ttft for s in ok if s.ttft is not None]),
        "tpot_ms": distribution([t for s in ok if (t := s.tpot) is not None]),
        "itl_ms": distribution(itls),
        "e2el_ms": distribution([s.e2el for s in ok if s.e2el is not None]),
        "errors": dict(sorted(errors.items())),
        "violations": {
            check: {"count": n, "level": (levels or {}).get(check)}
            for check, n in sorted(violations.items())
        },
        "requests_with_violations": requests_with_violations,
    }
    if slo:
        good = [s for s in done_in_window if meets_slo(s, slo)]
        result["slo_ms"] = {k: v * 1000.0 for k, v in slo.items()}
        result["goodput"] = len(good) / length if length > 0 else None
        result["slo_attainment"] = len(good) / len(done_in_window) if done_in_window else None
    else:
        result["goodput"] = None
    return result


# -- gateway vs direct, round by round (loadtests/overhead.py) --------------------------------
def round_ratios(row: dict, path: str) -> list:
    """Round r of ``path`` over round r of direct, run next to each other in the interleaved
    order (from the rounds' tok/s in a results.json level row): the spread a noisy upstream
    leaves in the mean ratio."""
    g = (row.get(path) or {}).get("output_tok_s_rounds") or []
    d = (row.get("direct") or {}).get("output_tok_s_rounds") or []
    return [gr / dr if dr else None for gr, dr in zip(g, d, strict=False)]


def spread(ratios: list | None) -> str:
    """min / median / max of the per-round ratios ("-" for a results.json without them)."""
    values = sorted(r for r in ratios or [] if r is not None)
    if not values:
        return "-"
    return f"{values[0]:.3f} / {statistics.median(values):.3f} / {values[-1]:.3f} ({len(values)} rounds)"
