"""The committed recordings of real servers (reports/vllm-responses/) are re-judged by today's
checker, with no server: a checker change that flips any verdict on them fails here, and says
which (harness/run/replay.py).

A recording whose scenario files changed since it was made is *stale*: it is still judged as
recorded (its scenario snapshots), and ``test_recordings_are_current`` is skipped with the
scenarios to re-record and the command (``-ra`` shows it). Re-recording needs the server, which
CI does not have, so a scenario edit does not fail CI.

The tests after the first two prove the re-judging can fail: a checker change, an edited
verdict, a request the harness would render differently, a step the recording never reached,
and a changed scenario file each show up.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from harness.core.transcript import read_transcript, write_transcript
from harness.run import replay, runner

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = sorted(p.parent for p in ROOT.glob("reports/*/*/expected.json"))


def _id(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def test_there_are_recordings():
    assert {_id(p) for p in RECORDINGS} >= {"reports/vllm-responses/openai",
                                           "reports/vllm-responses/openresponses"}


@pytest.mark.parametrize("recording", RECORDINGS, ids=_id)
def test_recorded_verdicts_stand(recording):
    result = replay.rejudge(recording)
    assert result.verdicts, "nothing was re-judged"
    problems = result.flips + result.drift
    assert not problems, (
        f"today's checker judges {len(problems)} recorded verdicts differently: if the change "
        "is right, re-record (" + result.rerecord + ") or update expected.json, and say why "
        "in the report:\n" + "\n".join(problems))


@pytest.mark.parametrize("recording", RECORDINGS, ids=_id)
def test_recordings_are_current(recording):
    result = replay.rejudge(recording)
    if result.stale:
        pytest.skip(next(line for line in result.lines() if ": stale: " in line))


# -- the re-judging can fail ------------------------------------------------------------------
@pytest.fixture
def copy(tmp_path) -> Path:
    """A scratch copy of the openai recording of vllm-responses."""
    dest = tmp_path / "rec"
    shutil.copytree(ROOT / "reports/vllm-responses/openai", dest)
    return dest


def _suite_as_recorded(rec: Path, dest: Path) -> Path:
    """A scenario folder holding the recording's snapshots (not today's suite, which may have
    moved on)."""
    for snap in replay.load_snapshots(rec).values():
        path = dest / snap["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snap["text"], encoding="utf-8")
    return dest


def _edit_expected(rec: Path, sid: str, edit) -> None:
    data = json.loads((rec / replay.EXPECTED_FILE).read_text(encoding="utf-8"))
    edit(data["scenarios"][sid])
    (rec / replay.EXPECTED_FILE).write_text(json.dumps(data), encoding="utf-8")


def test_a_checker_change_flips_verdicts(copy, monkeypatch):
    """The same recording, judged by a checker whose scenario expectations are gone (a real
    code change, in-process): the verdicts that rested on them flip, by name."""
    monkeypatch.setattr(runner, "check_step", lambda *a, **k: None)
    result = replay.rejudge(copy)
    assert "errors/missing_model errors.status: fail -> not applied" in result.flips
    assert any(f.startswith("background/poll_to_completion: fail -> ") for f in result.flips)


def test_an_edited_verdict_is_a_flip(copy):
    _edit_expected(copy, "core/string_input",
                   lambda s: s["checks"].__setitem__("schema.response", "fail"))
    result = replay.rejudge(copy)
    assert result.flips == ["core/string_input schema.response: fail -> pass"]


def test_unchanged_recording_has_no_flips(copy):
    """The scratch copy itself re-judges clean (the edits above are what fail)."""
    result = replay.rejudge(copy)
    assert (result.flips, result.drift) == ([], [])
    assert len(result.verdicts) == len(
        json.loads((copy / replay.EXPECTED_FILE).read_text())["scenarios"])


def _rewrite_transcript(rec: Path, name: str, edit) -> None:
    path = rec / replay.TRANSCRIPTS_DIR / f"{name}.jsonl.gz"
    exchanges = edit(read_transcript(path))
    plain = path.with_suffix("")
    write_transcript(plain, exchanges)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()


def test_a_request_rendered_differently_is_drift(copy):
    def edit(exchanges):
        body = json.loads(exchanges[0].request_body)
        body["input"] += " (edited)"
        exchanges[0].request_body = json.dumps(body).encode()
        return exchanges

    _rewrite_transcript(copy, "core__string_input", edit)
    result = replay.rejudge(copy)
    assert result.drift == [("core/string_input: step 'step0': the request rendered today "
                             "differs from the recorded one")]


def test_a_loopback_port_is_not_drift():
    assert replay._masked(b'{"u": "http://127.0.0.1:44979/mcp"}') == \
        replay._masked(b'{"u": "http://127.0.0.1:0/mcp"}')
    assert replay._masked(b'{"u": "http://127.0.0.1:1/a"}') != \
        replay._masked(b'{"u": "http://127.0.0.1:1/b"}')


def test_a_step_never_recorded_is_drift(copy):
    """state/retrieve_same has a create and a GET; without the GET's exchange the runner asks
    for an answer the recording does not have."""
    _rewrite_transcript(copy, "state__retrieve_same", lambda ex: ex[:1])
    result = replay.rejudge(copy)
    assert any(d.startswith("state/retrieve_same: step ") and "was never recorded" in d
               for d in result.drift), result.drift
    assert result.verdicts["state/retrieve_same"]["status"] == "not recorded"


def test_a_changed_scenario_file_is_stale_and_judged_as_recorded(copy, tmp_path):
    suite = _suite_as_recorded(copy, tmp_path / "suite")
    assert replay.rejudge(copy, suite_dir=suite).stale == []
    path = suite / "core" / "string_input.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    (suite / "core" / "brand_new.yaml").write_text((suite / "core" / "string_input.yaml")
                                                   .read_text(encoding="utf-8"), encoding="utf-8")
    result = replay.rejudge(copy, suite_dir=suite)
    assert result.stale == ["core/brand_new (new, not recorded)", "core/string_input (changed)"]
    assert (result.flips, result.drift) == ([], [])  # still judged as recorded
    line = next(line for line in result.lines() if ": stale: " in line)
    assert "re-record with .venv/bin/respcheck run" in line and "replay freeze" in line


def test_freeze_writes_what_rejudge_reads(tmp_path):
    """freeze on a report folder (here: rebuilt from the recording's own transcripts) gives a
    recording that re-judges clean, with the same verdicts."""
    src = ROOT / "reports/vllm-responses/openai"
    expected = json.loads((src / replay.EXPECTED_FILE).read_text(encoding="utf-8"))
    report = tmp_path / "report"
    (report / "transcripts").mkdir(parents=True)
    results, scenarios = [], []
    for sid, v in expected["scenarios"].items():
        name = sid.replace("/", "__") + ".jsonl"
        gz = src / replay.TRANSCRIPTS_DIR / (name + ".gz")
        transcript = None
        if gz.exists():
            (report / "transcripts" / name).write_bytes(gzip.decompress(gz.read_bytes()))
            transcript = f"transcripts/{name}"
        scenarios.append({"id": sid, "status": v["status"], "transcript": transcript})
        results += [{"scenario": sid, "check": c, "status": s} for c, s in v["checks"].items()]
    summary = {k: expected[k] for k in ("profile", "transport", "target", "totals")}
    (report / "summary.json").write_text(json.dumps(
        {**summary, "version": "x", "results": results, "scenarios": scenarios}), encoding="utf-8")
    out = tmp_path / "rec"
    suite = _suite_as_recorded(src, tmp_path / "suite")
    written = replay.freeze(report, out, suite_dir=suite)
    assert written["scenarios"] == expected["scenarios"]
    result = replay.rejudge(out, suite_dir=suite)
    assert (result.flips, result.drift, result.stale) == ([], [], [])


def test_check_command_exit_codes(copy, capsys):
    assert replay.main(["check", str(copy)]) == 0
    _edit_expected(copy, "core/string_input", lambda s: s.__setitem__("status", "fail"))
    assert replay.main(["check", str(copy)]) == 1
    assert "flip: core/string_input: fail -> pass" in capsys.readouterr().out
    assert replay.main(["check", str(copy / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected.json does not exist" in err[0]
