"""What a load run leaves behind: ``results.json``, ``samples.csv``, ``report.html`` (one
self-contained page, plots embedded as base64 PNG), and the console table.

matplotlib is optional: without it the page has the tables and no plots.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any, TextIO

from loadtests.metrics import PERCENTILES, Sample

METRICS = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2el_ms", "E2EL"))
CSV_FIELDS = ("stage", "t_send", "ok", "status", "error", "ttft_ms", "tpot_ms", "e2el_ms",
              "output_tokens", "deltas", "terminal", "violations", "itls_ms")


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v * 1000.0:.3f}"


def write_samples_csv(samples: list[Sample], path: Path) -> None:
    t0 = min((s.t_send for s in samples), default=0.0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for s in samples:
            w.writerow([s.stage, f"{s.t_send - t0:.6f}", int(s.ok), s.status or "", s.error or "",
                        _ms(s.ttft), _ms(s.tpot), _ms(s.e2el), s.output_tokens, s.deltas,
                        s.terminal or "", ";".join(f"{k}={v}" for k, v in sorted(s.violations.items())),
                        " ".join(f"{g * 1000.0:.3f}" for g in s.itls)])


def write_reports(results: dict[str, Any], samples: list[Sample], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    write_samples_csv(samples, out / "samples.csv")
    (out / "report.html").write_text(render_html(results, samples))


def exit_status(results: dict[str, Any]) -> int:
    """1 when a request failed or a MUST check was violated, else 0 (DESIGN's contract)."""
    for st in results["stages"]:
        if st["failed"] or any(v.get("level") == "MUST" for v in st["violations"].values()):
            return 1
    return 0


def _f(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def table_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    for st in results["stages"]:
        what = (f"rate {st['rate']}/s, users <= {st['users']}" if st.get("rate") else f"{st['users']} users")
        good = "" if st.get("goodput") is None else f", goodput {st['goodput']:.2f} req/s"
        lines.append(f"stage {st['label']} ({what}, window {st['window_s']:.1f} s): "
                     f"{st['requests']} requests, {st['failed']} failed, "
                     f"{_f(st['request_throughput'], 2)} req/s, {_f(st['output_throughput'], 1)} output tok/s{good}")
        lines.append(f"  {'ms':<6}" + "".join(f"{h:>10}" for h in ("mean", "p50", "p90", "p99", "max", "n")))
        for key, name in METRICS:
            d = st[key]
            lines.append(f"  {name:<6}" + "".join(f"{_f(d[k], 2):>10}" for k in ("mean", "p50", "p90", "p99", "max"))
                         + f"{d['n']:>10}")
        if st["errors"]:
            lines.append("  errors: " + ", ".join(f"{k} x{v}" for k, v in st["errors"].items()))
        if st["violations"]:
            lines.append("  conformance violations: " + ", ".join(
                f"{k} ({v.get('level') or '?'}) x{v['count']}" for k, v in st["violations"].items()))
        else:
            lines.append("  conformance violations: none")
    return lines


def print_table(results: dict[str, Any], *, file: TextIO = sys.stdout) -> None:
    for line in table_lines(results):
        print(line, file=file)


# -- plots -------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display), or None when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def readable_log_ticks(ax, which: str) -> None:
    """Tick labels on a log axis that never run into each other, written as plain numbers.

    matplotlib's default labels minor ticks when the data spans less than a decade or so
    (``2×10²  3×10²  4×10²`` side by side, overlapping on a 4-inch axis). Instead: under one
    decade a few linear-nice ticks (40, 60, 80); up to two decades 1-2-5 per decade; wider,
    one label per decade. Minor ticks keep their marks and lose their labels. Call it after the
    data is plotted: it reads the axis's limits."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    span = hi / lo if lo > 0 else float("inf")
    if span < 10:
        axis.set_major_locator(MaxNLocator(nbins=4))
    elif span <= 100:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    else:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def latency_cdf_figure(results: dict[str, Any], samples: list[Sample]):
    """TTFT, ITL and E2EL as CDFs, one line per stage, over requests sent in each stage's
    measurement window; log x axes."""
    plt = _pyplot()
    by_stage: dict[str, list[Sample]] = {}
    for s in samples:
        by_stage.setdefault(s.stage, []).append(s)
    windows = {st["label"]: st["window"] for st in results["stages"]}

    def in_window(s: Sample) -> bool:
        w = windows.get(s.stage)
        return s.ok and (w is None or w[0] <= s.t_send < w[1])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for label, group in by_stage.items():
        ok = [s for s in group if in_window(s)]
        for ax, values in zip(axes, ([s.ttft for s in ok if s.ttft is not None],
                                     [g for s in ok for g in s.itls],
                                     [s.e2el for s in ok if s.e2el is not None])):
            if values:
                x = sorted(v * 1000.0 for v in values)
                ax.plot(x, [(i + 1) / len(x) for i in range(len(x))], label=label)
    for ax, name in zip(axes, ("TTFT", "ITL", "E2EL")):
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of samples")
        ax.set_xscale("log")
        if ax.lines:
            readable_log_ticks(ax, "x")
            ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Latency distributions (CDF), per stage")
    return fig


def sweep_figure(results: dict[str, Any]):
    """Throughput (output tokens/s on the left axis, requests/s on the right, one legend for
    both) and latency percentiles against the swept concurrency or rate; None for one stage.
    Constrained layout keeps the right axis's label clear of its ticks and of the next chart."""
    stages = results["stages"]
    if len(stages) < 2:
        return None
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
    xs = [st["rate"] or st["users"] for st in stages]
    xlabel = "arrival rate (req/s)" if stages[0].get("rate") else "concurrent users"
    tokens, = a1.plot(xs, [st["output_throughput"] or 0 for st in stages], "o-", color="tab:blue",
                      label="output tokens/s (left axis)")
    a1b = a1.twinx()
    requests, = a1b.plot(xs, [st["request_throughput"] or 0 for st in stages], "s--",
                         color="tab:orange", label="requests/s (right axis)")
    a1.set_xlabel(xlabel)
    a1.set_ylabel("output tokens/s", color="tab:blue")
    a1b.set_ylabel("requests/s", color="tab:orange")
    a1.set_title("Throughput")
    a1.legend(handles=[tokens, requests], fontsize=8, loc="best")
    for key, name in (("ttft_ms", "TTFT"), ("itl_ms", "ITL")):
        for p, style in (("p50", "o-"), ("p99", "^--")):
            a2.plot(xs, [st[key][p] or 0 for st in stages], style, label=f"{name} {p}")
    a2.set_xlabel(xlabel)
    a2.set_ylabel("ms")
    a2.set_yscale("log")
    readable_log_ticks(a2, "y")
    a2.set_title("Latency")
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.grid(True, alpha=0.3)
        if len(set(xs)) > 2 and min(xs) > 0:
            ax.set_xscale("log")
        # ticks at the swept values themselves (1, 8, 64, 256), nothing in between labelled
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
    return fig


def ttft_over_time_figure(samples: list[Sample]):
    """Every request's TTFT against its send time, per stage; failed requests as red x."""
    plt = _pyplot()
    by_stage: dict[str, list[Sample]] = {}
    for s in samples:
        by_stage.setdefault(s.stage, []).append(s)
    fig, ax = plt.subplots(figsize=(12, 3.5), layout="constrained")
    t0 = min((s.t_send for s in samples), default=0.0)
    for label, group in by_stage.items():
        pts = [(s.t_send - t0, s.ttft * 1000.0) for s in group if s.ok and s.ttft is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=4, label=label)
        bad = [s.t_send - t0 for s in group if not s.ok]
        if bad:
            ax.scatter(bad, [1.0] * len(bad), marker="x", color="red", s=12)
    ax.set_xlabel("send time (s)")
    ax.set_ylabel("TTFT (ms)")
    ax.set_yscale("log")
    if ax.collections:
        readable_log_ticks(ax, "y")
        ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.set_title("TTFT over time (red x: failed requests)")
    return fig


def plots(results: dict[str, Any], samples: list[Sample]) -> list[tuple[str, str]]:
    """[(title, base64 png)]; empty without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return []
    figures = [("Latency distributions", latency_cdf_figure(results, samples)),
               ("Sweep", sweep_figure(results)),
               ("TTFT over time", ttft_over_time_figure(samples))]
    out = []
    for title, fig in figures:
        if fig is not None:
            out.append((title, _png(fig)))
            plt.close(fig)
    return out


def _seconds(v: Any) -> str:
    return f"{float(v):g} s" if v is not None else "?"


def run_description(results: dict[str, Any]) -> str:
    """What was run, in words a person reads (the report's first paragraph): no Python values,
    an unset option says what that means (``max output tokens None`` is "output length left
    to the server")."""
    cfg = results["config"]
    wl = cfg.get("workload", {})
    out_tokens = wl.get("output_tokens")
    length = (f"at most {out_tokens} output tokens" if out_tokens is not None
              else "output length left to the server (no token limit sent)")
    check = wl.get("check") or "full"
    judged = ("SSE framing" if wl.get("api") == "chat" else  # observe.py: chat has no Responses grammar
              "framing and grammar, no schemas" if check == "grammar" else "framing, grammar and schemas")
    checks = ("conformance not checked" if check == "off" else
              f"each answer checked for conformance ({judged}; profile {wl.get('profile') or 'openai'})")
    workers, external = cfg.get("workers") or 0, cfg.get("external_workers") or 0
    if workers or external:
        load_from = f"{workers + external} locust worker process{'es' if workers + external != 1 else ''}" + (
            f" ({external} on other machines)" if external else "")
    else:
        load_from = "one process (no locust workers)"
    machine = results.get("machine") or {}
    where = ", ".join(x for x in (machine.get("cpu"), f"{machine['cpus']} CPUs" if machine.get("cpus") else "") if x)
    return (f"Target {cfg.get('base_url') or '?'}, {wl.get('api', 'responses')} API, model "
            f"{wl.get('model') or 'the first one the target lists'}, about {wl.get('input_tokens', '?')} input tokens, "
            f"{length}, {'streamed' if wl.get('stream', True) else 'not streamed'}, {checks}. "
            f"Warm-up {_seconds(cfg.get('warmup_s'))} and a measurement window of {_seconds(cfg.get('duration_s'))} "
            f"per stage; load generated by {load_from}."
            + (f" Machine: {where}." if where else ""))


def render_html(results: dict[str, Any], samples: list[Sample]) -> str:
    e = html.escape
    cfg = results["config"]
    rows = []
    for st in results["stages"]:
        cells = [st["label"], st["users"], st.get("rate") or "-", st["requests"], st["failed"],
                 _f(st["request_throughput"], 2), _f(st["output_throughput"], 1),
                 _f(st.get("goodput"), 2)]
        for key, _ in METRICS:
            d = st[key]
            cells += [_f(d["p50"], 2), _f(d["p90"], 2), _f(d["p99"], 2), _f(d["max"], 2)]
        nviol = sum(v["count"] for v in st["violations"].values())
        cells.append(nviol)
        rows.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells) + "</tr>")
    head = ["stage", "users", "rate", "requests", "failed", "req/s", "out tok/s", "goodput"]
    for _, name in METRICS:
        head += [f"{name} p{p}" for p in PERCENTILES] + [f"{name} max"]
    head.append("violations")
    viol_rows = []
    for st in results["stages"]:
        for check, v in st["violations"].items():
            viol_rows.append(f"<tr><td>{e(st['label'])}</td><td>{e(check)}</td><td>{e(v.get('level') or '?')}</td>"
                             f"<td>{v['count']}</td></tr>")
        for kind, n in st["errors"].items():
            viol_rows.append(f"<tr><td>{e(st['label'])}</td><td>error: {e(kind)}</td><td></td><td>{n}</td></tr>")
    figs = "".join(f"<h2>{e(t)}</h2><img alt='{e(t)}' src='data:image/png;base64,{b}'>" for t, b in plots(results, samples))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>respcheck load report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f3f3f3}}img{{max-width:100%}}
code{{background:#f3f3f3;padding:1px 3px}}</style></head><body>
<h1>Load test: {e(str(cfg.get('target_name') or cfg.get('base_url')))}</h1>
<p>{e(run_description(results))}</p>
<p>Times in milliseconds. Definitions (vLLM's benchmark_serving): TTFT send to first content delta; TPOT
(E2EL - TTFT)/(output tokens - 1); ITL every gap between consecutive content deltas, pooled; E2EL send to
terminal event. Exact percentiles (linear interpolation) of requests sent in the window; throughput counts
requests completed in the window.</p>
<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{''.join(rows)}</table>
<h2>Conformance violations and errors</h2>
{('<table><tr><th>stage</th><th>check / error</th><th>level</th><th>count</th></tr>' + ''.join(viol_rows) + '</table>') if viol_rows else '<p>None.</p>'}
{figs}
</body></html>
"""


def machine_info() -> dict[str, Any]:
    import platform

    info = {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "host": socket.gethostname()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def write_benchmark_md(path: Path, md: str) -> None:
    """Write ``md``, keeping the hand-written '## Reading' section of the existing file."""
    reading = ""
    if path.exists():
        m = re.search(r"^## Reading.*", path.read_text(), re.S | re.M)
        reading = m.group(0) if m else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(md + ("\n" + reading if reading else ""))
