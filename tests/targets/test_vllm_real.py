"""`respcheck run --target vllm` against the REAL vLLM (spawned, tiny random-weight model).

Skipped unless vLLM's venv exists (scripts/install-vllm.sh): it takes ~1 minute to start on
2 CPU cores. Only the `core` feature is run, to keep it short; the verdicts are vLLM's, so only
the contract (a report, a log, exit 0 or 1, nothing left running) is asserted.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.faces.cli import main
from harness.targets.target import vllm_python

pytestmark = pytest.mark.skipif(
    not vllm_python().exists(),
    reason=f"vLLM is not installed ({vllm_python()} is missing): run scripts/install-vllm.sh "
           "to run the real-vLLM test (3.4 GB, ~3 min)")


def test_run_against_spawned_vllm(tmp_path, capsys):
    report = tmp_path / "report"
    code = main(["run", "--target", "vllm", "--only", "core", "--report-dir", str(report)])
    err = capsys.readouterr().err
    assert code in (0, 1), err
    assert "vllm ready after" in err
    summary = json.loads((report / "summary.json").read_text())
    assert summary["target"]["name"] == "vllm" and summary["target"]["model"] == "tiny"
    assert summary["totals"]["pass"] > 0
    assert (report / "vllm.log").stat().st_size > 0
    # nothing of that vLLM is left running
    port = summary["target"]["base_url"].split(":")[-1].split("/")[0]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--port {port}" not in ps
