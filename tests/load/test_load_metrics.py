"""Metric math on synthetic timings whose answers are known (loadtests/metrics.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from loadtests.metrics import Sample, Window, distribution, meets_slo, parse_slo, percentile, summarize


@pytest.mark.parametrize("q", [0, 1, 10, 25, 50, 75, 90, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(q):
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101, 1000):
        values = [rng.expovariate(1.0) for _ in range(n)]
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-15)


def test_percentile_known_values():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50], 90) == 46.0  # pos 3.6: 40 + 0.6 * 10
    assert percentile([5], 99) == 5
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def _sample(t_send, ttft, itls, tokens, *, ok=True, error=None, stage="s"):
    e2el = ttft + sum(itls) if ttft is not None else 0.5
    return Sample(t_send=t_send, stage=stage, ok=ok, status=200, error=error, ttft=ttft, e2el=e2el,
                  itls=list(itls), output_tokens=tokens, deltas=len(itls) + 1)


def test_tpot_definition():
    s = _sample(0.0, 0.100, [0.010] * 9, 10)  # e2el 0.19
    assert s.tpot == pytest.approx((0.19 - 0.1) / 9)
    assert _sample(0.0, 0.1, [], 1).tpot is None  # one token: undefined, as in vLLM


def test_summarize_window_throughput_itl_pooling_and_goodput():
    # Window [10, 20): 10 s. Requests sent at 9 (warm-up), 10..19 (in), 20 (after).
    samples = [_sample(9.0, 0.1, [0.01] * 3, 4)]
    for i in range(10):
        ttft = 0.05 if i < 5 else 0.5  # half meet ttft <= 100 ms
        samples.append(_sample(10.0 + i, ttft, [0.02, 0.04], 3))
    samples.append(_sample(20.0, 0.1, [0.01], 2))
    samples.append(_sample(12.5, None, [], 0, ok=False, error="http_503"))
    samples[-1].e2el = 0.01
    samples.append(_sample(19.9, 0.2, [0.02, 0.04], 3))  # sent in, finishes at 20.16: after
    samples[-1].violations = {"stream.sequence.contiguous": 2}
    out = summarize(samples, Window(10.0, 20.0), slo=parse_slo("ttft:100"),
                    levels={"stream.sequence.contiguous": "MUST"})
    assert out["requests"] == 12  # the 10, the failed one, the late one
    assert out["completed"] == 11 and out["failed"] == 1
    assert out["errors"] == {"http_503": 1}
    # completed inside the window: the 10 (the one sent at 9 ends at 9.13, outside)
    assert out["completed_in_window"] == 10
    assert out["request_throughput"] == pytest.approx(1.0)
    assert out["output_throughput"] == pytest.approx(3.0)
    assert out["goodput"] == pytest.approx(0.5)
    assert out["slo_attainment"] == pytest.approx(0.5)
    # ITL pooled over the 11 successful in-window requests: 11 x [20, 40] ms
    assert out["itl_ms"]["n"] == 22
    assert out["itl_ms"]["p50"] == pytest.approx(30.0)
    assert out["itl_ms"]["max"] == pytest.approx(40.0)
    ttfts = [50.0] * 5 + [500.0] * 5 + [200.0]
    assert out["ttft_ms"]["p50"] == pytest.approx(float(np.percentile(ttfts, 50)))
    assert out["ttft_ms"]["p90"] == pytest.approx(float(np.percentile(ttfts, 90)))
    # TPOT of a 3-token request with gaps 20+40 ms: 60 ms / 2
    assert out["tpot_ms"]["p50"] == pytest.approx(30.0)
    assert out["violations"] == {"stream.sequence.contiguous": {"count": 2, "level": "MUST"}}
    assert out["requests_with_violations"] == 1


def test_distribution_scales_to_ms():
    d = distribution([0.001, 0.002, 0.003])
    assert d == {"n": 3, "mean": pytest.approx(2.0), "min": pytest.approx(1.0), "p50": pytest.approx(2.0),
                 "p90": pytest.approx(2.8), "p99": pytest.approx(2.98), "max": pytest.approx(3.0)}


def test_slo_parsing_and_meeting():
    assert parse_slo("ttft:200,tpot:50") == {"ttft": 0.2, "tpot": 0.05}
    for bad in ("ttft", "foo:3", "ttft:-1", "ttft:abc", ""):
        with pytest.raises(ValueError):
            parse_slo(bad)
    s = _sample(0.0, 0.1, [0.01, 0.03], 3)
    assert meets_slo(s, {"ttft": 0.1, "itl": 0.03})
    assert not meets_slo(s, {"itl": 0.02})
    assert not meets_slo(Sample(t_send=0, ok=True, e2el=1.0), {"ttft": 1.0})  # no TTFT: not met


def test_sample_wire_round_trip():
    s = _sample(1.5, 0.1, [0.01], 2)
    s.violations = {"sse.utf8": 1}
    assert Sample.from_wire(s.to_wire()) == s


def test_streamed_throughput_counts_tokens_as_they_arrive_in_the_window():
    """A request sent before the window whose deltas straddle it counts only the tokens that
    arrived inside; one that completes after the window still counts its in-window tokens."""
    from loadtests.metrics import Sample, Window, summarize, tokens_arrived_in

    window = Window(10.0, 20.0)
    # deltas at 9.5, 10.5, 11.5, ..., 20.5 (12 deltas, 1 token each)
    early = Sample(t_send=9.0, ok=True, ttft=0.5, e2el=11.5, itls=[1.0] * 11,
                   output_tokens=12, deltas=12)
    assert tokens_arrived_in(early, window) == 10
    # two tokens per delta: deltas at 19.0 and 21.0 -> one in the window = 2 tokens
    chunky = Sample(t_send=18.0, ok=True, ttft=1.0, e2el=3.0, itls=[2.0],
                    output_tokens=4, deltas=2)
    assert tokens_arrived_in(chunky, window) == 2
    stage = summarize([early, chunky], window)
    assert stage["streamed_output_throughput"] == 1.2
    # neither completed inside the window: completion-based throughput sees nothing
    assert stage["output_throughput"] == 0
