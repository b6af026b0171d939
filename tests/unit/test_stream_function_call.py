"""StreamChecker on function_call items: a correct tool-calling stream gives no findings; each
planted violation fires exactly the check that claims it.

Stream rules (harness/core/stream.py): ``tools.arguments.added_empty``, ``tools.call_id.stable``, and
the generic delta accumulator for ``response.function_call_arguments.delta -> .done``
(``stream.delta.accumulates``). The response-level tool checks (harness/core/tools.py) are run on the
same streams through ``judge_exchange(..., request=...)``, as the runner runs them.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest
from pydantic import TypeAdapter

from harness.core.catalogue import load_catalogue
from harness.core.verdict import judge_exchange, judge_stream_body
from stream_builder import index_of, renumber, to_sse
from tool_stream_builder import TOOLS, Call, Text, stream_exchange, tool_stream

REQUEST = {"model": "gpt-test", "input": "Weather in Paris?", "tools": TOOLS, "stream": True}

ITEM_MIXES = {
    "one_call": [Call()],
    "text_then_call": [Text(), Call()],
    "two_calls": [Call(), Call("get_time", "call_time0002", ('{"tz"', ': "UTC"}'))],
    "one_delta": [Call(deltas=('{"city": "Oslo", "unit": "f"}',))],
    "empty_deltas": [Call(deltas=("", '{"city": "Rome", ', "", '"unit": "c"}'))],
    "unicode_args": [Call(deltas=('{"city": "Zü', 'rich 😀", "unit": "c"}'))],
}


def fired(events: list[dict[str, Any]]) -> set[str]:
    return {f.check for f in judge_stream_body(to_sse(events), "openai").log.findings}


def fired_with_request(events, request=REQUEST) -> set[str]:
    judged = judge_exchange(stream_exchange(events), "openai", request=request)
    return {f.check for f in judged.log.findings}


# -- the good streams ------------------------------------------------------------------------
@pytest.mark.parametrize("mix", sorted(ITEM_MIXES))
@pytest.mark.parametrize("terminal", ["response.completed", "response.incomplete"])
def test_builder_events_are_sdk_typed(mix, terminal):
    from openai.types.responses import ResponseStreamEvent

    adapter = TypeAdapter(ResponseStreamEvent)
    for event in tool_stream(ITEM_MIXES[mix], terminal=terminal):
        assert adapter.validate_python(event).type == event["type"]


@pytest.mark.parametrize("mix", sorted(ITEM_MIXES))
@pytest.mark.parametrize("terminal", ["response.completed", "response.incomplete"])
def test_good_tool_stream_has_no_findings(mix, terminal):
    events = tool_stream(ITEM_MIXES[mix], terminal=terminal)
    judged = judge_exchange(stream_exchange(events), "openai", request=REQUEST)
    assert judged.log.findings == []
    for check in ("tools.arguments.added_empty", "tools.call_id.stable",
                  "stream.delta.accumulates", "tools.call_id.distinct", "tools.arguments.json",
                  "tools.arguments.schema", "tools.call.known_function"):
        assert check in judged.log.applied, check
    # tools.choice is judged on completed responses only.
    assert ("tools.choice" in judged.log.applied) == (terminal == "response.completed")


def test_message_only_stream_does_not_apply_function_call_rules():
    judged = judge_stream_body(to_sse(tool_stream([Text()])), "openai")
    assert judged.log.findings == []
    assert "tools.arguments.added_empty" not in judged.log.applied
    assert "tools.call_id.stable" not in judged.log.applied


def test_added_arguments_null_is_tolerated_by_the_rule():
    """arguments: null is not a non-empty string; the SDK type rejects it (schema.event), but
    tools.arguments.added_empty only fires for text the deltas would be appended to."""
    events = tool_stream()
    events[index_of(events, "response.output_item.added")]["item"]["arguments"] = None
    assert fired(events) == {"schema.event"}


# -- planted violations ------------------------------------------------------------------------
def _added(ev, n=0):
    return ev[index_of(ev, "response.output_item.added", n)]["item"]


def _done(ev, n=0):
    return ev[index_of(ev, "response.output_item.done", n)]["item"]


def added_with_arguments(ev):
    _added(ev)["arguments"] = '{"city":'
    return ev


def added_with_full_arguments(ev):
    _added(ev)["arguments"] = '{"city": "Paris", "unit": "c"}'
    return ev


def added_call_id_empty(ev):
    _added(ev)["call_id"] = ""
    return ev


def added_call_id_missing(ev):
    del _added(ev)["call_id"]
    return ev


def done_call_id_changes(ev):
    # Changed in output_item.done AND in the terminal output, so only the stability rule fires.
    _done(ev)["call_id"] = "call_other"
    ev[-1]["response"]["output"][0]["call_id"] = "call_other"
    return ev


def done_call_id_changes_only_in_done(ev):
    _done(ev)["call_id"] = "call_other"
    return ev


def final_call_id_changes(ev):
    ev[-1]["response"]["output"][0]["call_id"] = "call_other"
    return ev


def argument_delta_altered(ev):
    ev[index_of(ev, "response.function_call_arguments.delta", 1)]["delta"] = ' "Lyon",'
    return ev


def arguments_done_differs(ev):
    ev[index_of(ev, "response.function_call_arguments.done")]["arguments"] = '{"city": "Paris"}'
    return ev


def argument_delta_dropped(ev):
    del ev[index_of(ev, "response.function_call_arguments.delta", 2)]
    return renumber(ev)


def argument_delta_after_done(ev):
    i = index_of(ev, "response.function_call_arguments.done")
    extra = copy.deepcopy(ev[i - 1])
    extra["delta"] = ""  # empty: accumulation itself is unaffected
    ev.insert(i + 1, extra)
    return renumber(ev)


def second_arguments_done(ev):
    i = index_of(ev, "response.function_call_arguments.done")
    ev.insert(i + 1, copy.deepcopy(ev[i]))
    return renumber(ev)


def argument_delta_wrong_item_id(ev):
    ev[index_of(ev, "response.function_call_arguments.delta", 0)]["item_id"] = "fc_not_added"
    return ev


STREAM_CASES: dict[str, tuple[Callable, set[str]]] = {
    "added_with_arguments": (added_with_arguments, {"tools.arguments.added_empty"}),
    "added_with_full_arguments": (added_with_full_arguments, {"tools.arguments.added_empty"}),
    "added_call_id_empty": (added_call_id_empty, {"tools.call_id.stable"}),
    # The SDK type requires call_id, so the schema check fires as well.
    "added_call_id_missing": (added_call_id_missing, {"tools.call_id.stable", "schema.event"}),
    "done_call_id_changes": (done_call_id_changes, {"tools.call_id.stable"}),
    # The terminal output then differs from the done item too.
    "done_call_id_changes_only_in_done": (done_call_id_changes_only_in_done,
                                          {"tools.call_id.stable", "stream.output.matches_items"}),
    "final_call_id_changes": (final_call_id_changes, {"stream.output.matches_items"}),
    "argument_delta_altered": (argument_delta_altered, {"stream.delta.accumulates"}),
    "arguments_done_differs": (arguments_done_differs, {"stream.delta.accumulates"}),
    "argument_delta_dropped": (argument_delta_dropped, {"stream.delta.accumulates"}),
    "argument_delta_after_done": (argument_delta_after_done, {"stream.item.grammar"}),
    "second_arguments_done": (second_arguments_done, {"stream.item.grammar"}),
    # The delta's key differs from the done's, so its text is never joined: the item_id rule
    # and accumulation (the .done no longer sees that chunk) both fire.
    "argument_delta_wrong_item_id": (argument_delta_wrong_item_id,
                                     {"stream.item_id.consistent", "stream.delta.accumulates"}),
}


@pytest.mark.parametrize("case", sorted(STREAM_CASES))
def test_planted_stream_violation(case):
    plant, expected = STREAM_CASES[case]
    events = plant(tool_stream())
    assert fired(events) == expected


@pytest.mark.parametrize("case", sorted(STREAM_CASES))
def test_planted_ids_are_catalogued(case):
    catalogue = load_catalogue("openai")
    for check in STREAM_CASES[case][1]:
        assert catalogue.check(check).level in ("MUST", "SHOULD", "MAY")


@pytest.mark.parametrize("check", ["tools.arguments.added_empty", "tools.call_id.stable"])
def test_function_call_stream_rules_are_must(check):
    assert load_catalogue("openai").level(check) == "MUST"


def test_violation_in_second_call_names_its_frame():
    events = tool_stream(ITEM_MIXES["two_calls"])
    _added(events, 1)["arguments"] = "{"
    log = judge_stream_body(to_sse(events), "openai").log
    assert {f.check for f in log.findings} == {"tools.arguments.added_empty"}
    (finding,) = log.findings
    i = index_of(events, "response.output_item.added", 1)
    assert finding.evidence["sequence_number"] == events[i]["sequence_number"]
    assert finding.evidence["path"] == "$.item.arguments"


def test_call_id_change_evidence():
    log = judge_stream_body(to_sse(done_call_id_changes(tool_stream())), "openai").log
    (finding,) = log.findings
    assert finding.evidence["expected"] == "call_weather0001"
    assert finding.evidence["actual"] == "call_other"
    assert finding.evidence["path"] == "$.item.call_id"


def test_interleaved_calls_accumulate_per_item():
    """Deltas of two calls interleaved: each .done is judged against its own item's deltas."""
    events = tool_stream(ITEM_MIXES["two_calls"])
    assert fired(events) == set()
    # Changing the second call's delta only breaks the second call's accumulation.
    events[index_of(events, "response.function_call_arguments.delta", 4)]["delta"] = ': "CET"}'
    log = judge_stream_body(to_sse(events), "openai").log
    assert {f.check for f in log.findings} == {"stream.delta.accumulates"}
    assert log.findings[0].evidence["expected"] == '{"tz": "CET"}'


# -- response-level tool checks on streams (via judge_exchange) --------------------------------
def _rename_everywhere(ev, field, value, n=0):
    """Set a field of function_call item n in added, done and the terminal output alike."""
    _added(ev, n)[field] = value
    _done(ev, n)[field] = value
    ev[-1]["response"]["output"][n][field] = value
    return ev


EXCHANGE_CASES: dict[str, tuple[list, Callable | None, dict, set[str]]] = {
    "duplicate_call_id": (
        ITEM_MIXES["two_calls"], lambda ev: _rename_everywhere(ev, "call_id", "call_weather0001", 1),
        REQUEST, {"tools.call_id.distinct"}),
    "unknown_function": (
        [Call()], lambda ev: _rename_everywhere(ev, "name", "get_stock_price"),
        REQUEST, {"tools.call.known_function"}),
    "arguments_not_json": (
        [Call(deltas=('{"city": ', '"Paris"'))], None, REQUEST, {"tools.arguments.json"}),
    "arguments_not_object": (
        [Call(deltas=('["Paris",', ' "c"]'))], None, REQUEST, {"tools.arguments.json"}),
    "arguments_violate_strict_schema": (
        [Call(deltas=('{"city": ', '"Paris"}'))], None, REQUEST, {"tools.arguments.schema"}),
    "tool_choice_none_but_called": (
        [Call()], None, dict(REQUEST, tool_choice="none"), {"tools.choice"}),
    "forced_function_not_called": (
        [Call()], None, dict(REQUEST, tool_choice={"type": "function", "name": "get_time"}),
        {"tools.choice"}),
    "parallel_false_two_calls": (
        ITEM_MIXES["two_calls"], None, dict(REQUEST, parallel_tool_calls=False),
        {"tools.choice"}),
    "required_but_text": (
        [Text()], None, dict(REQUEST, tool_choice="required"), {"tools.choice"}),
}


@pytest.mark.parametrize("case", sorted(EXCHANGE_CASES))
def test_planted_tool_violation_in_stream(case):
    items, plant, request, expected = EXCHANGE_CASES[case]
    events = tool_stream(items)
    if plant is not None:
        events = plant(events)
    assert fired(events) == set()  # the stream itself is well-formed
    assert fired_with_request(events, request) == expected


def test_stream_tool_findings_point_into_the_terminal_response():
    events = _rename_everywhere(tool_stream(), "name", "get_stock_price")
    judged = judge_exchange(stream_exchange(events), "openai", request=REQUEST)
    (finding,) = judged.log.findings
    assert finding.evidence["path"] == "$.response.output[0].name"


def test_incomplete_stream_is_not_judged_on_tool_choice():
    events = tool_stream([Text()], terminal="response.incomplete")
    judged = judge_exchange(stream_exchange(events), "openai",
                            request=dict(REQUEST, tool_choice="required"))
    assert judged.log.findings == []
    assert "tools.choice" not in judged.log.applied


def test_without_request_no_tool_checks():
    judged = judge_exchange(stream_exchange(tool_stream()), "openai")
    assert judged.log.findings == []
    assert not {c for c in judged.log.applied if c.startswith("tools.")} - {
        "tools.arguments.added_empty", "tools.call_id.stable"}
