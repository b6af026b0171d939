"""harness/run/expect.py ``check_step``: the scenario expectations of multi-step scenarios.

Each test builds the Exchange the transport would have recorded, judges it with
``judge_exchange`` (as the runner does), then runs ``check_step`` into a fresh log so that only
the expectation checks are seen. A correct answer gives no finding; each planted difference
fires exactly the intended check.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from harness.run.expect import check_step
from harness.core.findings import FindingLog
from harness.run.scenario import Step
from harness.core.verdict import Judged, judge_exchange
from stream_builder import message_stream
from tool_stream_builder import TOOLS, Call, Text, exchange, stream_exchange, tool_response

RID = "resp_0123456789abcdef0123456789abcdef"


def text_response(*texts: str, status: str = "completed") -> dict[str, Any]:
    terminal = "response.completed" if status == "completed" else "response.incomplete"
    return copy.deepcopy(message_stream([(t,) for t in texts], terminal=terminal)[-1]["response"])


def step(name="s", method="POST", returns="response", json_body=None) -> Step:
    if json_body is None and method == "POST":
        json_body = {"model": "m", "input": "x"}
    return Step(name, method, "/responses", json_body=json_body, returns=returns)


def run(st: Step, exp: dict, body: Any, *, status: int = 200, earlier=None,
        request=None) -> tuple[FindingLog, Judged]:
    ex = exchange(body, status=status, method=st.method)
    judged = judge_exchange(ex, "openai", returns=st.returns, request=request)
    log = FindingLog()
    check_step(st, exp, ex, judged, log, earlier or {})
    return log, judged


def failed(log: FindingLog) -> set[str]:
    return {f.check for f in log.findings}


def judged_response(response: dict) -> Judged:
    return judge_exchange(exchange(response), "openai")


# -- same_as (state.retrieve.same) -----------------------------------------------------------
def test_same_as_equal():
    created = text_response("Hi")
    earlier = {"create": judged_response(created)}
    log, judged = run(step("get", "GET"), {"same_as": "create"}, copy.deepcopy(created),
                      earlier=earlier)
    assert judged.log.findings == []
    assert log.findings == [] and "state.retrieve.same" in log.applied


def test_same_as_equal_to_a_streamed_create():
    events = message_stream()
    earlier = {"create": judge_exchange(stream_exchange(events), "openai")}
    log, _ = run(step("get", "GET"), {"same_as": "create"},
                 copy.deepcopy(events[-1]["response"]), earlier=earlier)
    assert log.findings == []


@pytest.mark.parametrize("field,value", [("status", "incomplete"), ("usage", None),
                                         ("metadata", {"k": "v"}), ("output", [])])
def test_same_as_differs(field, value):
    created = text_response("Hi")
    retrieved = dict(copy.deepcopy(created), **{field: value})
    log, _ = run(step("get", "GET"), {"same_as": "create"}, retrieved,
                 earlier={"create": judged_response(created)})
    assert failed(log) == {"state.retrieve.same"}
    (finding,) = log.findings
    assert finding.evidence["path"] == f"$.{field}" and finding.evidence["actual"] == [field]


def test_same_as_field_missing():
    created = text_response("Hi")
    retrieved = copy.deepcopy(created)
    del retrieved["temperature"]
    log, _ = run(step("get", "GET"), {"same_as": "create"}, retrieved,
                 earlier={"create": judged_response(created)})
    assert failed(log) == {"state.retrieve.same"}
    assert log.findings[0].evidence["actual"] == ["temperature"]


# -- tool_calls (tools.choice) ---------------------------------------------------------------
WANT_ONE_WEATHER = {"min": 1, "max": 1, "names": ["get_weather"]}
TIME = Call("get_time", "call_t", ('{"tz": "UTC"}',))


@pytest.mark.parametrize("items,want", [
    ([Call()], WANT_ONE_WEATHER),
    ([Text(), Call()], WANT_ONE_WEATHER),
    ([Call(), TIME], {"min": 2}),
    ([Text()], {"max": 0}),
    ([Text()], {}),
    ([Call(), TIME], {"names": ["get_weather", "get_time"]}),
])
def test_tool_calls_met(items, want):
    log, _ = run(step(), {"tool_calls": want}, tool_response(items))
    assert log.findings == [] and "tools.choice" in log.applied


@pytest.mark.parametrize("items,want", [
    ([Text()], WANT_ONE_WEATHER),                  # too few
    ([Call(), Call(call_id="c2")], WANT_ONE_WEATHER),  # too many
    ([TIME], WANT_ONE_WEATHER),                    # wrong name
    ([Call()], {"max": 0}),
    ([Call(), TIME], {"names": ["get_weather"]}),
])
def test_tool_calls_not_met(items, want):
    log, _ = run(step(), {"tool_calls": want}, tool_response(items))
    assert failed(log) == {"tools.choice"}


def test_tool_calls_not_judged_from_a_non_response_body():
    st = step("list", "GET", returns="item_list")
    log, _ = run(st, {"tool_calls": {"min": 1}}, item_list([]))
    assert failed(log) == {"tools.choice"}  # no Response: no calls


# -- items (state.input_items) and body ------------------------------------------------------
def message_item(n: int, role: str = "user", text: str = "hi") -> dict[str, Any]:
    kind = "input_text" if role == "user" else "output_text"
    part = {"type": kind, "text": text}
    if kind == "output_text":
        part["annotations"] = []
    return {"id": f"msg_{n}", "type": "message", "role": role, "status": "completed",
            "content": [part]}


def item_list(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


ITEMS = [message_item(0), message_item(1, "assistant", "hello"), message_item(2, text="again")]
WANT_ITEMS = [{"type": "message", "role": "user"}, {"type": "message", "role": "assistant"},
              # nested lists compare whole (the subset match is per item, per object key)
              {"type": "message", "role": "user",
               "content": [{"type": "input_text", "text": "again"}]}]
LIST_STEP = step("list", "GET", returns="item_list")


def test_items_match():
    log, judged = run(LIST_STEP, {"items": WANT_ITEMS}, item_list(ITEMS))
    assert judged.kind == "list" and judged.log.findings == []
    assert log.findings == [] and "state.input_items" in log.applied


@pytest.mark.parametrize("data", [
    list(reversed(ITEMS)),   # wrong order
    ITEMS[:2],               # one missing
    ITEMS + [message_item(3)],  # one extra
    [ITEMS[0], ITEMS[1], message_item(2, text="other")],  # content differs
    [],
])
def test_items_differ(data):
    log, _ = run(LIST_STEP, {"items": WANT_ITEMS}, item_list(data))
    assert failed(log) == {"state.input_items"}


def test_items_body_without_data():
    log, _ = run(LIST_STEP, {"items": WANT_ITEMS}, {"object": "list"})
    assert failed(log) == {"state.input_items"}


DELETED = {"id": RID, "object": "response.deleted", "deleted": True}
DELETE_STEP = step("delete", "DELETE", returns="deleted")


@pytest.mark.parametrize("st,body,want,check", [
    (DELETE_STEP, DELETED, {"id": RID, "deleted": True}, "state.delete"),
    (LIST_STEP, item_list(ITEMS), {"has_more": False, "first_id": "msg_0"}, "state.input_items"),
    (step("get", "GET"), text_response("Hi"), {"id": RID, "status": "completed"},
     "response.echo"),
])
def test_body_subset(st, body, want, check):
    log, _ = run(st, {"body": want}, body)
    assert log.findings == [] and check in log.applied


@pytest.mark.parametrize("st,body,want,check", [
    (DELETE_STEP, dict(DELETED, deleted=False), {"id": RID, "deleted": True}, "state.delete"),
    (DELETE_STEP, dict(DELETED, id="resp_other"), {"id": RID, "deleted": True}, "state.delete"),
    (DELETE_STEP, {"id": RID}, {"id": RID, "deleted": True}, "state.delete"),
    (LIST_STEP, dict(item_list(ITEMS), has_more=True), {"has_more": False}, "state.input_items"),
    (step("get", "GET"), text_response("Hi"), {"status": "failed"}, "response.echo"),
])
def test_body_differs(st, body, want, check):
    log, _ = run(st, {"body": want}, body)
    assert failed(log) == {check}


# -- output_json (state.context) -------------------------------------------------------------
CONTEXT_JSON = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def test_output_json_equal():
    import json
    log, _ = run(step(), {"output_json": CONTEXT_JSON}, text_response(json.dumps(CONTEXT_JSON)))
    assert log.findings == [] and "state.context" in log.applied


@pytest.mark.parametrize("text", [
    '[{"role": "user", "content": "hi"}]',                     # previous output missing
    '[{"role": "system", "content": "old instructions"}, {"role": "user", "content": "hi"},'
    ' {"role": "assistant", "content": "hello"}]',             # instructions carried over
    "not json",
    "",
])
def test_output_json_differs(text):
    log, _ = run(step(), {"output_json": CONTEXT_JSON}, text_response(text))
    assert failed(log) == {"state.context"}


# -- error_code (errors.code) ----------------------------------------------------------------
def envelope(code, param="previous_response_id"):
    return {"error": {"message": "Previous response with id 'resp_x' not found.",
                      "type": "invalid_request_error", "param": param, "code": code}}


@pytest.mark.parametrize("status_want", [404, "4xx", [400, 404]])
def test_error_code_matches(status_want):
    exp = {"status": status_want, "error_code": "previous_response_not_found"}
    log, judged = run(step(), exp, envelope("previous_response_not_found"), status=404)
    assert judged.kind == "error" and judged.log.findings == []
    assert log.findings == []
    assert {"errors.status", "errors.code"} <= log.applied


@pytest.mark.parametrize("code", ["not_found", None])
def test_error_code_differs(code):
    exp = {"status": 404, "error_code": "previous_response_not_found"}
    log, _ = run(step(), exp, envelope(code), status=404)
    assert failed(log) == {"errors.code"}
    assert log.findings[0].evidence == {"path": "$.error.code",
                                        "expected": "previous_response_not_found",
                                        "actual": code}


def test_error_code_with_wrong_status_reports_both():
    exp = {"status": 404, "error_code": "previous_response_not_found"}
    log, _ = run(step(), exp, envelope("previous_response_not_found"), status=400)
    assert failed(log) == {"errors.status"}  # the code itself is right


def test_error_code_when_body_is_not_an_envelope():
    exp = {"status": 404, "error_code": "previous_response_not_found"}
    log, _ = run(step(), exp, {"detail": "Not Found"}, status=404)
    assert failed(log) == {"errors.code"}


def test_error_code_not_judged_when_request_accepted():
    exp = {"status": 404, "error_code": "previous_response_not_found"}
    log, _ = run(step(), exp, text_response("Hi"), status=200)
    assert failed(log) == {"errors.status"}
    assert "errors.code" not in log.applied


# -- response_status (a value or a list) -----------------------------------------------------
@pytest.mark.parametrize("want,status", [
    ("completed", "completed"), (["completed", "incomplete"], "incomplete"),
    (["completed", "incomplete"], "completed"), (["incomplete"], "incomplete"),
])
def test_response_status_met(want, status):
    log, _ = run(step(), {"response_status": want}, text_response("Hi", status=status))
    assert log.findings == [] and "response.status.expected" in log.applied


@pytest.mark.parametrize("want,status", [
    ("completed", "incomplete"), (["completed", "incomplete"], "failed"), ([], "completed"),
])
def test_response_status_not_met(want, status):
    response = text_response("Hi", status="incomplete" if status != "completed" else status)
    response["status"] = status
    log, _ = run(step(), {"response_status": want}, response)
    assert failed(log) == {"response.status.expected"}
    assert log.findings[0].evidence["expected"] == want


def test_response_status_on_a_list_body_is_not_met():
    log, _ = run(LIST_STEP, {"response_status": "completed"}, item_list(ITEMS))
    assert failed(log) == {"response.status.expected"}


# -- combined, and the accepted-status gate ---------------------------------------------------
def test_all_new_expectations_together_on_a_correct_turn():
    import json
    created = tool_response([Text((json.dumps(CONTEXT_JSON),)), Call()])
    # A turn with a function call is not judged on its text by structured checks, but the
    # state.context expectation reads the output text regardless.
    exp = {"response_status": ["completed"], "same_as": "create",
           "tool_calls": WANT_ONE_WEATHER, "output_json": CONTEXT_JSON,
           "body": {"status": "completed"}}
    request = {"model": "m", "input": "x", "tools": TOOLS}
    log, judged = run(step("get", "GET"), exp, copy.deepcopy(created), request=request,
                      earlier={"create": judged_response(created)})
    assert judged.log.findings == [] and log.findings == []
    assert {"response.status.expected", "state.retrieve.same", "tools.choice", "state.context",
            "response.echo", "response.accepted"} <= log.applied


def test_refused_request_stops_at_response_accepted():
    exp = {"same_as": "create", "tool_calls": {"min": 1}, "output_json": []}
    log, _ = run(step(), exp, envelope("unsupported"), status=400,
                 earlier={"create": judged_response(text_response("Hi"))})
    assert failed(log) == {"response.accepted"}
    assert log.applied == {"response.accepted"}


def test_float_echo_against_non_numbers_does_not_crash():
    response = text_response("Hi")
    log, _ = run(step(), {"echo": {"temperature": None, "top_p": "1.0"}}, response)
    assert failed(log) == {"response.echo"}
    assert log.counts["response.echo"] == 2
    log, _ = run(step(), {"echo": {"temperature": 1, "top_p": 1.0}}, response)
    assert log.findings == []
