"""The openresponses profile judges with the Open Responses types, and the specification's
rules (harness/core/spec_rules.py, harness/core/response.py) catch what they claim to catch.

Each rule is shown on an object that is right (no finding) and on one broken the way the rule
describes (exactly that check fires)."""

from __future__ import annotations

import copy

import pytest

from harness.core.catalogue import load_catalogue
from harness.core.findings import FindingLog
from harness.core.response import check_error_body
from harness.core.schemas import schema_set
from harness.core.verdict import judge_json_body
from stream_builder import index_of, message_stream, renumber, to_sse
from test_stream_checker import fired, must_ids


def final_response() -> dict:
    """A complete, correct Response (the terminal event of a built stream)."""
    return copy.deepcopy(message_stream()[-1]["response"])


def checks(log: FindingLog) -> set[str]:
    return {f.check for f in log.findings}


def test_the_complete_response_passes_both_profiles():
    for profile in ("openai", "openresponses"):
        assert judge_json_body(final_response(), profile).log.findings == [], profile


# -- required but nullable: absent vs null --------------------------------------------------
@pytest.mark.parametrize("field", ["completed_at", "error", "safety_identifier",
                                   "prompt_cache_key", "previous_response_id", "instructions"])
def test_missing_required_nullable_field_fails_openresponses_and_passes_openai(field):
    response = final_response()
    del response[field]
    strict = judge_json_body(response, "openresponses").log
    assert checks(strict) == {"schema.response"}
    (finding,) = strict.findings
    assert f"`{field}` is absent" in finding.message
    assert "may be null, but it must be present" in finding.message
    assert load_catalogue("openresponses").level("schema.response") == "MUST"
    # The openai SDK gives these fields defaults: absent is fine there.
    assert judge_json_body(response, "openai").log.findings == []


def test_null_required_nullable_field_passes_openresponses():
    response = final_response()
    response["completed_at"] = None
    response["safety_identifier"] = None
    assert judge_json_body(response, "openresponses").log.findings == []


def test_null_where_null_is_not_allowed_is_reported_as_null():
    response = final_response()
    response["store"] = None  # `store: bool`, required, not nullable
    (finding,) = judge_json_body(response, "openresponses").log.findings
    assert finding.check == "schema.response"
    assert "the value is null" in finding.message
    assert finding.evidence["path"] == "$.store"


def test_missing_required_non_nullable_field_says_absent_without_the_null_note():
    response = final_response()
    del response["presence_penalty"]
    (finding,) = judge_json_body(response, "openresponses").log.findings
    assert finding.message == "`presence_penalty` is absent: required"


def test_streamed_response_lacking_a_required_nullable_field_fails_openresponses_only():
    events = message_stream()
    for e in events:
        if "response" in e:
            e["response"].pop("completed_at")
    strict = fired(to_sse(events, done=True), "openresponses")
    assert must_ids(strict, "openresponses") == {"schema.event"}
    assert any("`completed_at` is absent" in f.message for f in strict.findings)
    assert fired(to_sse(events), "openai").findings == []


# -- incomplete item ---------------------------------------------------------------------------
def test_incomplete_last_item_in_incomplete_response_passes():
    response = final_response()
    response["status"] = "incomplete"
    response["incomplete_details"] = {"reason": "max_output_tokens"}
    response["output"][-1]["status"] = "incomplete"
    assert "spec.item.incomplete_last" not in checks(judge_json_body(response, "openresponses").log)


def test_incomplete_item_followed_by_another_fails():
    response = final_response()
    response["status"] = "incomplete"
    response["incomplete_details"] = {"reason": "max_output_tokens"}
    response["output"][0]["status"] = "incomplete"
    log = judge_json_body(response, "openresponses").log
    assert checks(log) == {"spec.item.incomplete_last"}
    assert "1 item(s) follow it" in log.findings[0].message
    assert load_catalogue("openresponses").level("spec.item.incomplete_last") == "MUST"


def test_incomplete_last_item_in_a_failed_response_passes():
    """The item an error cut short (error, then response.failed) may be incomplete."""
    response = final_response()
    response["status"] = "failed"
    response["error"] = {"code": "server_error", "message": "upstream went away"}
    response["output"][-1]["status"] = "incomplete"
    log = judge_json_body(response, "openresponses").log
    assert "spec.item.incomplete_last" in log.applied
    assert "spec.item.incomplete_last" not in checks(log)


def test_incomplete_item_in_a_completed_response_fails():
    response = final_response()
    response["output"][-1]["status"] = "incomplete"
    log = judge_json_body(response, "openresponses").log
    assert checks(log) == {"spec.item.incomplete_last"}
    assert log.findings[0].evidence["path"] == "$.status"
    # OpenAI's profile reports it as a SHOULD.
    assert load_catalogue("openai").level("spec.item.incomplete_last") == "SHOULD"


# -- extension items and events ---------------------------------------------------------------
EXTENSION_ITEM = {"type": "acme:telemetry_chunk", "id": "tc_123", "status": "completed",
                  "latency_ms": 72}


def test_prefixed_extension_item_with_id_type_status_passes_openresponses():
    response = final_response()
    response["output"].append(dict(EXTENSION_ITEM))
    assert judge_json_body(response, "openresponses").log.findings == []


def test_extension_item_without_status_fails():
    response = final_response()
    response["output"].append({k: v for k, v in EXTENSION_ITEM.items() if k != "status"})
    assert checks(judge_json_body(response, "openresponses").log) == {"spec.extension.item_fields"}


def test_unprefixed_unknown_item_type_fails():
    response = final_response()
    response["output"].append(dict(EXTENSION_ITEM, type="telemetry_chunk"))
    log = judge_json_body(response, "openresponses").log
    assert "spec.item.known_type" in checks(log)
    # Its schema failure is reported too: the item is in no member of the output union.
    assert checks(log) <= {"spec.item.known_type", "schema.response"}


def test_openai_hosted_tool_item_is_outside_the_open_responses_types():
    response = final_response()
    response["output"].append({"type": "web_search_call", "id": "ws_1", "status": "completed",
                               "action": {"type": "search", "query": "q"}})
    assert "spec.item.known_type" in checks(judge_json_body(response, "openresponses").log)
    assert judge_json_body(response, "openai").log.findings == []


def test_streamed_extension_item_and_event_are_skippable():
    events = message_stream()
    n = len([e for e in events if e["type"] == "response.output_item.done"])
    item = dict(EXTENSION_ITEM, status="in_progress")
    extra = [
        {"type": "response.output_item.added", "output_index": n, "item": item},
        {"type": "acme:trace_event", "phase": "tool_resolution"},
        {"type": "response.output_item.done", "output_index": n, "item": dict(EXTENSION_ITEM)},
    ]
    terminal = index_of(events, "response.completed")
    events[terminal:terminal] = extra
    events[-1]["response"]["output"].append(dict(EXTENSION_ITEM))
    log = fired(to_sse(renumber(events), done=True), "openresponses")
    assert log.findings == []
    assert "spec.extension.sequence_number" in log.applied


def test_extension_event_without_sequence_number_fails():
    events = message_stream()
    events = renumber(events)
    events.insert(3, {"type": "acme:trace_event"})
    log = fired(to_sse(events, done=True), "openresponses")
    assert must_ids(log, "openresponses") == {"spec.extension.sequence_number"}


def test_extension_event_out_of_order_fails():
    events = renumber(message_stream())
    events.insert(3, {"type": "acme:trace_event", "sequence_number": 1})
    log = fired(to_sse(events, done=True), "openresponses")
    assert "spec.extension.sequence_number" in checks(log)


# -- event names -------------------------------------------------------------------------------
def _reasoning_stream(delta: str, done: str) -> list[dict]:
    events = message_stream()
    rid = "rs_0123"
    item = {"id": rid, "type": "reasoning", "summary": [], "status": "completed",
            "content": [{"type": "reasoning_text", "text": "thinking"}]}
    reasoning = [
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"id": rid, "type": "reasoning", "summary": [], "content": []}},
        {"type": "response.content_part.added", "item_id": rid, "output_index": 0,
         "content_index": 0, "part": {"type": "reasoning_text", "text": ""}},
        {"type": delta, "item_id": rid, "output_index": 0, "content_index": 0, "delta": "think"},
        {"type": delta, "item_id": rid, "output_index": 0, "content_index": 0, "delta": "ing"},
        {"type": done, "item_id": rid, "output_index": 0, "content_index": 0, "text": "thinking"},
        {"type": "response.content_part.done", "item_id": rid, "output_index": 0,
         "content_index": 0, "part": {"type": "reasoning_text", "text": "thinking"}},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    ]
    for e in events:
        if "output_index" in e:
            e["output_index"] += 1
    events[-1]["response"]["output"].insert(0, item)
    events[2:2] = reasoning
    return renumber(events)


def test_spec_reasoning_event_names_pass_openresponses():
    events = _reasoning_stream("response.reasoning.delta", "response.reasoning.done")
    assert fired(to_sse(events, done=True), "openresponses").findings == []


def test_openai_reasoning_event_names_are_reported_under_openresponses():
    events = _reasoning_stream("response.reasoning_text.delta", "response.reasoning_text.done")
    log = fired(to_sse(events, done=True), "openresponses")
    assert checks(log) == {"schema.event.spec_name"}
    assert load_catalogue("openresponses").level("schema.event.spec_name") == "SHOULD"
    # ... judged on the grammar all the same: an altered delta is caught.
    events[index_of(events, "response.reasoning_text.delta", 1)]["delta"] = "ink"
    log = fired(to_sse(events, done=True), "openresponses")
    assert must_ids(log, "openresponses") == {"stream.delta.accumulates"}
    # OpenAI's own profile knows these names.
    good = _reasoning_stream("response.reasoning_text.delta", "response.reasoning_text.done")
    assert fired(to_sse(good), "openai").findings == []


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("etype", "status", "ok"), [
    ("invalid_request", 400, True), ("invalid_request", 404, False),
    ("not_found", 404, True), ("not_found", 400, False),
    ("server_error", 500, True), ("model_error", 502, False),
    ("too_many_requests", 429, True),
])
def test_error_type_maps_to_its_status(etype, status, ok):
    body = {"error": {"message": "m", "type": etype, "param": None, "code": "c"}}
    log = FindingLog()
    check_error_body(body, log, schemas=schema_set("openresponses"), status=status)
    assert "errors.type_status" in log.applied
    assert (checks(log) == set()) is ok, log.findings


def test_error_types_outside_the_table_are_not_judged_by_the_mapping():
    body = {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": "c"}}
    log = FindingLog()
    check_error_body(body, log, schemas=schema_set("openresponses"), status=404)
    assert "errors.type_status" not in log.applied and log.findings == []


# -- the schema sources ------------------------------------------------------------------------
def test_openresponses_schemas_come_from_the_pinned_types():
    s = schema_set("openresponses")
    assert s.sdk_version == "2.4.0"
    assert s.output_item_types == {"message", "function_call", "function_call_output",
                                   "reasoning", "compaction"}
    # Roots the specification's types do not define fall back to openai's.
    assert s.has_root("ResponseItemList")
    assert s.validate_root("ResponseItemList", {"object": "list", "data": [], "first_id": "a",
                                                "last_id": "a", "has_more": False}) == []


@pytest.mark.parametrize("profile", ["openai", "openresponses"])
def test_websocket_error_event_root(profile):
    s = schema_set(profile)
    good = {"type": "error", "status": 400,
            "error": {"type": "invalid_request_error", "code": "previous_response_not_found",
                      "message": "m", "param": "previous_response_id"}}
    assert s.validate_root("WebSocketErrorEvent", good) == []
    assert s.validate_root("WebSocketErrorEvent", {"type": "error", "status": 400}) != []


@pytest.mark.parametrize("profile", ["openai", "openresponses"])
def test_compaction_root(profile):
    s = schema_set(profile)
    usage = {"input_tokens": 3, "output_tokens": 0, "total_tokens": 3,
             "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
             "output_tokens_details": {"reasoning_tokens": 0}}
    good = {"id": "cmp_1", "object": "response.compaction", "created_at": 1, "usage": usage,
            "output": [{"type": "message", "role": "user", "id": "msg_1", "status": "completed",
                        "content": [{"type": "input_text", "text": "hi"}]},
                       {"type": "compaction", "id": "cmp_i1", "encrypted_content": "x"}]}
    assert s.validate_root("CompactResource", good) == [], s.validate_root("CompactResource", good)
    assert s.validate_root("CompactResource", dict(good, object="response")) != []


@pytest.mark.parametrize("profile", ["openai", "openresponses"])
def test_compaction_step_is_judged_by_schema_compaction(profile):
    """`returns: compaction`: the 200 body of /responses/compact against CompactResource."""
    import json as _json

    from harness.core.transcript import Exchange
    from harness.core.verdict import judge_exchange

    def exchange(body: dict) -> Exchange:
        ex = Exchange("compact", "POST", "http://127.0.0.1:1/v1/responses/compact", {}, b"{}")
        ex.status = 200
        ex.response_headers = {"content-type": "application/json"}
        ex.chunks.append((0.0, _json.dumps(body).encode()))
        return ex

    usage = {"input_tokens": 3, "output_tokens": 0, "total_tokens": 3,
             "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
             "output_tokens_details": {"reasoning_tokens": 0}}
    good = {"id": "cmp_1", "object": "response.compaction", "created_at": 1, "usage": usage,
            "output": [{"type": "compaction", "id": "cmp_i1", "encrypted_content": "x"}]}
    judged = judge_exchange(exchange(good), profile, returns="compaction")
    assert judged.kind == "compaction" and "schema.compaction" in judged.log.applied
    assert judged.log.findings == []
    bad = judge_exchange(exchange({k: v for k, v in good.items() if k != "usage"}), profile,
                         returns="compaction")
    assert {f.check for f in bad.log.findings} == {"schema.compaction"}


@pytest.mark.parametrize("body, says", [(b"null", "JSON null, not an object"),
                                        (b"<html>oops</html>", "not JSON")])
def test_a_200_body_that_is_no_response_says_what_it_was(body, says):
    """open-responses-server answers a non-streamed request with a 200 whose body is `null`:
    the failure says so instead of "not JSON"; a body that is not JSON at all still says that."""
    from harness.core.transcript import Exchange
    from harness.core.verdict import judge_exchange

    ex = Exchange(step="s", method="POST", url="http://x/v1/responses", request_headers={},
                  request_body=b"{}", status=200,
                  response_headers={"content-type": "application/json"}, chunks=[(0.0, body)])
    fails = judge_exchange(ex).log.findings
    assert [f.check for f in fails] == ["schema.response"]
    assert fails[0].message == f"the 200 body is {says} (Content-Type 'application/json')"
