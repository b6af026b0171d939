"""harness/report/clients_table.py: the clients' verdict and tables, right and hostile input."""

from __future__ import annotations

from harness.report import clients_table

EVIL = '<script>alert(1)</script> | "quoted"'


def entry(client, status, steps=("pass", "pass", "pass"), error=None):
    return {"client": client, "title": client, "version": "1.0", "status": status, "error": error,
            "steps": [{"step": n, "status": s, "error": error if s == "fail" else None}
                      for n, s in zip(("text", "tool", "follow_up"), steps)]}


def test_verdict_none_without_clients_pass_and_fail():
    assert clients_table.verdict({"results": []}) is None
    ok, line = clients_table.verdict({"clients": [entry("a", "pass"), entry("b", "skip")]})
    assert ok and line == "PASS: clients 1 pass, 0 fail, 1 skip"
    ok, line = clients_table.verdict({"clients": [
        entry("a", "pass"), entry("b", "fail", ("pass", "fail", "skip"), "tool: 400 nope")]})
    assert not ok and line == "FAIL: clients 1 pass, 1 fail, 0 skip; first b: tool: 400 nope"


def test_html_and_markdown_escape_the_clients_error():
    summary = {"clients": [entry("codex", "fail", ("fail", "fail", "fail"), EVIL)]}
    page = clients_table.html_section(summary)
    assert "<script>" not in page and "&lt;script&gt;" in page
    md = "\n".join(clients_table.markdown_section(summary))
    assert "\\| &quot;" not in md and '\\| "quoted"' in md
    assert "| codex | 1.0 | ✗ | ✗ | ✗ | **fail** |" in md
    assert clients_table.html_section({}) == "" and clients_table.markdown_section({}) == []


def test_comparison_groups_columns_by_client_and_marks_runs_that_did_not_drive_it():
    a = {"clients": [entry("codex", "fail", ("fail", "skip", "skip"), "text: 400"),
                     entry("agents", "pass")]}
    b = {"clients": [entry("agents", "pass")]}
    page = clients_table.comparison_html(["A", "B"], [a, b])
    assert page.index('<th colspan="4" class="t">codex</th>') < page.index(
        '<th colspan="4" class="t">agents</th>')
    assert '<td class="c none" colspan="4">not run</td>' in page
    md = clients_table.comparison_markdown(["A", "B"], [a, b])
    assert "| A | ✗ | – | – | **fail** | ✓ | ✓ | ✓ | **pass** |" in md
    assert "| B | — | — | — | — | ✓ | ✓ | ✓ | **pass** |" in md
    assert "- A · codex: `text: 400`" in md
    assert clients_table.comparison_html(["A"], [{}]) == ""
