"""harness/run/clients.py with stand-in drivers (no Node needed): how a driver's line becomes a
``clients`` entry, what a missing client, a silent driver and a hung driver give."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.run import clients as real_clients
from harness.run.clients import Client, run_client, select, totals
from harness.targets.target import Target

TARGET = Target(name="t", base_url="http://127.0.0.1:9/v1", model="m")


def fake_root(tmp_path: Path, driver_source: str) -> tuple[Path, Client]:
    """A root whose .venv-clients python is this interpreter and whose driver is the source."""
    (tmp_path / ".venv-clients" / "bin").mkdir(parents=True)
    (tmp_path / ".venv-clients" / "bin" / "python").symlink_to(sys.executable)
    (tmp_path / "clients" / "drivers").mkdir(parents=True)
    (tmp_path / "clients" / "drivers" / "fake.py").write_text(textwrap.dedent(driver_source))
    return tmp_path, Client("fake", "a stand-in", "fake.py", "clients-venv",
                            (".venv-clients/bin/python",))


def test_select_all_by_default_and_by_names_in_catalogue_order():
    assert [c.name for c in select(None)] == list(real_clients.CLIENT_NAMES)
    assert [c.name for c in select(["all"])] == list(real_clients.CLIENT_NAMES)
    assert [c.name for c in select(["openai-node,codex"])] == ["codex", "openai-node"]
    with pytest.raises(ValueError, match="no client named 'cursor'; choose from codex"):
        select(["codex", "cursor"])


def test_a_client_not_installed_is_skip_with_the_install_command_never_pass(tmp_path):
    entries = [run_client(c, TARGET, root=tmp_path) for c in real_clients.CLIENTS]
    for e in entries:
        assert e["status"] == "skip"
        assert e["error"] == f"{e['client']} is not installed: run scripts/install-clients.sh"
        assert [s["status"] for s in e["steps"]] == ["skip"] * 3
    assert totals(entries) == {"pass": 0, "fail": 0, "skip": len(entries)}


def test_the_drivers_line_becomes_the_entry_with_its_arguments(tmp_path):
    root, client = fake_root(tmp_path, """
        import json, sys
        args = sys.argv[1:]
        print("some chatter first")
        print(json.dumps({"client": "fake", "version": "1.2.3", "status": "fail",
                          "steps": [{"step": "text", "status": "pass", "error": None},
                                    {"step": "tool", "status": "fail", "error": " ".join(args)}],
                          "error": "tool: it broke"}))
    """)
    e = run_client(client, TARGET, root=root, step_deadline_s=7)
    assert e["status"] == "fail" and e["version"] == "1.2.3" and e["error"] == "tool: it broke"
    assert [(s["step"], s["status"]) for s in e["steps"]] == [
        ("text", "pass"), ("tool", "fail"), ("follow_up", "skip")]
    assert e["steps"][1]["error"] == ("--base-url http://127.0.0.1:9/v1 --model m --api-key "
                                      "respcheck --deadline 7")


def test_a_driver_that_prints_no_result_fails_with_its_last_stderr_line(tmp_path):
    root, client = fake_root(tmp_path, """
        import sys
        print("not json")
        sys.stderr.write("Error: Cannot find module 'ai'\\n")
        sys.exit(3)
    """)
    e = run_client(client, TARGET, root=root)
    assert e["status"] == "fail"
    assert e["error"] == "the driver printed no result (exit 3): Error: Cannot find module 'ai'"


def test_a_hung_driver_is_killed_with_its_children_at_the_deadline(tmp_path):
    pid_file = tmp_path / "child.pid"
    root, client = fake_root(tmp_path, f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(300)
    """)
    e = run_client(client, TARGET, root=root, step_deadline_s=0.5, slack_s=1)
    assert e["status"] == "fail"
    assert e["error"] == "the driver did not finish within 2.5 s (killed)"
    child = int(pid_file.read_text())
    for _ in range(50):  # the kill is sent; the child may take a moment to be reaped
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with open(f"/proc/{child}/stat") as f:  # a zombie is dead too
            assert f.read().split()[2] == "Z"
