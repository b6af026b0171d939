"""`respcheck validate FILE`: judge a saved event-stream body or JSON object offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_servers import skip_sequence_number

from harness.faces.cli import main

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT_S = 30


def finding_lines(out: str) -> list[list[str]]:
    """The per-finding lines of validate's output: level, check, evidence..."""
    return [line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in ("MUST", "SHOULD", "MAY")]


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


@pytest.fixture
def stream_file(tmp_path, recorded) -> Path:
    path = tmp_path / "stream.sse"
    path.write_bytes(recorded.stream)
    return path


def test_gateway_stream_is_valid(stream_file, capsys):
    assert main(["validate", str(stream_file)]) == 0
    out = capsys.readouterr().out
    assert finding_lines(out) == []
    assert last_line(out).startswith("PASS: stream.sse: stream of ")
    assert "(0 MUST)" in last_line(out)


def test_profiles_differ_only_in_the_done_sentinel(tmp_path, stream_file, capsys):
    """openresponses requires `data: [DONE]` (the gateway sends it only when configured to);
    under openai it is reported (SHOULD, OpenAI's service sends none) without failing."""
    assert main(["validate", str(stream_file), "--profile", "openresponses"]) == 1
    assert [p[:2] for p in finding_lines(capsys.readouterr().out)] == [
        ["MUST", "sse.done_sentinel"]]

    with_done = tmp_path / "with_done.sse"
    with_done.write_bytes(stream_file.read_bytes() + b"data: [DONE]\n\n")
    assert main(["validate", str(with_done), "--profile", "openresponses"]) == 0
    assert finding_lines(capsys.readouterr().out) == []
    assert main(["validate", str(with_done)]) == 0
    assert [p[:2] for p in finding_lines(capsys.readouterr().out)] == [
        ["SHOULD", "sse.done_sentinel"]]


def test_changed_sequence_number_fails(tmp_path, recorded, capsys):
    path = tmp_path / "skipped.sse"
    path.write_bytes(skip_sequence_number(recorded.stream))
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    lines = finding_lines(out)
    assert ["MUST", "stream.sequence.contiguous"] in [parts[:2] for parts in lines], out
    seq = next(parts for parts in lines if parts[1] == "stream.sequence.contiguous")
    assert "frame=3" in seq and "sequence_number=4" in seq
    assert last_line(out).startswith("FAIL: skipped.sse")


def test_response_json(tmp_path, recorded, capsys):
    good = tmp_path / "response.json"
    good.write_text(json.dumps(recorded.response))
    assert main(["validate", str(good)]) == 0
    assert last_line(capsys.readouterr().out).startswith("PASS: response.json: json")

    bad = tmp_path / "nope.json"
    bad.write_text(json.dumps({**recorded.response, "object": "nope"}))
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert ["MUST", "response.object"] in [p[:2] for p in finding_lines(out)], out
    assert "'nope'" in out


def test_error_envelope(tmp_path, recorded, capsys):
    good = tmp_path / "error.json"
    good.write_text(json.dumps(recorded.error))
    assert main(["validate", str(good)]) == 0
    assert last_line(capsys.readouterr().out).startswith("PASS: error.json: error")

    # An envelope that lacks `param` and `code` is not the shape clients parse.
    bad = tmp_path / "bad_error.json"
    bad.write_text(json.dumps({"error": {"message": "no"}}))
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "schema.error_envelope" in [p[1] for p in finding_lines(out)], out


def test_pretty_printed_and_crlf_files(tmp_path, recorded, capsys):
    """A Response saved by `jq .` (indented) is still one JSON object, not JSON Lines."""
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(recorded.response, indent=2))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("content", [None, b"", b"  \n\n"])
def test_missing_or_empty_file(tmp_path, capsys, content):
    path = tmp_path / "saved.sse"
    if content is not None:
        path.write_bytes(content)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("respcheck: error: ")
    assert "saved.sse" in captured.err
    assert captured.out == ""


def test_directory_is_not_a_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_console_script(stream_file, tmp_path, recorded):
    """The installed entry point (`respcheck`) runs, exits with the verdict and prints it."""
    script = shutil.which("respcheck", path=os.path.dirname(sys.executable)) \
        or shutil.which("respcheck")
    cmd = [script] if script else [sys.executable, "-m", "harness.faces.cli"]
    env = {**os.environ, "NO_COLOR": "1"}
    ok = subprocess.run([*cmd, "validate", str(stream_file)], capture_output=True, text=True,
                        timeout=SUBPROCESS_TIMEOUT_S, cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr
    assert last_line(ok.stdout).startswith("PASS: stream.sse")

    broken = tmp_path / "broken.sse"
    broken.write_bytes(skip_sequence_number(recorded.stream))
    bad = subprocess.run([*cmd, "validate", str(broken)], capture_output=True, text=True,
                         timeout=SUBPROCESS_TIMEOUT_S, cwd=tmp_path, env=env)
    assert bad.returncode == 1
    assert "stream.sequence.contiguous" in bad.stdout

    missing = subprocess.run([*cmd, "validate", str(tmp_path / "absent")], capture_output=True,
                             text=True, timeout=SUBPROCESS_TIMEOUT_S, cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and missing.stdout == ""


def test_module_entry_point(stream_file, tmp_path):
    """`python -m harness.faces.cli` is the same command (the fallback when no script is on PATH)."""
    done = subprocess.run([sys.executable, "-m", "harness.faces.cli", "--version"],
                          capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
                          cwd=REPO)
    assert done.returncode == 0 and done.stdout.startswith("respcheck ")
