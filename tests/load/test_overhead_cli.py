"""``python -m loadtests.overhead`` refuses a workload it cannot run in one line, before it starts
any server (run as a subprocess: importing the module loads locust, whose gevent patching must
not reach the pytest process)."""

from __future__ import annotations

import subprocess
import sys


def test_an_output_length_the_responses_api_refuses_is_one_line_and_starts_nothing(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "loadtests.overhead", "--output-tokens", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "python -m loadtests.overhead: the Responses API takes max_output_tokens >= 16, got --output-tokens 1"]
    assert not out.exists()  # nothing was started, nothing written
