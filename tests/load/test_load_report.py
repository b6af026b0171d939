"""loadtests/report.py: the load report reads as a person writes, and its plots are legible.

The header is checked as text (no Python ``None``/``True``/``False``, every unset option said in
words). The plots are checked on matplotlib's own objects after drawing: no two tick labels of
a log axis overlap (matplotlib's default labels minor ticks as ``2×10²  3×10²`` side by side
when the data spans less than a decade), the throughput chart's two lines have one legend, and
its right-hand axis label covers neither its own tick labels nor the next chart's.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest

from loadtests.metrics import Sample
from loadtests.report import latency_cdf_figure, render_html, run_description, sweep_figure

plt = pytest.importorskip("matplotlib.pyplot")

PYTHON_WORDS = re.compile(r"\b(None|True|False)\b")


def stage(label, users, *, ttft=(5.0, 30.0), itl=(0.02, 0.2), tok_s=1000.0, req_s=40.0):
    dist = lambda p50, p99: {"n": 10, "mean": p50, "min": p50, "p50": p50, "p90": p99, "p99": p99,
                             "max": p99}
    return {"label": label, "users": users, "rate": None, "window": None, "window_s": 3.0,
            "requests": 10, "failed": 0, "request_throughput": req_s, "output_throughput": tok_s,
            "goodput": None, "ttft_ms": dist(*ttft), "tpot_ms": dist(0.1, 1.0),
            "itl_ms": dist(*itl), "e2el_ms": dist(ttft[0] * 2, ttft[1] * 2),
            "errors": {}, "violations": {}}


def results(*stages, **workload):
    return {"config": {"base_url": "http://127.0.0.1:8000/v1", "target_name": "reference",
                       "workload": {"api": "responses", "model": "mock-1", "input_tokens": 32,
                                    "output_tokens": None, "stream": True, "check": "full",
                                    "profile": "openai", **workload},
                       "stages": [], "warmup_s": 1.0, "duration_s": 3.0, "workers": 0,
                       "external_workers": 0, "slo": None},
            "machine": {"cpu": "AMD EPYC", "cpus": 2}, "stages": list(stages)}


def samples(label, lo_ms, hi_ms, n=200, seed=1):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ttft = rng.uniform(lo_ms, hi_ms) / 1000.0
        out.append(Sample(t_send=float(i), stage=label, ok=True, ttft=ttft, e2el=ttft * 1.5,
                          itls=[ttft / 20] * 3, output_tokens=4))
    return out


def test_header_says_unset_options_in_words():
    text = run_description(results(stage("c=1", 1)))
    assert not PYTHON_WORDS.search(text), text
    assert "output length left to the server (no token limit sent)" in text
    assert ", streamed," in text and "framing, grammar and schemas; profile openai" in text
    assert "Warm-up 1 s and a measurement window of 3 s per stage" in text
    assert "one process (no locust workers)" in text and "2 CPUs" in text

    other = run_description(results(stage("c=1", 1), output_tokens=128, stream=False, check="off"))
    assert not PYTHON_WORDS.search(other), other
    assert "at most 128 output tokens" in other and "not streamed" in other
    assert "conformance not checked" in other


def test_report_page_prints_no_python_values():
    r = results(stage("c=1", 1), stage("c=4", 4))
    r["stages"][0]["violations"] = {"stream.sequence.contiguous": {"count": 2}}  # no level known
    page = render_html(r, samples("c=1", 5, 40) + samples("c=4", 20, 90))
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert not PYTHON_WORDS.search(text), PYTHON_WORDS.search(text)


def _boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in texts
            if t.get_visible() and t.get_text()]


def _tick_labels(ax, which):
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    inside = [t for t in axis.get_majorticklabels() + axis.get_minorticklabels()
              if lo <= t.get_position()[0 if which == "x" else 1] <= hi]
    return _boxes(ax.figure, inside)


def _overlapping(boxes):
    return [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2) if ba.overlaps(bb)]


# Spans on which matplotlib's default labels collide (found by drawing them): under a decade,
# and a decade or two where it labels 2, 3, 4 and 6 of each.
@pytest.mark.parametrize("lo_ms, hi_ms", [(150, 225), (20, 600), (200, 6000), (40, 90), (0.5, 9000)])
def test_cdf_log_axes_have_no_overlapping_tick_labels(lo_ms, hi_ms):
    label = "c=1"
    fig = latency_cdf_figure(results(stage(label, 1)), samples(label, lo_ms, hi_ms))
    try:
        fig.canvas.draw()
        for ax, name in zip(fig.axes, ("TTFT", "ITL", "E2EL")):
            labels = _tick_labels(ax, "x")
            assert len(labels) >= 2, (name, labels)  # still readable: at least two values
            assert not _overlapping(labels), (name, _overlapping(labels))
    finally:
        plt.close(fig)


def test_sweep_throughput_has_a_legend_and_clear_axis_labels():
    fig = sweep_figure(results(stage("c=1", 1, ttft=(5.2, 33.0), itl=(0.015, 0.18), tok_s=2056, req_s=85.7),
                               stage("c=8", 8, ttft=(52.0, 540.0), itl=(0.015, 3.6), tok_s=920, req_s=38.4),
                               stage("c=64", 64, ttft=(270.0, 520.0), itl=(0.015, 11.0), tok_s=1150,
                                     req_s=48.0)))
    try:
        fig.canvas.draw()
        throughput, latency, right = fig.axes  # twinx() adds the right-hand axis last
        assert throughput.get_title() == "Throughput" and latency.get_title() == "Latency"
        legend = throughput.get_legend()
        assert legend is not None
        assert [t.get_text() for t in legend.get_texts()] == ["output tokens/s (left axis)",
                                                              "requests/s (right axis)"]
        label = _boxes(fig, [right.yaxis.label])
        neighbours = (_tick_labels(right, "y") + _tick_labels(latency, "y")
                      + _boxes(fig, [latency.yaxis.label]))
        assert label and not [text for text, box in neighbours if label[0][1].overlaps(box)]
        assert [t.get_text() for t in throughput.get_xticklabels() if t.get_text()] == ["1", "8", "64"]
    finally:
        plt.close(fig)


def test_one_stage_has_no_sweep_chart():
    assert sweep_figure(results(stage("c=1", 1))) is None
