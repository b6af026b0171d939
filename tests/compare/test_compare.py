"""`respcheck compare`: comparison.html and comparison.md from hand-built report folders.

The fixtures (compare_fixtures.py) hold three targets whose statuses cover every cell kind:
pass, fail, unsupported, skip, and a check one target never judged ("—").
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from compare_fixtures import DISAGREE, EVIL, EXPECTED_SCORES, ROWS, SCENARIOS, write_run, write_runs

from harness.faces.cli import main
from harness.report.comparison import build, score_text


class Matrix(HTMLParser):
    """The rows of every ``table.matrix``: kind (scn/chk), classes, label, cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.in_matrix = False
        self.row: dict | None = None
        self.cell: dict | None = None
        self.in_label = False
        self.scenario = None
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "table":
            self.in_matrix = "matrix" in (a.get("class") or "").split()
        elif self.in_matrix and tag == "tr":
            cls = (a.get("class") or "").split()
            if cls and cls[0] in ("scn", "chk"):
                self.row = {"kind": cls[0], "classes": set(cls), "label": "", "cells": []}
        elif self.row is not None and tag == "th":
            self.in_label = True
        elif self.row is not None and tag == "td" and "c" in (a.get("class") or "").split():
            self.cell = {"classes": set(a["class"].split()) - {"c"}, "href": None, "text": "",
                         "title": a.get("title", "")}
        elif self.cell is not None and tag == "a":
            self.cell["href"] = a.get("href")

    def handle_endtag(self, tag):
        if tag == "th":
            self.in_label = False
        elif tag == "td" and self.cell is not None:
            self.row["cells"].append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row["kind"] == "scn":
                self.scenario = self.row["label"].split()[0]
            self.row["scenario"] = self.scenario
            self.rows.append(self.row)
            self.row = None
        elif tag == "table":
            self.in_matrix = False

    def handle_data(self, data):
        if self.in_label and self.row is not None and not self.row["label"]:
            self.row["label"] = data.strip()
        elif self.cell is not None:
            self.cell["text"] += data


@pytest.fixture
def compared(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs")
    out = tmp_path / "out" / "cmp"
    code = main(["compare", *map(str, runs), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    html = (out / "comparison.html").read_text(encoding="utf-8")
    matrix = Matrix()
    matrix.feed(html)
    return {"runs": runs, "out": out, "html": html, "matrix": matrix,
            "md": (out / "comparison.md").read_text(encoding="utf-8"), "stdout": captured.out}


def test_writes_both_files(compared):
    out = compared["out"]
    assert (out / "comparison.html").is_file() and (out / "comparison.md").is_file()
    assert compared["html"].startswith("<!doctype html>")
    assert "comparison.html" in compared["stdout"]


def test_one_row_per_scenario_and_per_scenario_check(compared):
    rows = compared["matrix"].rows
    assert [r["label"] for r in rows if r["kind"] == "scn"] == list(SCENARIOS)
    checks = {(r["scenario"], r["label"]) for r in rows if r["kind"] == "chk"}
    assert checks == {(s, c) for s, c, _, _ in ROWS}
    assert all(len(r["cells"]) == 3 for r in rows)


def test_cells_show_each_targets_status(compared):
    rows = {(r["scenario"], r["label"]): r for r in compared["matrix"].rows if r["kind"] == "chk"}
    css = {"pass": "pass", "fail": "fail", "unsupported": "unsupported", "skip": "skip", None: "none"}
    for scenario, check, _, statuses in ROWS:
        cells = rows[(scenario, check)]["cells"]
        for cell, status in zip(cells, statuses):
            assert css[status] in cell["classes"], (scenario, check, status, cell)
        for cell, status in zip(cells, statuses):
            if status is None:
                assert cell["text"].strip() == "—" and cell["href"] is None


def test_every_cell_links_to_an_existing_transcript(compared):
    """Every judged cell (a skip has no exchange, "—" no result) links, relative to the output
    folder, to a transcript that exists."""
    out = compared["out"]
    linked = 0
    for row in compared["matrix"].rows:
        for cell in row["cells"]:
            if cell["classes"] & {"none", "skip"}:
                continue
            assert cell["href"], row
            assert not cell["href"].startswith(("/", "file:", "http")), cell["href"]
            target = (out / unquote(cell["href"])).resolve()
            assert target.is_file(), (row["label"], cell["href"])
            assert target.parent.name == "transcripts"
            assert target.name == f"{row['scenario'].replace('/', '__')}.jsonl"
            linked += 1
    assert linked > 20
    # Markdown: the same links, also relative and existing.
    md_links = re.findall(r"\]\(([^)]+\.jsonl)\)", compared["md"])
    assert md_links
    for href in md_links:
        assert (out / unquote(href)).resolve().is_file(), href


def test_disagreements_are_flagged(compared):
    for row in compared["matrix"].rows:
        if row["kind"] != "chk":
            continue
        key = (row["scenario"], row["label"])
        assert ("dis" in row["classes"]) == (key in DISAGREE), key
    # core/text's scenario row disagrees (vllm failed a SHOULD there, the others passed).
    scn = {r["label"]: r for r in compared["matrix"].rows if r["kind"] == "scn"}
    assert "dis" in scn["core/text"]["classes"] and "dis" not in scn["tools/parallel"]["classes"]
    assert f"{len(DISAGREE)} check rows where targets disagree" in compared["html"]
    md_dis = [line for line in compared["md"].splitlines() if line.startswith("| ≠ |")]
    assert {(m.group(1), m.group(2)) for m in (re.match(r"\| ≠ \| `([^`]+)` \| `([^`]+)`", line)
                                                  for line in md_dis) if m} == DISAGREE


def test_per_feature_scores(compared, tmp_path):
    comparison = build(compared["runs"], compared["out"])
    assert [f.name for f in comparison.features] == ["core", "streaming", "tools"]
    for feature in comparison.features:
        assert [score_text(c) for c in feature.scores] == EXPECTED_SCORES[feature.name]
    assert comparison.disagreements == len(DISAGREE)
    # The same numbers on stdout, in the HTML feature sections and in the Markdown.
    for feature, scores in EXPECTED_SCORES.items():
        line = next(line for line in compared["stdout"].splitlines() if line.startswith(feature + " "))
        for score in scores:
            assert score in line
        assert "| " + feature + " | " + " | ".join(scores) in compared["md"]
        for label, score in zip(("reference", "vllm"), scores):
            assert f"<li>{label}: {score}</li>" in compared["html"]
    assert "total" in compared["stdout"] and "7/8 pass, 1 fail" in compared["stdout"]


def test_html_escapes_hostile_text(compared):
    html, md = compared["html"], compared["md"]
    assert EVIL not in html and "<img" not in html
    assert compared["matrix"].scripts == 1  # only the page's own filter script
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html  # name, title, model, message
    assert all(not h.lower().startswith(("javascript:", "data:")) for h in compared["matrix"].hrefs)
    # Markdown: raw HTML only ever inside code spans (which render literally).
    outside_code = re.sub(r"(`+)(?:(?!\1).)*\1", "", md)
    assert "<script" not in outside_code and "<img" not in outside_code
    assert "&lt;script&gt;" in outside_code


def test_html_is_self_contained(compared):
    html = compared["html"]
    assert "<style>" in html
    assert not re.search(r'<(?:link|img|iframe)\b', html)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


def test_duplicate_target_names_are_told_apart(tmp_path, capsys):
    a = write_run(tmp_path, 1, dirname="monday")
    b = write_run(tmp_path, 1, dirname="tuesday")
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    labels = [r.label for r in build([a, b], tmp_path / "out").runs]
    assert labels == ["vllm (monday)", "vllm (tuesday)"]
    html = (tmp_path / "out" / "comparison.html").read_text(encoding="utf-8")
    assert "vllm (monday)" in html and "vllm (tuesday)" in html


def test_a_folder_without_summary_exits_2(tmp_path, capsys):
    good = write_run(tmp_path, 0)
    code = main(["compare", str(good), str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("respcheck: error: ") and "summary.json" in err
    assert not (tmp_path / "o" / "comparison.html").exists()


def test_default_output_folder(tmp_path, monkeypatch, capsys):
    runs = write_runs(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *map(str, runs)]) == 0
    capsys.readouterr()
    assert Path(tmp_path / "reports" / "compare" / "comparison.html").is_file()
    assert Path(tmp_path / "reports" / "compare" / "comparison.md").is_file()


def test_one_target_under_both_profiles_gets_a_column_per_profile(tmp_path):
    """`run --profile openai --profile openresponses`: the same target twice, told apart by
    profile in the column names (and only when the runs differ in it)."""
    import json as _json

    a = write_run(tmp_path, 0, dirname="reference@openai")
    b = write_run(tmp_path, 0, dirname="reference@openresponses")
    summary = _json.loads((b / "summary.json").read_text())
    summary["profile"] = "openresponses"
    (b / "summary.json").write_text(_json.dumps(summary))
    comparison = build([a, b], tmp_path / "out")
    assert [r.label for r in comparison.runs] == ["reference · openai",
                                                  "reference · openresponses"]
    same = build([write_run(tmp_path / "x", 0), write_run(tmp_path / "x", 1)], tmp_path / "out")
    assert [r.label for r in same.runs] == ["reference", "vllm"]


def test_a_cell_shows_the_level_its_target_judged_it_at(tmp_path):
    """A profile may raise a check (openresponses makes ``sse.done_sentinel`` MUST): the same
    row is MUST on one target and SHOULD on the other. The SHOULD failure is drawn as advisory
    and not in bold, whatever level the first target gave the row."""
    import json as _json

    from harness.report import compare_html, compare_md

    a = write_run(tmp_path, 0, dirname="strict")
    b = write_run(tmp_path, 1, dirname="lenient")
    for directory, level, status in ((a, "MUST", "pass"), (b, "SHOULD", "fail")):
        summary = _json.loads((directory / "summary.json").read_text())
        for r in summary["results"]:
            if (r["scenario"], r["check"]) == ("streaming/basic", "stream.terminal"):
                r["level"], r["status"], r["message"] = level, status, "no terminal event"
        (directory / "summary.json").write_text(_json.dumps(summary))
    comparison = build([a, b], tmp_path / "out")
    row = next(r for f in comparison.features for g in f.groups for r in g.checks
               if (r.scenario, r.check) == ("streaming/basic", "stream.terminal"))
    assert row.level == "MUST/SHOULD"
    assert [c.level for c in row.cells] == ["MUST", "SHOULD"]

    matrix = Matrix()
    matrix.feed(compare_html.render(comparison))
    cells = next(r["cells"] for r in matrix.rows
                 if (r["scenario"], r["label"]) == ("streaming/basic", "stream.terminal"))
    assert "advisory" in cells[1]["classes"] and "(SHOULD)" in cells[1]["title"]
    line = next(l for l in compare_md.render(comparison).splitlines() if "`stream.terminal`" in l)
    assert "| MUST/SHOULD |" in line and "✗ fail" in line and "**" not in line


def test_a_skipped_scenario_cell_tells_why(compared):
    """The reason lives in the skip result's message (the runner's shape); the scenario's own
    cell shows it on hover, as report.md lists it."""
    row = next(r for r in compared["matrix"].rows
               if r["kind"] == "scn" and r["label"] == "tools/parallel")
    vllm = row["cells"][1]
    assert "skip" in vllm["classes"]
    assert vllm["title"].endswith("— not selected (--only core)"), vllm["title"]
