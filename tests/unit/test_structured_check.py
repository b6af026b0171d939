"""harness/core/structured.py: ``output_text()`` and ``check_structured`` (structured.output.json,
structured.output.schema)."""

from __future__ import annotations

import copy
import json

import pytest

from harness.core.findings import FindingLog
from harness.core.structured import check_structured, output_text
from harness.core.verdict import judge_exchange
from stream_builder import message_stream
from tool_stream_builder import Call, Text, exchange, stream_exchange, tool_response, tool_stream

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"model": "m", "input": "x",
               "text": {"format": {"type": "json_schema", "name": "person", "schema": SCHEMA,
                                   "strict": True}}}
JSON_OBJECT = {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}
GOOD = '{"name": "Ada", "age": 36}'


def response_with(*texts: str, status: str = "completed") -> dict:
    """A Response whose output is one message per text (split in two deltas each)."""
    msgs = [(t[: len(t) // 2], t[len(t) // 2:]) for t in texts]
    terminal = "response.completed" if status == "completed" else "response.incomplete"
    return copy.deepcopy(message_stream(msgs, terminal=terminal)[-1]["response"])


def judge(response, request) -> FindingLog:
    log = FindingLog()
    check_structured(response, request, log)
    return log


def failed(response, request) -> set[str]:
    return {f.check for f in judge(response, request).findings}


def schema_request(**fmt) -> dict:
    r = copy.deepcopy(JSON_SCHEMA)
    r["text"]["format"].update(fmt)
    return r


# -- output_text -----------------------------------------------------------------------------
def test_output_text_concatenates_output_text_parts_of_all_messages():
    response = response_with('{"name": ', '"Ada", "age": 36}')
    assert output_text(response) == GOOD


def test_output_text_skips_other_items_and_parts():
    response = response_with("A", "B")
    response["output"][0]["content"].append({"type": "refusal", "refusal": "no"})
    response["output"][0]["content"].append({"type": "output_text", "text": None})
    response["output"].insert(1, {"type": "function_call", "arguments": "{}", "content": [
        {"type": "output_text", "text": "not a message"}]})
    response["output"].insert(0, {"type": "reasoning", "summary": []})
    response["output"].append("garbage")
    assert output_text(response) == "AB"


def test_output_text_of_empty_response():
    assert output_text({}) == "" and output_text({"output": None}) == ""


# -- correct ---------------------------------------------------------------------------------
@pytest.mark.parametrize("texts,request_", [
    ((GOOD,), JSON_SCHEMA),
    (('{"name": "Ada",', ' "age": 36}'), JSON_SCHEMA),  # JSON split over two messages
    ((" \n" + GOOD + "\n",), JSON_SCHEMA),  # surrounding whitespace is still JSON
    ((GOOD,), JSON_OBJECT),
    (('{"anything": [1, 2, {"x": null}]}',), JSON_OBJECT),
])
def test_correct_output_has_no_findings(texts, request_):
    log = judge(response_with(*texts), request_)
    assert log.findings == []
    assert "structured.output.json" in log.applied
    assert ("structured.output.schema" in log.applied) == (
        request_["text"]["format"]["type"] == "json_schema")


# -- planted violations ----------------------------------------------------------------------
CASES = {
    "schema_not_json": (("Sure! Here it is: " + GOOD,), JSON_SCHEMA, {"structured.output.json"}),
    "schema_truncated": (('{"name": "Ada", "age"',), JSON_SCHEMA, {"structured.output.json"}),
    "schema_empty_text": (("",), JSON_SCHEMA, {"structured.output.json"}),
    "schema_nan": (('{"name": "Ada", "age": NaN}',), JSON_SCHEMA, {"structured.output.json"}),
    "schema_fenced": (("```json\n" + GOOD + "\n```",), JSON_SCHEMA, {"structured.output.json"}),
    "object_not_json": (("name: Ada",), JSON_OBJECT, {"structured.output.json"}),
    "schema_missing_required": (('{"name": "Ada"}',), JSON_SCHEMA, {"structured.output.schema"}),
    "schema_wrong_type": (('{"name": "Ada", "age": "36"}',), JSON_SCHEMA,
                          {"structured.output.schema"}),
    "schema_extra_property": (('{"name": "Ada", "age": 36, "x": 1}',), JSON_SCHEMA,
                              {"structured.output.schema"}),
    "schema_not_an_object": (('["Ada", 36]',), JSON_SCHEMA, {"structured.output.schema"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_violation(case):
    texts, request_, expected = CASES[case]
    assert failed(response_with(*texts), request_) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_violation_through_judge_exchange(case):
    texts, request_, expected = CASES[case]
    judged = judge_exchange(exchange(response_with(*texts)), "openai", request=request_)
    assert {f.check for f in judged.log.findings} == expected


def test_planted_violation_in_a_stream():
    events = message_stream([('{"name": ', '"Ada"}')])
    judged = judge_exchange(stream_exchange(events), "openai", request=JSON_SCHEMA)
    assert {f.check for f in judged.log.findings} == {"structured.output.schema"}


def test_schema_error_names_the_json_path():
    log = judge(response_with('{"name": "Ada", "age": "36"}'), JSON_SCHEMA)
    (finding,) = log.findings
    assert "$.age" in finding.message and finding.evidence["path"] == "$.output"


# -- when it is not judged -------------------------------------------------------------------
def test_non_strict_schema_checks_json_only():
    for strict in (False, None):
        log = judge(response_with('{"name": "Ada"}'), schema_request(strict=strict))
        assert log.findings == []
        assert "structured.output.schema" not in log.applied
        assert "structured.output.json" in log.applied
    assert failed(response_with("nope"), schema_request(strict=False)) == {
        "structured.output.json"}


@pytest.mark.parametrize("request_", [
    {"model": "m", "input": "x"},
    {"model": "m", "input": "x", "text": {"format": {"type": "text"}}},
    {"model": "m", "input": "x", "text": {"verbosity": "low"}},
    {"model": "m", "input": "x", "text": None},
    {"model": "m", "input": "x", "text": {"format": "json_object"}},
    None,
])
def test_not_applied_without_a_json_format(request_):
    log = judge(response_with("plain words"), request_)
    assert log.applied == set() and log.findings == []


@pytest.mark.parametrize("status", ["incomplete", "failed", "in_progress"])
def test_not_judged_unless_completed(status):
    response = response_with('{"name": "Ada", "ag')
    response["status"] = status
    log = judge(response, JSON_SCHEMA)
    assert log.applied == set() and log.findings == []


def test_not_judged_on_a_turn_that_calls_a_tool():
    response = tool_response([Text(("I will look it up",)), Call()])
    log = judge(response, dict(JSON_SCHEMA, tools=[]))
    assert log.applied == set() and log.findings == []
    events = tool_stream([Call()])
    judged = judge_exchange(stream_exchange(events), "openai",
                            request=dict(JSON_SCHEMA, tools=events[-1]["response"]["tools"]))
    assert judged.log.findings == []
    assert "structured.output.json" not in judged.log.applied


def test_not_judged_on_a_refusal():
    """With strict structured output the model may refuse: a refusal part, no output_text."""
    response = response_with("x")
    response["output"][0]["content"] = [{"type": "refusal", "refusal": "I can't help."}]
    log = judge(response, JSON_SCHEMA)
    assert log.findings == [] and log.applied == set()


def test_invalid_request_schema_is_not_judged():
    log = judge(response_with(GOOD), schema_request(schema={"type": "no-such-type"}))
    assert log.findings == []
    assert json.loads(GOOD)  # sanity: the text itself was JSON
