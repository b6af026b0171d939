"""A replayed stream (``GET /v1/responses/{id}?stream=true&starting_after=N``): judged by the same
StreamChecker as the continuation of the original's first N + 1 events (``resume``:
stream.replay.start, and the whole grammar), and by the ``replays:`` expectation
(stream.replay.matches): right and broken."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from stream_builder import index_of, message_stream, to_sse

from harness.core.findings import FindingLog
from harness.core.verdict import Judged, judge_stream_body
from harness.run.expect import Answer, _replays
from harness.run.runner import _resumes


def judged_replay(original: list[dict], replayed: list[dict], after: int) -> Judged:
    earlier = [e for e in original if e["sequence_number"] <= after]
    return judge_stream_body(to_sse(replayed), "openai", resumes=(earlier, after))


@pytest.mark.parametrize("after", [0, 1, 2, 5, -2])
def test_a_replay_from_n_plus_1_has_no_findings(after):
    events = message_stream()
    after = after % len(events)
    judged = judged_replay(events, events[after + 1:], after)
    assert judged.log.findings == [], [(f.check, f.message) for f in judged.log.findings]
    assert "stream.replay.start" in judged.log.applied and "stream.item.lifecycle" in judged.log.applied
    assert "stream.sequence.start_zero" not in judged.log.applied  # it starts mid-stream
    assert judged.events == events[after + 1:] and judged.terminal_type == events[-1]["type"]


def test_a_replay_after_the_terminal_event_may_be_empty():
    events = message_stream()
    judged = judged_replay(events, [], events[-1]["sequence_number"])
    assert judged.log.findings == []


@pytest.mark.parametrize("start", [0, 3, 5])  # starting_after=3: from 0 (the whole stream), 3 (again), 5 (a gap)
def test_a_replay_starting_elsewhere_is_caught(start):
    events = message_stream()
    judged = judged_replay(events, events[start:], 3)
    assert "stream.replay.start" in {f.check for f in judged.log.findings}


def test_the_replay_is_held_to_the_grammar_of_what_came_before():
    """A delta for the item whose output_item.done the replay says came already is a grammar
    failure, though the replay alone would not show it."""
    events = message_stream()
    done = index_of(events, "response.output_item.done")
    late = copy.deepcopy(events[done - 3])  # an output_text.delta of that item
    replay = [dict(late, sequence_number=done + 1)] + [dict(e, sequence_number=e["sequence_number"] + 1)
                                                       for e in events[done + 1:]]
    judged = judged_replay(events, replay, done)
    assert {f.check for f in judged.log.findings} & {"stream.item.lifecycle", "stream.item.grammar"}


def answer(original: list[dict], replayed: list[dict], *, cut: bool = False) -> FindingLog:
    earlier = Judged(FindingLog(), "stream", events=original,
                     terminal_type=None if cut else original[-1]["type"])
    log = FindingLog()
    got = Judged(log, "stream", events=replayed)
    _replays("create", Answer(SimpleNamespace(stream=False, returns="response"), None, got, log,
                              {"create": earlier}))
    return log


def test_replays_matches_an_equal_tail():
    events = message_stream()
    log = answer(events, events[4:])
    assert "stream.replay.matches" in log.applied and log.findings == []


def test_replays_catches_a_changed_event():
    events = message_stream()
    changed = copy.deepcopy(events[4:])
    delta = next(e for e in changed if e["type"] == "response.output_text.delta")
    delta["delta"] += "!"
    log = answer(events, changed)
    assert [f.check for f in log.findings] == ["stream.replay.matches"]
    assert "differs from the original in ['delta']" in log.findings[0].message


def test_replays_catches_a_replay_that_stops_early_or_invents_events():
    events = message_stream()
    assert [f.check for f in answer(events, events[4:-1]).findings] == ["stream.replay.matches"]
    extra = dict(events[-1], sequence_number=len(events))
    assert [f.check for f in answer(events, events[4:] + [extra]).findings] == ["stream.replay.matches"]


def test_replays_of_a_cut_original_compares_what_both_have():
    """The original step read only part of a live stream: the rest cannot be compared."""
    events = message_stream()
    assert answer(events[:6], events[4:], cut=True).findings == []


def test_replays_of_something_that_is_not_a_stream_fails():
    log = FindingLog()
    _replays("create", Answer(SimpleNamespace(stream=False, returns="response"), None,
                              Judged(log, "error"), log, {"create": Judged(FindingLog(), "stream", events=[])}))
    assert [f.check for f in log.findings] == ["stream.replay.matches"]


def test_the_runner_primes_a_replay_from_its_path():
    events = message_stream()
    earlier = {"create": Judged(FindingLog(), "stream", events=events)}
    prefix, after = _resumes("/responses/resp_1?stream=true&starting_after=3", "create", earlier)
    assert after == 3 and prefix == events[:4]
    assert _resumes("/responses/resp_1?stream=true", "create", earlier) is None  # whole: a stream of its own
    assert _resumes("/responses/resp_1?stream=true&starting_after=3", None, earlier) is None
