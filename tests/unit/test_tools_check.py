"""harness/core/tools.py ``check_tool_calls``: a Response's function calls judged against the request.

Every case starts from a correct (response, request) pair, plants ONE violation and asserts that
exactly the intended check fails; the correct pair gives no finding for any check.
"""

from __future__ import annotations

import copy

import pytest

from harness.core.findings import FindingLog
from harness.core.tools import check_tool_calls, function_calls
from harness.core.verdict import judge_exchange
from tool_stream_builder import (TIME_PARAMS, TOOLS, WEATHER_PARAMS, Call, Text, exchange,
                                 function_tool, tool_response)

WEATHER = Call()
TIME = Call("get_time", "call_time0002", ('{"tz": "UTC"}',))
REQUEST = {"model": "gpt-test", "input": "Weather in Paris?", "tools": TOOLS}


def judge(response, request) -> FindingLog:
    log = FindingLog()
    check_tool_calls(response, request, log)
    return log


def failed(response, request) -> set[str]:
    return {f.check for f in judge(response, request).findings}


def req(**kw):
    return dict(copy.deepcopy(REQUEST), **kw)


# -- correct ---------------------------------------------------------------------------------
@pytest.mark.parametrize("items,request_", [
    ([WEATHER], REQUEST),
    ([WEATHER, TIME], REQUEST),
    ([Text(), WEATHER], REQUEST),
    ([Text()], REQUEST),                                               # auto: no call is fine
    ([Text()], req(tool_choice="none")),
    ([WEATHER], req(tool_choice="required")),
    ([WEATHER, TIME], req(tool_choice="required")),
    ([TIME], req(tool_choice={"type": "function", "name": "get_time"})),
    ([TIME, TIME.__class__("get_time", "call_t2", ('{"tz": "CET"}',))],
     req(tool_choice={"type": "function", "name": "get_time"})),
    ([TIME], req(tool_choice={"type": "allowed_tools", "mode": "auto",
                              "tools": [{"type": "function", "name": "get_time"}]})),
    ([Text()], req(tool_choice={"type": "allowed_tools", "mode": "auto",
                                "tools": [{"type": "function", "name": "get_time"}]})),
    ([TIME], req(tool_choice={"type": "allowed_tools", "mode": "required",
                              "tools": [{"type": "function", "name": "get_time"}]})),
    ([WEATHER], req(parallel_tool_calls=False)),
    ([WEATHER, TIME], req(parallel_tool_calls=True)),
])
def test_correct_calls_have_no_findings(items, request_):
    log = judge(tool_response(items), request_)
    assert log.findings == []
    assert {"tools.choice", "tools.call.known_function"} <= log.applied


def test_correct_call_applies_every_call_check():
    log = judge(tool_response([WEATHER, TIME]), REQUEST)
    assert log.applied == {"tools.choice", "tools.call.known_function", "tools.call_id.distinct",
                           "tools.arguments.json", "tools.arguments.schema"}


def test_nothing_applied_without_tools_or_calls():
    log = judge(tool_response([Text()]), {"model": "m", "input": "hi"})
    assert log.applied == set() and log.findings == []


@pytest.mark.parametrize("response,request_", [(None, REQUEST), (tool_response(), None),
                                               ("not a dict", REQUEST), (tool_response(), [])])
def test_missing_response_or_request_is_not_judged(response, request_):
    log = judge(response, request_)
    assert log.applied == set() and log.findings == []


def test_function_calls_lists_only_function_call_items():
    response = tool_response([Text(), WEATHER, TIME])
    assert [(i, it["name"]) for i, it in function_calls(response)] == [(1, "get_weather"),
                                                                      (2, "get_time")]
    assert function_calls(None) == [] and function_calls({"output": None}) == []


# -- planted violations, one at a time -------------------------------------------------------
def _set(response, n, **fields):
    response["output"][n].update(fields)
    return response


CASES = {
    # call ids
    "duplicate_call_id": (lambda: _set(tool_response([WEATHER, TIME]), 1,
                                       call_id=WEATHER.call_id), REQUEST,
                          {"tools.call_id.distinct"}),
    "duplicate_call_id_after_text": (lambda: _set(tool_response([WEATHER, Text(), TIME]), 2,
                                                  call_id=WEATHER.call_id), REQUEST,
                                     {"tools.call_id.distinct"}),
    # names
    "unknown_function": (lambda: _set(tool_response(), 0, name="get_stock"), REQUEST,
                         {"tools.call.known_function"}),
    "call_without_tools_offered": (lambda: tool_response(), {"model": "m", "input": "hi"},
                                   {"tools.call.known_function"}),
    "call_name_not_a_string": (lambda: _set(tool_response(), 0, name=["get_weather"]), REQUEST,
                               {"tools.call.known_function"}),
    # arguments: JSON
    "arguments_truncated": (lambda: _set(tool_response(), 0, arguments='{"city": "Paris"'),
                            REQUEST, {"tools.arguments.json"}),
    "arguments_empty": (lambda: _set(tool_response(), 0, arguments=""), REQUEST,
                        {"tools.arguments.json"}),
    "arguments_array": (lambda: _set(tool_response(), 0, arguments='["Paris", "c"]'), REQUEST,
                        {"tools.arguments.json"}),
    "arguments_string": (lambda: _set(tool_response(), 0, arguments='"Paris"'), REQUEST,
                         {"tools.arguments.json"}),
    "arguments_object_not_string": (lambda: _set(tool_response(), 0,
                                                 arguments={"city": "Paris", "unit": "c"}),
                                    REQUEST, {"tools.arguments.json"}),
    "arguments_nan": (lambda: _set(tool_response(), 0, arguments='{"city": NaN, "unit": "c"}'),
                      REQUEST, {"tools.arguments.json"}),
    # arguments: strict schema
    "arguments_missing_required": (lambda: _set(tool_response(), 0, arguments='{"city": "P"}'),
                                   REQUEST, {"tools.arguments.schema"}),
    "arguments_extra_property": (lambda: _set(tool_response(), 0, arguments=(
        '{"city": "P", "unit": "c", "country": "FR"}')), REQUEST, {"tools.arguments.schema"}),
    "arguments_bad_enum": (lambda: _set(tool_response(), 0,
                                        arguments='{"city": "P", "unit": "kelvin"}'),
                           REQUEST, {"tools.arguments.schema"}),
    "arguments_wrong_type": (lambda: _set(tool_response(), 0,
                                          arguments='{"city": 75001, "unit": "c"}'),
                             REQUEST, {"tools.arguments.schema"}),
    # tool_choice
    "none_but_called": (lambda: tool_response(), req(tool_choice="none"), {"tools.choice"}),
    "required_but_text": (lambda: tool_response([Text()]), req(tool_choice="required"),
                          {"tools.choice"}),
    "forced_other_function": (lambda: tool_response([WEATHER]),
                              req(tool_choice={"type": "function", "name": "get_time"}),
                              {"tools.choice"}),
    "forced_but_text": (lambda: tool_response([Text()]),
                        req(tool_choice={"type": "function", "name": "get_time"}),
                        {"tools.choice"}),
    "forced_plus_extra_call": (lambda: tool_response([TIME, WEATHER]),
                               req(tool_choice={"type": "function", "name": "get_time"}),
                               {"tools.choice"}),
    "allowed_tools_stray": (lambda: tool_response([WEATHER]),
                            req(tool_choice={"type": "allowed_tools", "mode": "auto",
                                             "tools": [{"type": "function", "name": "get_time"}]}),
                            {"tools.choice"}),
    "allowed_tools_required_but_text": (
        lambda: tool_response([Text()]),
        req(tool_choice={"type": "allowed_tools", "mode": "required",
                         "tools": [{"type": "function", "name": "get_time"}]}),
        {"tools.choice"}),
    "parallel_false_two_calls": (lambda: tool_response([WEATHER, TIME]),
                                 req(parallel_tool_calls=False), {"tools.choice"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_violation(case):
    make, request_, expected = CASES[case]
    assert failed(make(), request_) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_violation_through_judge_exchange(case):
    """Same verdict for a non-streamed body judged as the runner judges it (schema aside)."""
    make, request_, expected = CASES[case]
    judged = judge_exchange(exchange(make()), "openai", request=request_)
    got = {f.check for f in judged.log.findings} - {"schema.response"}
    assert got == expected


# -- details ---------------------------------------------------------------------------------
def test_non_strict_tool_is_not_schema_checked():
    tools = [function_tool("get_weather", WEATHER_PARAMS, strict=False),
             function_tool("get_time", TIME_PARAMS, strict=None)]
    response = tool_response([Call(deltas=('{"city": 1}',)),
                              Call("get_time", "call_t", ('{"zone": 2}',))], tools=tools)
    log = judge(response, req(tools=tools))
    assert log.findings == []
    assert "tools.arguments.schema" not in log.applied
    # ... but the same arguments to the strict tools fail the schema rule.
    assert failed(tool_response([Call(deltas=('{"city": 1}',))]), REQUEST) == {
        "tools.arguments.schema"}


def test_strict_tool_with_invalid_own_schema_is_not_judged():
    tools = [function_tool("get_weather", {"type": "no-such-type"})]
    log = judge(tool_response(tools=tools), req(tools=tools))
    assert log.findings == []


def test_not_judged_on_incomplete_or_failed_response():
    for status in ("incomplete", "failed"):
        response = tool_response([Text()])
        response["status"] = status
        log = judge(response, req(tool_choice="required"))
        assert log.findings == []
        assert "tools.choice" not in log.applied, status


def test_incomplete_response_still_judged_on_call_shape():
    response = tool_response(status="incomplete")
    _set(response, 0, arguments="{")
    assert failed(response, REQUEST) == {"tools.arguments.json"}


def test_two_violations_in_one_response_each_reported():
    response = tool_response([WEATHER, TIME])
    _set(response, 0, name="nope")
    _set(response, 1, call_id=WEATHER.call_id)
    assert failed(response, REQUEST) == {"tools.call.known_function", "tools.call_id.distinct"}


def test_evidence_paths():
    response = _set(tool_response([Text(), WEATHER, TIME]), 2, call_id=WEATHER.call_id,
                    arguments="{")
    log = FindingLog()
    check_tool_calls(response, REQUEST, log, path_prefix="$.response")
    paths = {f.check: f.evidence["path"] for f in log.findings}
    assert paths == {"tools.call_id.distinct": "$.response.output[2].call_id",
                     "tools.arguments.json": "$.response.output[2].arguments"}


def test_unhashable_fields_do_not_crash():
    """A malformed server answer (schema.response reports it) must not crash the judge."""
    response = tool_response([WEATHER, TIME])
    _set(response, 0, call_id={"id": 1}, name=["get_weather"])
    _set(response, 1, call_id={"id": 1})
    assert failed(response, REQUEST) == {"tools.call_id.distinct", "tools.call.known_function"}
    choice = {"type": "allowed_tools", "mode": "auto",
              "tools": [{"type": "function", "name": "get_time"}, {"type": "function"}]}
    assert failed(_set(tool_response([WEATHER]), 0, name=["x"]), req(tool_choice=choice)) == {
        "tools.call.known_function", "tools.choice"}


# -- namespace tools (SDK 3.54 NamespaceToolParam; Codex sends them) ------------------------------
NAMESPACED = {"type": "namespace", "name": "crm", "description": "d",
              "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]}


def _call(name: str, namespace: str | None) -> dict:
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": "{}",
            "status": "completed"}
    if namespace is not None:
        item["namespace"] = namespace
    return item


@pytest.mark.parametrize("name, namespace, bad", [("lookup", "crm", False), ("lookup", None, True),
                                                  ("lookup", "other", True), ("crm", None, True)])
def test_a_call_to_a_namespaced_function_must_name_its_namespace(name, namespace, bad):
    response = {"output": [_call(name, namespace)]}
    found = failed(response, {"model": "m", "input": "x", "tools": [NAMESPACED]})
    assert ("tools.call.known_function" in found) is bad, found
