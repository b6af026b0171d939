"""The checker against what OpenAI's service actually sends (shared/fixtures/openai-recorded).

Each recorded stream (one event's JSON per line) is framed as OpenAI frames it
(``harness.core.verdict.events_to_sse``: ``event: <type>`` + one ``data:`` line) and judged under the
``openai`` profile. A correct checker finds nothing of level MUST or SHOULD in any of them; if it
does, the checker is wrong, not OpenAI (fixtures README).

Then each stream is mutated in ways a broken server would (drop, swap, renumber, alter a delta)
and the checker must fail it with the check that names the fault.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.catalogue import load_catalogue
from harness.core.verdict import events_to_sse, judge_stream_body

# A copy of ../shared/fixtures/openai-recorded (Apache-2.0, Vercel; see recorded/README.md), kept
# in the repository so these tests never depend on a folder outside the clone.
FIXTURES = Path(__file__).resolve().parent / "recorded"
FILES = sorted(FIXTURES.glob("*.chunks.txt"))
assert len(FILES) >= 12, f"recorded OpenAI streams missing from {FIXTURES}"

# Hand-abbreviated in the recording (see test_shell_container_is_abbreviated).
ABBREVIATED = "openai-shell-container.1"

LEVEL = load_catalogue("openai").level


def _name(path: Path) -> str:
    return path.name.removesuffix(".chunks.txt")


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _judge(events: list[dict]):
    jsonl = b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in events)
    return judge_stream_body(events_to_sse(jsonl), "openai").log


def _serious(log) -> list[tuple[str, str, object]]:
    return [(f.check, LEVEL(f.check), f.evidence.get("frame")) for f in log.findings
            if LEVEL(f.check) in ("MUST", "SHOULD")]


def _musts(log) -> set[str]:
    return {f.check for f in log.findings if LEVEL(f.check) == "MUST"}


# -- every recorded stream is conformant ---------------------------------------------------
def test_fixtures_present():
    assert len(FILES) >= 12, FILES


@pytest.mark.parametrize("path", [p for p in FILES if _name(p) != ABBREVIATED], ids=_name)
def test_recorded_stream_is_conformant(path):
    log = judge_stream_body(events_to_sse(path.read_bytes()), "openai").log
    assert _serious(log) == [], [(f.check, f.message, f.evidence) for f in log.findings]
    # And it was really judged: the stream checks were applied, not skipped.
    for check in ("stream.sequence.contiguous", "stream.terminal.present", "schema.event"):
        assert check in log.applied


def test_shell_container_is_abbreviated():
    """openai-shell-container.1 was abbreviated by hand when it was recorded: all its ids are
    synthetic (``..._0f1a2b3c4d5e6f7a8b9c...``), and its four output_text deltas spell "The
    command ran successfully." while its output_text.done carries a 190-character text. The
    project decided it is not a faithful recording; the checker is right to report exactly
    that one inconsistency — stream.delta.accumulates on the output_text.done frame (25) —
    and nothing else."""
    path = FIXTURES / f"{ABBREVIATED}.chunks.txt"
    events = _events(path)
    assert "0f1a2b3c4d5e6f7a8b9c" in events[0]["response"]["id"]
    log = judge_stream_body(events_to_sse(path.read_bytes()), "openai").log
    assert [(f.check, f.evidence.get("frame")) for f in log.findings] == [
        ("stream.delta.accumulates", 25)]
    done = events[25]
    assert done["type"] == "response.output_text.done"
    assert len(done["text"]) == 190
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") \
        == "The command ran successfully."


@pytest.mark.parametrize("path", FILES, ids=_name)
def test_respcheck_validate_judges_each_recording(path, capsys):
    """`respcheck validate FILE --profile openai` on each recording, exactly as a user runs it."""
    from harness.faces.cli import main

    code = main(["validate", str(path), "--profile", "openai"])
    out = capsys.readouterr().out
    if path.name == f"{ABBREVIATED}.chunks.txt":
        assert code == 1, out
        assert "MUST   stream.delta.accumulates" in out and "frame=25" in out, out
    else:
        assert code == 0, out
        assert out.startswith("PASS:"), out


def test_console_script_validate_exit_codes(tmp_path):
    """The installed entry point: 0 for a conformant recording, 1 once an event is dropped."""
    good = FIXTURES / "openai-web-search-tool.1.chunks.txt"
    bad = tmp_path / "bad.chunks.txt"
    events = _events(good)
    del events[len(events) // 2]
    bad.write_text("\n".join(json.dumps(e) for e in events))

    def run(path):
        return subprocess.run([sys.executable, "-m", "harness.faces.cli", "validate", str(path)],
                              capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])

    ok = run(good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = run(bad)
    assert broken.returncode == 1 and "stream.sequence.contiguous" in broken.stdout


# -- mutations: a broken server is caught, with the right check ----------------------------
def _middle(events: list[dict]) -> int:
    """A middle event that is neither lifecycle nor terminal, preferably a delta."""
    inner = list(range(2, len(events) - 1))
    deltas = [i for i in inner if e_type(events[i]).endswith(".delta")]
    pool = deltas or inner
    return pool[len(pool) // 2] if pool else -1


def e_type(event: dict) -> str:
    return event.get("type", "")


def drop_one(events):
    i = _middle(events)
    if i < 0:
        pytest.skip("no middle event to drop")
    del events[i]
    return events, "stream.sequence.contiguous"


def swap_adjacent(events):
    i = _middle(events)
    if i < 0:
        pytest.skip("no middle event to swap")
    events[i], events[i + 1] = events[i + 1], events[i]
    return events, "stream.sequence.contiguous"


def repeat_sequence_number(events):
    i = max(_middle(events), 1)
    events[i]["sequence_number"] = events[i - 1]["sequence_number"]
    return events, "stream.sequence.contiguous"


ACCUMULATED = {"response.output_text.delta", "response.function_call_arguments.delta",
               "response.mcp_call_arguments.delta", "response.code_interpreter_call_code.delta",
               "response.reasoning_summary_text.delta", "response.reasoning_text.delta",
               "response.refusal.delta", "response.custom_tool_call_input.delta"}


def alter_delta(events):
    deltas = [i for i, e in enumerate(events) if e_type(e) in ACCUMULATED
              and isinstance(e.get("delta"), str)]
    if not deltas:
        pytest.skip("no accumulated deltas in this stream")
    e = events[deltas[len(deltas) // 2]]
    e["delta"] = e["delta"] + "\u2060tampered"
    return events, "stream.delta.accumulates"


MUTATIONS = [drop_one, swap_adjacent, repeat_sequence_number, alter_delta]


def _has_deltas(path) -> bool:
    return any(e_type(e) in ACCUMULATED and isinstance(e.get("delta"), str) for e in _events(path))


# Only the (recording, mutation) pairs that can apply: altering a delta needs a stream with
# deltas, and reporting the others as skipped would only be noise.
CASES = [pytest.param(path, m, id=f"{_name(path)}-{m.__name__}")
         for path in FILES for m in MUTATIONS if m is not alter_delta or _has_deltas(path)]


@pytest.mark.parametrize(("path", "mutate"), CASES)
def test_mutation_is_caught(path, mutate):
    events, expect = mutate(copy.deepcopy(_events(path)))
    log = _judge(events)
    assert expect in _musts(log), [(f.check, f.message) for f in log.findings]


def test_every_fixture_has_a_mutable_delta():
    """So alter_delta is not silently skipped everywhere: most recorded streams stream text."""
    with_deltas = [p for p in FILES if any(e_type(e) in ACCUMULATED for e in _events(p))]
    assert len(with_deltas) >= 8, [_name(p) for p in with_deltas]
