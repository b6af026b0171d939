"""`respcheck clients` and `respcheck run --clients` end to end against the embedded reference
gateway: the summary.json contract (``clients`` + ``clients_totals``), the reports, exit codes,
and the one line a missing client gets."""

from __future__ import annotations

import json

from client_install import require_installed

from harness.faces.cli import main
from harness.run import clients as real_clients

BY_NAME = {c.name: c for c in real_clients.CLIENTS}
ENTRY_KEYS = {"client", "title", "version", "status", "steps", "error", "duration_s"}


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, f"not one line on stderr: {err!r}"
    assert err.startswith("respcheck: error: ")
    return err


def test_unknown_client_is_one_line_exit_2(capsys, tmp_path):
    assert main(["clients", "--client", "cursor", "--report-dir", str(tmp_path)]) == 2
    err = one_line(capsys.readouterr().err)
    assert "no client named 'cursor'" in err and "codex, agents, ai-sdk, openai-node" in err


def test_clients_command_writes_clients_into_summary_and_reports(capsys, tmp_path):
    require_installed(BY_NAME["agents"])
    assert main(["clients", "--client", "agents", "--report-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS: clients against reference: 1 pass, 0 fail, 0 skip" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["clients_totals"] == {"pass": 1, "fail": 0, "skip": 0}
    [entry] = summary["clients"]
    assert set(entry) == ENTRY_KEYS and entry["client"] == "agents" and entry["status"] == "pass"
    assert summary["results"] == [] and summary["target"]["name"] == "reference"
    assert "Real clients" in (tmp_path / "report.html").read_text()
    assert "| agents | 0.24.0 | ✓ | ✓ | ✓ | **pass** |" in (tmp_path / "report.md").read_text()


def test_a_failing_client_exits_1_and_names_its_error(capsys, tmp_path):
    """A model with a 3-token window (the mock upstream's ``mock-window:N``) refuses every turn
    with context_length_exceeded; the AI SDK reports it as its own error, quoted per step."""
    require_installed(BY_NAME["ai-sdk"])
    code = main(["clients", "--client", "ai-sdk", "--model", "mock-window:3", "--report-dir", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    [entry] = summary["clients"]
    assert code == 1 and entry["status"] == "fail", entry
    assert entry["error"].startswith("text: AI_APICallError: ") and "context_length_exceeded" in entry["error"]
    assert entry["error"] in capsys.readouterr().out


def test_no_client_installed_is_exit_2_and_one_skip_line_each(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(real_clients, "ROOT", tmp_path / "nowhere")
    assert main(["clients", "--report-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.splitlines()
    for name in real_clients.CLIENT_NAMES:
        assert f"respcheck: {name}: not installed, skipped: run scripts/install-clients.sh" in err
    assert err[-1] == ("respcheck: error: none of the clients (codex, agents, ai-sdk, openai-node) "
                       "is installed here: run scripts/install-clients.sh")


def test_run_with_clients_adds_them_to_the_suites_summary(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(real_clients, "ROOT", tmp_path / "nowhere")  # fast: every client skips
    code = main(["run", "--only", "core", "--clients", "codex,agents", "--report-dir",
                 str(tmp_path / "r")])
    assert code == 0  # the suite's exit rule; skipped clients do not change it
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["results"]
    assert [e["client"] for e in summary["clients"]] == ["codex", "agents"]
    assert summary["clients_totals"] == {"pass": 0, "fail": 0, "skip": 2}
    assert "agents: not installed, skipped" in capsys.readouterr().err


def test_two_targets_compare_with_a_column_group_per_client(capsys, tmp_path):
    require_installed(BY_NAME["openai-node"])
    code = main(["clients", "--target", "reference", "--target", "reference", "--client",
                 "openai-node", "--report-dir", str(tmp_path)])
    assert code == 0
    page = (tmp_path / "comparison.html").read_text()
    assert '<th colspan="4" class="t">openai-node</th>' in page
    md = (tmp_path / "comparison.md").read_text()
    assert "| target | openai-node text | openai-node tool | openai-node follow_up | " \
           "openai-node verdict |" in md
    assert "| **PASS** (clients 1 pass, 0 fail, 0 skip) |" in md  # the clients', not the suite's
    assert "PASS<br><small>clients 1 pass, 0 fail, 0 skip</small>" in page
