"""harness.report: every output rendered from one summary with passes, failures at two levels,
an unsupported and a skipped scenario, and a message that tries to inject HTML."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from harness.report.console import console_table
from harness.report.outputs import write_reports

EVIL = "bad <script>alert(1)</script> & worse"
TX = "transcripts/{}.jsonl"


def result(scenario, check, level, status, message="", evidence=None, feature=None):
    return {"scenario": scenario, "check": check, "level": level,
            "feature": feature or scenario.split("/")[0], "status": status, "message": message,
            "evidence": evidence or {}, "transcript": TX.format(scenario.replace("/", "__"))}


def scenario(id_, status, error=None, transcript=True):
    return {"id": id_, "title": f"Title of {id_}", "feature": id_.split("/")[0], "status": status,
            "duration_s": 0.12, "error": error,
            "transcript": TX.format(id_.replace("/", "__")) if transcript else None}


@pytest.fixture
def summary():
    results = [
        result("streaming/text_basic", "stream.sequence.contiguous", "MUST", "fail", EVIL,
               {"frame": 3, "sequence_number": 7, "path": "$.sequence_number",
                "expected": 6, "actual": 7}),
        result("streaming/text_basic", "stream.terminal.completed", "MUST", "pass"),
        result("streaming/text_basic", "stream.obfuscation.present", "SHOULD", "fail",
               "no obfuscation field", {"frame": 1, "path": "$.obfuscation"}),
        result("streaming/text_deltas", "stream.sequence.contiguous", "MUST", "pass"),
        result("streaming/text_deltas", "stream.obfuscation.present", "SHOULD", "fail",
               "no obfuscation field", {"frame": 2}),
        result("tools/function_forced", "tools.call.arguments_json", "MUST", "pass"),
        result("tools/function_forced", "response.usage.present", "MAY", "pass", feature="response"),
        result("builtin/web_search", "errors.envelope.shape", "MUST", "unsupported",
               "400: tool type web_search not supported"),
    ]
    return {
        "tool": "respcheck", "version": "0.1.0", "profile": "openai",
        "target": {"name": "reference", "base_url": "http://127.0.0.1:8123/v1", "model": "mock-1"},
        "started_at": "2025-11-22T05:00:00+00:00", "duration_s": 12.3,
        "totals": {"pass": 4, "fail": 3, "unsupported": 1, "skip": 0},
        "results": results,
        "scenarios": [
            scenario("streaming/text_basic", "fail"),
            scenario("streaming/text_deltas", "fail"),  # SHOULD-only failure
            scenario("tools/function_forced", "pass"),
            scenario("builtin/web_search", "unsupported"),
            scenario("builtin/file_search", "skip", error="not in profile", transcript=False),
        ],
    }


@pytest.fixture
def written(summary, tmp_path):
    (tmp_path / "transcripts").mkdir()
    (tmp_path / "transcripts" / "keep.jsonl").write_text("{}\n")
    return write_reports(summary, tmp_path)


def test_writes_every_file_and_leaves_transcripts_alone(written, tmp_path):
    assert set(written) == {"summary", "junit", "markdown", "html"}
    assert all(p.parent == tmp_path and p.is_file() for p in written.values())
    assert [p.name for p in (tmp_path / "transcripts").iterdir()] == ["keep.jsonl"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_summary_json_round_trips(written, summary):
    assert json.loads(written["summary"].read_text(encoding="utf-8")) == summary


def test_junit_counts_and_levels(written):
    root = ET.parse(written["junit"]).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    counts = {n: (s.get("tests"), s.get("failures"), s.get("skipped")) for n, s in suites.items()}
    assert counts == {"streaming": ("2", "1", "0"), "tools": ("1", "0", "0"),
                      "builtin": ("2", "0", "2")}
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "1", "2")

    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["tools/function_forced"].get("classname") == "respcheck.tools"
    failure = cases["streaming/text_basic"].find("failure")
    assert "stream.sequence.contiguous" in failure.get("message")
    assert "obfuscation" not in failure.get("message")  # the SHOULD stays out of the red part
    assert EVIL in failure.text and "sequence_number" in failure.text
    assert "transcripts/streaming__text_basic.jsonl" in cases["streaming/text_basic"].find("system-out").text

    should_only = cases["streaming/text_deltas"]
    assert should_only.find("failure") is None and should_only.find("error") is None
    assert "stream.obfuscation.present" in should_only.find("system-out").text
    prop = should_only.find("properties/property")
    assert (prop.get("name"), prop.get("value")) == ("respcheck.failed.SHOULD", "stream.obfuscation.present")

    assert cases["builtin/web_search"].find("skipped").get("message").startswith("unsupported: ")
    assert cases["builtin/file_search"].find("skipped") is not None


def test_junit_survives_control_characters(summary, tmp_path):
    summary["results"][0]["message"] = "nul\x00 and esc\x1b[31m"
    ET.parse(write_reports(summary, tmp_path)["junit"])


def test_markdown_lists_failures_with_links(written):
    md = written["markdown"].read_text(encoding="utf-8")
    assert "reference" in md and "openai" in md and "12.3 s" in md
    assert "**FAIL**" in md and "2 fail" in md
    failures = md.split("## Failures", 1)[1]
    assert "`stream.sequence.contiguous`" in failures
    assert "(transcripts/streaming__text_basic.jsonl)" in failures
    assert failures.index("stream.sequence.contiguous") < failures.index("stream.obfuscation.present")
    assert "<script>" not in md


def test_html_is_escaped_and_complete(written, summary):
    page = written["html"].read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; worse" in page
    assert page.count("<script>") == 1  # only the page's own filter script
    for s in summary["scenarios"]:
        assert s["id"] in page
        if s["transcript"]:
            assert f'href="{s["transcript"]}"' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the network
    assert page.count("<details") == 3 and "FAIL" in page


def test_console_orders_failures_and_ends_with_verdict(summary):
    text = console_table(summary, color=False)
    assert "\x1b" not in text
    lines = text.splitlines()
    fails = [l for l in lines if l.startswith("FAIL ")]
    assert [l.split()[1] for l in fails] == ["MUST", "SHOULD", "SHOULD"]
    assert "frame 3 seq 7 $.sequence_number: " + EVIL in fails[0]
    # the verdict names the failed check, where, and its message (escaped by the reports)
    assert lines[-1] == ("FAIL: 1 MUST check failed: stream.sequence.contiguous "
                         f"(streaming/text_basic: {EVIL})")
    assert "\x1b[" in console_table(summary, color=True)


def test_console_passes_without_must_failures(summary):
    summary["results"] = [r for r in summary["results"] if r["level"] != "MUST" or r["status"] != "fail"]
    assert console_table(summary, color=False).splitlines()[-1] == "PASS: no MUST check failed"
    summary["results"].append(dict(summary["results"][0], check="x.y", status="fail", message="esc\x1b[2J"))
    summary["results"].append(dict(summary["results"][0], check="x.z", status="fail"))
    text = console_table(summary, color=False)
    # a tie: the first to fail is named; the server's escape is shown, never sent to the terminal
    assert "\x1b" not in text and text.splitlines()[-1] == (
        "FAIL: 2 MUST checks failed; most common: x.y (1 of 2; first streaming/text_basic: "
        "esc\\x1b[2J)")
    for scenario in ("errors/other", "errors/third"):  # a long message is cut to one line
        summary["results"].append(dict(summary["results"][0], check="x.w", status="fail",
                                       scenario=scenario, message="m" * 300))
    line = console_table(summary, color=False).splitlines()[-1]
    assert line == ("FAIL: 4 MUST checks failed; most common: x.w (2 of 4; first "
                    f"errors/other: {'m' * 97}...)"), line


def test_summary_without_scenarios_list_is_derived(summary, tmp_path):
    del summary["scenarios"]
    paths = write_reports(summary, tmp_path)
    root = ET.parse(paths["junit"]).getroot()
    assert {c.get("name") for c in root.iter("testcase")} == {
        "streaming/text_basic", "streaming/text_deltas", "tools/function_forced", "builtin/web_search"}
    assert "streaming/text_basic" in console_table(summary, color=False)


def test_scenario_that_broke_without_a_failed_check(summary, tmp_path):
    summary["scenarios"].append(dict(scenario("tools/parallel", "fail"), error="deadline 30 s exceeded"))
    paths = write_reports(summary, tmp_path)
    suite = next(s for s in ET.parse(paths["junit"]).getroot() if s.get("name") == "tools")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "1")
    assert "deadline 30 s exceeded" in paths["markdown"].read_text(encoding="utf-8")
    assert "deadline 30 s exceeded" in paths["html"].read_text(encoding="utf-8")
    assert any(l.startswith("ERROR") and "tools/parallel" in l
               for l in console_table(summary, color=False).splitlines())


@pytest.fixture
def lowered(summary):
    """``errors.status`` judged at two levels, as the runner writes it: SHOULD where the scenario
    lowers its own expectation (errors/metadata_too_many_keys, ``level: SHOULD``), MUST elsewhere.
    The SHOULD failure comes first in run order, so a renderer that takes a check's level from
    one result, or from the catalogue, shows it under MUST."""
    summary["results"] = [
        result("errors/metadata_too_many_keys", "errors.status", "SHOULD", "fail",
               "expected HTTP 400, got 200"),
        result("errors/missing_model", "errors.status", "MUST", "pass"),
        result("errors/unknown_field", "errors.status", "MUST", "pass"),
    ]
    summary["scenarios"] = [scenario("errors/metadata_too_many_keys", "fail"),
                            scenario("errors/missing_model", "pass"),
                            scenario("errors/unknown_field", "pass")]
    summary["totals"] = {"pass": 2, "fail": 1, "unsupported": 0, "skip": 0}
    return summary


def test_markdown_counts_each_check_at_the_level_it_was_judged(lowered, tmp_path):
    md = write_reports(lowered, tmp_path)["markdown"].read_text(encoding="utf-8")
    rows = [line for line in md.splitlines() if line.startswith("| `errors.status`")]
    assert rows == ["| `errors.status` | MUST | 2 | 0 | 0 | 0 |",
                    "| `errors.status` | SHOULD | 0 | **1** | 0 | 0 |"]
    assert "**PASS**" in md
    assert "- **SHOULD** `errors.status` in `errors/metadata_too_many_keys`" in md


def test_html_draws_a_lowered_failure_as_advisory(lowered, tmp_path):
    page = write_reports(lowered, tmp_path)["html"].read_text(encoding="utf-8")
    cells = re.findall(r'<td class="c ([^"]*)" title="([^"]*)">', page)
    assert ("fail advisory", "errors.status (SHOULD): fail") in cells
    assert ("pass", "errors.status (MUST): pass") in cells
    assert 'title="errors.status (MUST/SHOULD)"' in page
    assert '<details class="finding SHOULD"' in page and "finding MUST" not in page


def test_junit_and_console_use_the_results_level(lowered, tmp_path):
    root = ET.parse(write_reports(lowered, tmp_path)["junit"]).getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "errors/metadata_too_many_keys")
    assert case.find("failure") is None
    assert case.find("properties/property").get("name") == "respcheck.failed.SHOULD"
    lines = console_table(lowered, color=False).splitlines()
    assert [l.split()[:2] for l in lines if l.startswith("FAIL ")] == [["FAIL", "SHOULD"]]
    assert lines[-1] == "PASS: no MUST check failed"


@pytest.fixture
def skipped(summary):
    """Skips as the runner writes them: the scenario's ``error`` is None and the reason is the
    message of its one ``response.accepted`` result with status skip."""
    reasons = {"state/continuation_context": "runs only against reference",
               "mcp/list_tools": "hosted MCP tools are not part of the Open Responses specification",
               **{f"errors/case_{i}": "not selected (--only core)" for i in range(5)}}
    for sid, why in reasons.items():
        summary["results"].append(result(sid, "response.accepted", "MUST", "skip", why))
        summary["scenarios"].append(scenario(sid, "skip", transcript=False))
    return summary, reasons


def test_every_output_prints_why_a_scenario_was_skipped(skipped, tmp_path):
    summary, reasons = skipped
    paths = write_reports(summary, tmp_path)
    md = paths["markdown"].read_text(encoding="utf-8")
    for sid, why in reasons.items():
        assert f"- skip `{sid}`: {why}" in md, sid
    page = paths["html"].read_text(encoding="utf-8")
    assert '<p class="reason">reason: runs only against reference</p>' in page
    cases = {c.get("name"): c for c in ET.parse(paths["junit"]).getroot().iter("testcase")}
    assert cases["mcp/list_tools"].find("skipped").get("message") == "skip: " + reasons["mcp/list_tools"]

    lines = console_table(summary, color=False).splitlines()
    skips = [l for l in lines if l.startswith("skip ")]
    assert skips == ["skip  builtin/file_search: not in profile",
                     "skip  state/continuation_context: runs only against reference",
                     "skip  mcp/list_tools: " + reasons["mcp/list_tools"],
                     "skip  5 scenarios: not selected (--only core)"]
    assert lines.index(skips[0]) < next(i for i, l in enumerate(lines) if l.startswith("FAIL "))
