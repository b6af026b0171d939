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


def plots(results: dict[str, Any], samples: list[Sample]) -> list[tuple[str, str]]:
    """[(title, base64 png)]; empty without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out = []
    by_stage: dict[str, list[Sample]] = {}
    for s in samples:
        by_stage.setdefault(s.stage, []).append(s)
    windows = {st["label"]: st["window"] for st in results["stages"]}

    def in_window(s: Sample) -> bool:
        w = windows.get(s.stage)
        return s.ok and (w is None or w[0] <= s.t_send < w[1])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
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
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Latency distributions (CDF), per stage")
    out.append(("Latency distributions", _png(fig)))
    plt.close(fig)

    stages = results["stages"]
    if len(stages) > 1:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
        xs = [st["rate"] or st["users"] for st in stages]
        xlabel = "arrival rate (req/s)" if stages[0].get("rate") else "concurrent users"
        a1.plot(xs, [st["output_throughput"] or 0 for st in stages], "o-", label="output tok/s")
        a1b = a1.twinx()
        a1b.plot(xs, [st["request_throughput"] or 0 for st in stages], "s--", color="tab:orange", label="req/s")
        a1.set_xlabel(xlabel)
        a1.set_ylabel("output tokens/s")
        a1b.set_ylabel("requests/s")
        a1.set_title("Throughput")
        for key, name in (("ttft_ms", "TTFT"), ("itl_ms", "ITL")):
            for p, style in (("p50", "o-"), ("p99", "^--")):
                a2.plot(xs, [st[key][p] or 0 for st in stages], style, label=f"{name} {p}")
        a2.set_xlabel(xlabel)
        a2.set_ylabel("ms")
        a2.set_yscale("log")
        a2.set_title("Latency")
        a2.legend(fontsize=8)
        for ax in (a1, a2):
            ax.grid(True, alpha=0.3)
            if len(set(xs)) > 2 and min(xs) > 0:
                ax.set_xscale("log")
        out.append(("Sweep", _png(fig)))
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 3.5))
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
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("TTFT over time (red x: failed requests)")
    out.append(("TTFT over time", _png(fig)))
    plt.close(fig)
    return out


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
            viol_rows.append(f"<tr><td>{e(st['label'])}</td><td>{e(check)}</td><td>{e(str(v.get('level')))}</td>"
                             f"<td>{v['count']}</td></tr>")
        for kind, n in st["errors"].items():
            viol_rows.append(f"<tr><td>{e(st['label'])}</td><td>error: {e(kind)}</td><td></td><td>{n}</td></tr>")
    figs = "".join(f"<h2>{e(t)}</h2><img alt='{e(t)}' src='data:image/png;base64,{b}'>" for t, b in plots(results, samples))
    wl = cfg.get("workload", {})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>respcheck load report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}th{{background:#f3f3f3}}img{{max-width:100%}}
code{{background:#f3f3f3;padding:1px 3px}}</style></head><body>
<h1>Load test: {e(str(cfg.get('target_name') or cfg.get('base_url')))}</h1>
<p>Target <code>{e(str(cfg.get('base_url')))}</code>, API <code>{e(str(wl.get('api')))}</code>, model
<code>{e(str(wl.get('model')))}</code>, ~{e(str(wl.get('input_tokens')))} input tokens, max output tokens
{e(str(wl.get('output_tokens')))}, stream {e(str(wl.get('stream')))}, conformance checks <code>{e(str(wl.get('check')))}</code>
(profile {e(str(wl.get('profile')))}). Warm-up {cfg.get('warmup_s')} s, window {cfg.get('duration_s')} s per stage,
{cfg.get('workers') or 0} worker process(es). Machine: {e(str(results.get('machine', {}).get('cpu', '')))},
{e(str(results.get('machine', {}).get('cpus', '')))} CPUs.</p>
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
