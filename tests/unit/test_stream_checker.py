"""StreamChecker: a correct stream gives no findings; each planted violation is caught by the
check that claims it, and by no other MUST-level check.

The good stream comes from ``stream_builder.message_stream()`` (two assistant messages with
several output_text deltas each). Every case below deep-copies it, plants ONE violation, frames
it as SSE exactly as OpenAI does, and runs it through the same path ``respcheck validate`` uses
(``judge_stream_body``: SSEDecoder -> StreamChecker).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from pydantic import TypeAdapter

from harness.core.catalogue import load_catalogue
from harness.core.findings import FindingLog
from harness.core.sse import decode_all
from harness.core.stream import StreamChecker
from harness.core.verdict import judge_stream_body
from stream_builder import RESPONSE_ID, index_of, message_stream, renumber, to_sse

Frames = list[Any]


def fired(body: bytes, profile: str = "openai", content_type: str = "text/event-stream",
          chunks: list[bytes] | None = None) -> FindingLog:
    return judge_stream_body(body, profile, content_type=content_type, chunks=chunks).log


def must_ids(log: FindingLog, profile: str) -> set[str]:
    level = load_catalogue(profile).level
    return {f.check for f in log.findings if level(f.check) == "MUST"}


# -- the good stream -----------------------------------------------------------------------
@pytest.mark.parametrize("terminal", ["response.completed", "response.incomplete"])
def test_builder_stream_is_sdk_typed(terminal):
    """Every builder event parses as its own member of the SDK's ResponseStreamEvent union."""
    from openai.types.responses import ResponseStreamEvent

    adapter = TypeAdapter(ResponseStreamEvent)
    for event in message_stream(terminal=terminal):
        parsed = adapter.validate_python(event)
        assert parsed.type == event["type"]


@pytest.mark.parametrize("messages", [
    (("Hello", ",", " world", "!"),),
    (("Hello", ",", " world", "!"), ("Second", " message", " here.")),
    (("only one delta",),),
    (("a", "", "b", "\n", "ü€😀"),),  # empty and non-ASCII deltas are legal
])
@pytest.mark.parametrize("terminal", ["response.completed", "response.incomplete"])
def test_good_stream_has_no_findings(messages, terminal):
    events = message_stream(messages, terminal=terminal)
    log = fired(to_sse(events))
    assert log.findings == []
    # The checks a message stream is judged on were all applied (a pass is an honest pass).
    for check in ("stream.sequence.contiguous", "stream.delta.accumulates",
                  "stream.part.done_matches", "stream.item.done_content",
                  "stream.output.matches_items", "stream.content_index.dense", "schema.event",
                  "sse.content_type", "response.incomplete_details"):
        assert check in log.applied, check


def test_good_stream_openresponses_with_done():
    log = fired(to_sse(message_stream(), done=True), "openresponses")
    assert log.findings == []


def test_good_stream_event_by_event_driver():
    """Drivers that already hold JSON (WebSocket) use .event(); same verdict."""
    checker = StreamChecker("openai")
    for event in message_stream():
        checker.event(event)
    checker.close()
    assert checker.log.findings == []
    assert checker.terminal_type == "response.completed"
    assert checker.final_response["id"] == RESPONSE_ID


# -- planted violations --------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    plant: Callable[[list[dict[str, Any]]], Frames]
    expect: str
    # Other MUST checks that this planting inevitably fires too (each with a reason below).
    also: frozenset[str] = field(default_factory=frozenset)
    profile: str = "openai"
    content_type: str = "text/event-stream"


def _drop(etype: str, nth: int = 0):
    def plant(ev):
        del ev[index_of(ev, etype, nth)]
        return renumber(ev)
    return plant


def _first_not_created(ev):
    # Drop response.created and renumber, so the stream still starts at sequence_number 0.
    del ev[0]
    return renumber(ev)


def _first_seq_not_zero(ev):
    return renumber(ev, start=1)  # still contiguous: only the start is wrong


def _seq_gap(ev):
    for e in ev[5:]:
        e["sequence_number"] += 1
    return ev


def _seq_repeated(ev):
    for e in ev[5:]:
        e["sequence_number"] -= 1  # event 5 repeats event 4's number; contiguous after that
    return ev


def _response_id_changes(ev):
    ev[-1]["response"]["id"] = "resp_someotherid"
    return ev


def _no_terminal(ev):
    return ev[:-1]


def _two_terminals(ev):
    ev.append(copy.deepcopy(ev[-1]))
    return renumber(ev)


def _event_after_terminal(ev):
    # A lifecycle event (not an item event, which would also be an item.lifecycle failure).
    ev.append(copy.deepcopy(ev[1]))
    return renumber(ev)


def _terminal_type_disagrees(ev):
    ev[-1]["response"]["status"] = "failed"  # response.completed carrying a failed response
    return ev


def _item_event_before_added(ev):
    # An (empty, so accumulation is unaffected) delta for item 1 before item 1 is added.
    i = index_of(ev, "response.output_item.added", 1)
    delta = copy.deepcopy(ev[index_of(ev, "response.output_text.delta", 4)])  # item 1's delta
    assert delta["output_index"] == 1
    delta["delta"] = ""
    ev.insert(i, delta)
    return renumber(ev)


def _output_index_gap(ev):
    ev[index_of(ev, "response.output_item.added", 1)]["output_index"] = 2
    return ev


def _content_index_gap(ev):
    ev[index_of(ev, "response.content_part.added", 0)]["content_index"] = 1
    return ev


def _item_id_mismatch(ev):
    # On content_part.done: on a delta it would also file the delta under another key and so
    # break stream.delta.accumulates.
    ev[index_of(ev, "response.content_part.done", 0)]["item_id"] = "msg_not_the_added_one"
    return ev


def _done_id_differs(ev):
    # Changed in output_item.done AND in the terminal output, so the terminal output still
    # equals the done items (else stream.output.matches_items fires too).
    ev[index_of(ev, "response.output_item.done", 0)]["item"]["id"] = "msg_renamed"
    ev[-1]["response"]["output"][0]["id"] = "msg_renamed"
    return ev


def _delta_altered(ev):
    ev[index_of(ev, "response.output_text.delta", 1)]["delta"] = ";"
    return ev


def _part_done_differs(ev):
    ev[index_of(ev, "response.content_part.done", 0)]["part"]["text"] = "Hello, moon!"
    return ev


def _item_done_content_differs(ev):
    # As with the id: changed in the terminal output too, so only the item check fires.
    ev[index_of(ev, "response.output_item.done", 0)]["item"]["content"][0]["text"] = "Hi!"
    ev[-1]["response"]["output"][0]["content"][0]["text"] = "Hi!"
    return ev


def _terminal_output_differs(ev):
    ev[-1]["response"]["output"][1]["content"][0]["text"] = "Something else."
    return ev


def _error_not_followed_by_failed(ev):
    error = {"type": "error", "error": {"type": "server_error", "code": "server_error",
                                        "message": "boom", "param": None}}
    ev.insert(len(ev) - 1, error)
    return renumber(ev)


def _event_field_differs(ev):
    e = ev[index_of(ev, "response.output_text.delta", 0)]
    return [(e, "response.output_text.deltas") if x is e else x for x in ev]


def _non_json_data(ev):
    ev.insert(5, "this is not json")  # a frame without sequence_number: numbering unaffected
    return ev


def _unknown_type(name: str):
    def plant(ev):
        ev.insert(3, {"type": name})
        return renumber(ev)
    return plant


def _delta_int(ev):
    ev[index_of(ev, "response.output_text.delta", 1)]["delta"] = 5
    return ev


def _logprobs_wrong_type(ev):
    ev[index_of(ev, "response.output_text.delta", 1)]["logprobs"] = "none"
    return ev


def _with_done(ev):
    return ev + ["[DONE]"]


def _incomplete_without_details(ev):
    ev[-1]["type"] = "response.incomplete"
    ev[-1]["response"]["status"] = "incomplete"
    return ev


def _frame_after_done(ev):
    return ev[:-1] + ["[DONE]", ev[-1]]


CASES = [
    Case("first_event_not_created", _first_not_created, "stream.first_event.created"),
    Case("first_seq_not_zero", _first_seq_not_zero, "stream.sequence.start_zero"),
    Case("seq_gap", _seq_gap, "stream.sequence.contiguous"),
    Case("seq_repeated", _seq_repeated, "stream.sequence.contiguous"),
    Case("response_id_changes", _response_id_changes, "stream.response_id.consistent"),
    Case("no_terminal", _no_terminal, "stream.terminal.present"),
    Case("two_terminals", _two_terminals, "stream.terminal.single"),
    Case("event_after_terminal", _event_after_terminal, "stream.terminal.single"),
    Case("terminal_type_disagrees", _terminal_type_disagrees, "stream.terminal.status"),
    Case("item_event_before_added", _item_event_before_added, "stream.item.lifecycle"),
    Case("output_index_gap", _output_index_gap, "stream.output_index.dense"),
    Case("content_index_gap", _content_index_gap, "stream.content_index.dense"),
    Case("item_id_mismatch", _item_id_mismatch, "stream.item_id.consistent"),
    Case("done_id_differs_from_added", _done_id_differs, "stream.item.done_matches_added"),
    Case("delta_altered", _delta_altered, "stream.delta.accumulates"),
    Case("content_part_done_differs", _part_done_differs, "stream.part.done_matches"),
    Case("output_item_done_content_differs", _item_done_content_differs,
         "stream.item.done_content"),
    Case("terminal_output_differs", _terminal_output_differs, "stream.output.matches_items"),
    Case("error_not_followed_by_failed", _error_not_followed_by_failed,
         "stream.error.then_failed"),
    Case("error_not_followed_by_failed_openresponses",
         lambda ev: _with_done(_error_not_followed_by_failed(ev)), "stream.error.then_failed",
         profile="openresponses"),
    Case("wrong_content_type", lambda ev: ev, "sse.content_type",
         content_type="application/json"),
    Case("event_field_differs", _event_field_differs, "sse.event_field.matches_type"),
    Case("event_field_differs_openresponses", lambda ev: _with_done(_event_field_differs(ev)),
         "sse.event_field.matches_type", profile="openresponses"),
    Case("non_json_data", _non_json_data, "sse.data.json"),
    Case("unknown_type_openai", _unknown_type("response.foo"), "schema.event.known_type"),
    Case("unprefixed_type_openresponses", lambda ev: _with_done(_unknown_type("foo")(ev)),
         "schema.event.known_type", profile="openresponses"),
    # The int delta cannot be appended to the text the client accumulates, so the deltas no
    # longer spell output_text.done's text: both checks are right to fire.
    Case("delta_is_int", _delta_int, "schema.event", also=frozenset({"stream.delta.accumulates"})),
    Case("logprobs_wrong_type", _logprobs_wrong_type, "schema.event"),
    Case("done_sentinel_openai", _with_done, "sse.done_sentinel"),
    Case("done_sentinel_missing_openresponses", lambda ev: ev, "sse.done_sentinel",
         profile="openresponses"),
    Case("frame_after_done_openresponses", lambda ev: _frame_after_done(ev), "sse.done_sentinel",
         profile="openresponses"),
    Case("missing_in_progress", _drop("response.in_progress"), "stream.in_progress.present"),
    Case("incomplete_without_details", _incomplete_without_details,
         "response.incomplete_details"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_planted_violation(case: Case):
    events = message_stream()
    frames = case.plant(copy.deepcopy(events))
    log = fired(to_sse(frames), case.profile, content_type=case.content_type)
    ids = {f.check for f in log.findings}
    assert case.expect in ids, [(f.check, f.message) for f in log.findings]
    musts = must_ids(log, case.profile)
    assert musts <= {case.expect} | case.also, [(f.check, f.message) for f in log.findings]
    assert case.also <= ids


def test_every_stream_check_is_planted():
    """Every stream.*/sse.*/schema.event* check id in the catalogue has a planted case (or is
    covered by test_sse.py), so a new check cannot land without a test."""
    from test_stream_consistency import MUTANTS  # the cross-event consistency rules

    planted = {c.expect for c in CASES} | {check for _, _, check in MUTANTS.values()}
    sse_tests = {"sse.utf8", "sse.line_endings.lf", "sse.data.single_line",
                 "sse.frame.terminated", "sse.limits",
                 "stream.replay.start", "stream.replay.matches"}  # and test_stream_replay.py
    catalogue = load_catalogue("openai").checks
    stream_checks = {c for c in catalogue if c.split(".")[0] in ("stream", "sse")
                     or c.startswith("schema.event")}
    # schema.event.spec_name needs a reasoning stream under another implementation's names:
    # tests/unit/test_spec_rules.py plants it.
    missing = stream_checks - planted - sse_tests - {"stream.created.in_progress",
                                                     "stream.item.grammar",
                                                     "schema.event.spec_name"}
    assert not missing


# -- the checks the table above does not reach --------------------------------------------
def test_created_not_in_progress_is_should():
    ev = message_stream()
    ev[0]["response"]["status"] = "completed"
    log = fired(to_sse(ev))
    assert {f.check for f in log.findings} == {"stream.created.in_progress"}
    assert must_ids(log, "openai") == set()


def test_delta_after_part_done_is_grammar():
    ev = message_stream()
    i = index_of(ev, "response.content_part.done", 0)
    late = copy.deepcopy(ev[index_of(ev, "response.output_text.delta", 0)])
    late["delta"] = ""
    ev.insert(i + 1, late)
    log = fired(to_sse(renumber(ev)))
    assert must_ids(log, "openai") == {"stream.item.grammar"}


def test_open_part_at_item_done_is_grammar():
    ev = message_stream()
    del ev[index_of(ev, "response.content_part.done", 0)]
    log = fired(to_sse(renumber(ev)))
    assert must_ids(log, "openai") == {"stream.item.grammar"}


def test_item_never_done_is_lifecycle():
    ev = message_stream()
    del ev[index_of(ev, "response.output_item.done", 1)]
    log = fired(to_sse(renumber(ev)))
    # An item that is never closed has no final form, so the terminal output (which lists it,
    # or omits it) cannot equal the closed items either: both checks fire, inevitably.
    assert must_ids(log, "openai") == {"stream.item.lifecycle", "stream.output.matches_items"}


def test_openresponses_prefixed_extension_allowed():
    ev = message_stream()
    ev.insert(3, {"type": "acme:foo", "anything": [1, 2]})
    log = fired(to_sse(renumber(ev), done=True), "openresponses")
    assert log.findings == []


def test_openresponses_reasoning_alias():
    """response.reasoning.delta/.done (Open Responses names) are judged as reasoning_text."""
    ev = message_stream()
    # A reasoning item before the message, with raw reasoning text streamed under the alias.
    rid = "rs_0123"
    reasoning = [
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": rid, "type": "reasoning", "summary": []}},
        {"type": "response.reasoning.delta", "item_id": rid, "output_index": 0,
         "content_index": 0, "delta": "think"},
        {"type": "response.reasoning.delta", "item_id": rid, "output_index": 0,
         "content_index": 0, "delta": "ing"},
        {"type": "response.reasoning.done", "item_id": rid, "output_index": 0,
         "content_index": 0, "text": "thinking"},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {"id": rid, "type": "reasoning", "summary": [], "status": "completed"}},
    ]
    for e in ev:
        if "output_index" in e:
            e["output_index"] += 1
    ev[-1]["response"]["output"].insert(0, reasoning[-1]["item"])
    ev[2:2] = reasoning
    log = fired(to_sse(renumber(ev), done=True), "openresponses")
    assert log.findings == []
    # ...and an altered aliased delta is caught by the accumulation check.
    ev[index_of(ev, "response.reasoning.delta", 1)]["delta"] = "ink"
    log = fired(to_sse(ev, done=True), "openresponses")
    assert must_ids(log, "openresponses") == {"stream.delta.accumulates"}


def test_empty_stream():
    log = fired(b"")
    assert must_ids(log, "openai") == {"stream.terminal.present"}


def test_finding_evidence_points_at_the_frame():
    ev = message_stream()
    k = index_of(ev, "response.output_text.done", 0)
    ev[k]["text"] = "Hello, world?"
    ev[k + 1]["part"]["text"] = "Hello, world?"
    ev[k + 2]["item"]["content"][0]["text"] = "Hello, world?"
    ev[-1]["response"]["output"][0]["content"][0]["text"] = "Hello, world?"
    log = fired(to_sse(ev))
    (finding,) = log.findings
    assert finding.check == "stream.delta.accumulates"
    assert finding.evidence["frame"] == k
    assert finding.evidence["sequence_number"] == k
    assert finding.evidence["path"] == "$.text"
    assert finding.evidence["expected"] == "Hello, world!"


def test_findings_capped_but_counted():
    ev = message_stream([["x"] * 50])
    for e in ev[5:]:
        e["sequence_number"] += 5 + e["sequence_number"]  # every step off
    log = fired(to_sse(ev))
    assert log.counts["stream.sequence.contiguous"] > FindingLog.MAX_PER_CHECK
    assert sum(f.check == "stream.sequence.contiguous" for f in log.findings) \
        == FindingLog.MAX_PER_CHECK


def test_chunking_does_not_change_verdict():
    ev = message_stream()
    ev[index_of(ev, "response.output_text.delta", 1)]["delta"] = ";"
    body = to_sse(ev)
    whole = [(f.check, f.evidence.get("frame")) for f in fired(body).findings]
    bytewise = [(f.check, f.evidence.get("frame"))
                for f in fired(body, chunks=[body[i:i + 7] for i in range(0, len(body), 7)]).findings]
    assert whole == bytewise == [("stream.delta.accumulates", index_of(ev, "response.output_text.done", 0))]


def test_decode_then_feed_matches_judge():
    body = to_sse(message_stream())
    frames, log = decode_all(body)
    checker = StreamChecker("openai", log=log)
    checker.headers(200, "text/event-stream; charset=utf-8")
    checker.feed_all(frames)
    checker.close()
    assert log.findings == []


def test_terminal_response_without_output_is_still_judged():
    """Regression: the terminal Response object was only checked when it had output items, so
    an empty-output response.incomplete without incomplete_details passed."""
    ev = message_stream([])
    ev[-1]["type"] = "response.incomplete"
    ev[-1]["response"]["status"] = "incomplete"
    log = fired(to_sse(ev))
    assert must_ids(log, "openai") == {"response.incomplete_details"}
    ev = message_stream([])
    ev[-1]["response"]["usage"]["total_tokens"] = 1
    log = fired(to_sse(ev))
    assert {f.check for f in log.findings} == {"response.usage.consistent"}


def test_schema_checks_not_applied_without_schemas():
    """With validate_schemas=False, schema.* is not judged and so must not count as passed."""
    checker = StreamChecker("openai", validate_schemas=False)
    for event in message_stream():
        checker.event(event)
    checker.close()
    assert checker.log.findings == []
    assert "stream.sequence.contiguous" in checker.log.applied
    assert not {c for c in checker.log.applied if c.startswith("schema.")}


def _matches_items_finding(ev) -> Any:
    log = fired(to_sse(ev))
    found = [f for f in log.findings if f.check == "stream.output.matches_items"]
    return found[0] if found else None


def test_output_null_key_absent_from_streamed_item_is_named():
    """A key the terminal output has as null and the streamed item lacks (vllm-responses'
    mcp_call ``error``, reports/vllm-responses.md) is named, with the side it is missing from;
    it once read "item 1 differs in []" with a path to the whole item."""
    ev = message_stream()
    ev[-1]["response"]["output"][1]["error"] = None
    finding = _matches_items_finding(ev)
    assert finding is not None
    assert "differs in ['error'] (error absent from the streamed item)" in finding.message
    assert finding.evidence["path"] == "$.response.output[1].error"

    ev = message_stream()  # the other way round: the streamed item has it, the output not
    ev[index_of(ev, "response.output_item.done", 1)]["item"]["error"] = None
    finding = _matches_items_finding(ev)
    assert finding is not None and "(error absent from the output)" in finding.message

    assert _matches_items_finding(message_stream()) is None  # equal items: no finding


def test_output_value_difference_names_the_key_without_absence_note():
    ev = message_stream()
    ev[-1]["response"]["output"][1]["status"] = "incomplete"
    finding = _matches_items_finding(ev)
    assert finding is not None
    assert finding.message.endswith("item 1 differs in ['status']")
