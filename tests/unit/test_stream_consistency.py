"""Cross-event consistency: what a stream repeats across events agrees, and each lifecycle
event comes in its place (issue 16, "Verdicts that match reality").

A Responses stream says most things more than once: the Response in response.created,
response.in_progress and the terminal event; an item in output_item.added, its deltas, its
.done events, output_item.done and the terminal output; a content part from content_part.added
to the done item. Each rule below (specs/grammar.yaml names the fields, specs/checks.yaml each
check's level and evidence) is proven the same way: a right stream gives no finding at all, and
the stream broken in exactly one way gives exactly one check id, the one that claims that fault,
with evidence pointing at the frame that shows it. The right streams are the builders'
(``stream_builder``, ``tool_stream_builder``) and two recordings of OpenAI's service.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable

import pytest

from harness.core.catalogue import load_catalogue
from harness.core.verdict import events_to_sse, judge_stream_body
from stream_builder import _response, index_of, message_stream, renumber, to_sse
from tool_stream_builder import tool_stream

RECORDED = Path(__file__).resolve().parents[1] / "fixtures_openai" / "recorded"
ADDED, DONE = "response.output_item.added", "response.output_item.done"


def recorded(name: str) -> list[dict]:
    path = RECORDED / f"{name}.chunks.txt"
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


BUILDERS: dict[str, Callable[[], list[dict]]] = {
    "message": message_stream,
    "function_call": tool_stream,
    "mcp": lambda: recorded("openai-mcp-tool.1"),
    "code": lambda: recorded("openai-code-interpreter-tool.1"),
    "error": lambda: recorded("openai-error.1"),
}


def judge(events: list[dict]):
    jsonl = b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in events)
    return judge_stream_body(events_to_sse(jsonl), "openai").log


def item_at(events: list[dict], etype: str, item_type: str) -> int:
    """Position of the first ``etype`` (output_item.added / .done) of an item of a type."""
    return next(i for i, e in enumerate(events) if e["type"] == etype
                and e["item"]["type"] == item_type)


def set_done(events: list[dict], item_type: str, field: str, value) -> int:
    """Set a field of the first done item of a type AND of the same item in the terminal
    output, so that only the rule under test can fire (not stream.output.matches_items)."""
    i = item_at(events, DONE, item_type)
    events[i]["item"][field] = value
    events[-1]["response"]["output"][events[i]["output_index"]][field] = value
    return i


# -- the mutants: (stream, plant -> the frame that shows the fault, the one check) ----------
def model_changes_at_terminal(ev):
    ev[-1]["response"]["model"] = "another-model"
    return len(ev) - 1


def model_changes_in_progress(ev):
    ev[1]["response"]["model"] = "another-model"
    return 1


def created_at_changes(ev):
    ev[-1]["response"]["created_at"] += 60
    return len(ev) - 1


def in_progress_says_completed(ev):
    ev[1]["response"]["status"] = "completed"
    return 1


def queued_says_in_progress(ev):
    ev.insert(1, {"type": "response.queued", "response": _response("in_progress", [],
                                                                    usage=False)})
    renumber(ev)
    return 1


def created_twice(ev):
    ev.insert(2, copy.deepcopy(ev[0]))
    renumber(ev)
    return 2


def in_progress_after_first_item(ev):
    ev.insert(index_of(ev, ADDED) + 1, ev.pop(1))
    renumber(ev)
    return index_of(ev, "response.in_progress")


def message_added_completed(ev):
    i = index_of(ev, ADDED)
    ev[i]["item"]["status"] = "completed"
    return i


def call_added_completed(ev):
    i = index_of(ev, ADDED)
    ev[i]["item"]["status"] = "completed"
    return i


def message_done_in_progress(ev):
    return set_done(ev, "message", "status", "in_progress")


def call_done_in_progress(ev):
    return set_done(ev, "function_call", "status", "in_progress")


def call_name_changes(ev):
    return set_done(ev, "function_call", "name", "get_time")


def mcp_server_label_changes(ev):
    return set_done(ev, "mcp_call", "server_label", "another_server")


def part_added_with_text(ev):
    i = index_of(ev, "response.content_part.added")
    ev[i]["part"]["text"] = "Hello"
    return i


def part_done_changes_type(ev):
    i = index_of(ev, "response.content_part.done")
    ev[i]["part"] = {"type": "refusal", "refusal": ev[i]["part"]["text"]}
    return i


def message_added_with_content(ev):
    i = index_of(ev, ADDED)
    ev[i]["item"]["content"] = [{"type": "output_text", "text": "Hello", "annotations": [],
                                 "logprobs": []}]
    return i


def mcp_call_added_with_arguments(ev):
    i = item_at(ev, ADDED, "mcp_call")
    ev[i]["item"]["arguments"] = "{}"
    return i


def call_done_arguments_differ(ev):
    return set_done(ev, "function_call", "arguments", '{"city": "Rome", "unit": "c"}')


def mcp_done_arguments_differ(ev):
    return set_done(ev, "mcp_call", "arguments", '{"q": "something else"}')


def code_done_code_differs(ev):
    return set_done(ev, "code_interpreter_call", "code", "print('something else')")


def arguments_delta_on_a_message(ev):
    i = index_of(ev, "response.output_text.delta")
    ev.insert(i, {"type": "response.function_call_arguments.delta", "item_id": ev[i]["item_id"],
                  "output_index": ev[i]["output_index"], "delta": ""})
    renumber(ev)
    return i


def text_delta_on_a_function_call(ev):
    i = index_of(ev, "response.function_call_arguments.delta")
    ev.insert(i, {"type": "response.output_text.delta", "item_id": ev[i]["item_id"],
                  "output_index": ev[i]["output_index"], "content_index": 0, "delta": "",
                  "logprobs": []})
    renumber(ev)
    return i


def refusal_delta_into_a_text_part(ev):
    i = index_of(ev, "response.output_text.delta")
    ev.insert(i, {"type": "response.refusal.delta", "item_id": ev[i]["item_id"],
                  "output_index": ev[i]["output_index"], "content_index": 0, "delta": ""})
    renumber(ev)
    return i


def failed_error_code_differs(ev):
    ev[-1]["response"]["error"]["code"] = "server_error"
    return len(ev) - 1


def failed_error_message_differs(ev):
    ev[-1]["response"]["error"]["message"] = "Something else went wrong."
    return len(ev) - 1


def cached_tokens_exceed_input(ev):
    usage = ev[-1]["response"]["usage"]
    usage["input_tokens_details"]["cached_tokens"] = usage["input_tokens"] + 1
    return len(ev) - 1


def reasoning_tokens_exceed_output(ev):
    usage = ev[-1]["response"]["usage"]
    usage["output_tokens_details"]["reasoning_tokens"] = usage["output_tokens"] + 1
    return len(ev) - 1


MUTANTS = {
    # the Response, across created / in_progress / terminal
    "model_changes_at_terminal": ("message", model_changes_at_terminal,
                                  "stream.response.consistent"),
    "model_changes_in_progress": ("function_call", model_changes_in_progress,
                                  "stream.response.consistent"),
    "created_at_changes": ("message", created_at_changes, "stream.response.consistent"),
    "in_progress_says_completed": ("message", in_progress_says_completed,
                                   "stream.lifecycle.status"),
    "queued_says_in_progress": ("message", queued_says_in_progress, "stream.lifecycle.status"),
    "created_twice": ("message", created_twice, "stream.lifecycle.order"),
    "in_progress_after_first_item": ("message", in_progress_after_first_item,
                                     "stream.lifecycle.order"),
    # an item, from output_item.added to output_item.done
    "message_added_completed": ("message", message_added_completed, "stream.item.added_status"),
    "call_added_completed": ("function_call", call_added_completed, "stream.item.added_status"),
    "message_done_in_progress": ("message", message_done_in_progress,
                                 "stream.item.done_status"),
    "call_done_in_progress": ("function_call", call_done_in_progress, "stream.item.done_status"),
    "call_name_changes": ("function_call", call_name_changes, "stream.item.fields_stable"),
    "mcp_server_label_changes": ("mcp", mcp_server_label_changes, "stream.item.fields_stable"),
    # a content part, from content_part.added to content_part.done
    "part_done_changes_type": ("message", part_done_changes_type, "stream.part.done_matches"),
    # what the stream builds starts empty
    "part_added_with_text": ("message", part_added_with_text, "stream.delta.starts_empty"),
    "message_added_with_content": ("message", message_added_with_content,
                                   "stream.delta.starts_empty"),
    "mcp_call_added_with_arguments": ("mcp", mcp_call_added_with_arguments,
                                      "stream.delta.starts_empty"),
    # the done item repeats what was streamed
    "call_done_arguments_differ": ("function_call", call_done_arguments_differ,
                                   "stream.item.done_content"),
    "mcp_done_arguments_differ": ("mcp", mcp_done_arguments_differ, "stream.item.done_content"),
    "code_done_code_differs": ("code", code_done_code_differs, "stream.item.done_content"),
    # an event writes into an item (and part) of its own type
    "arguments_delta_on_a_message": ("message", arguments_delta_on_a_message,
                                     "stream.event.item_type"),
    "text_delta_on_a_function_call": ("function_call", text_delta_on_a_function_call,
                                      "stream.event.item_type"),
    "refusal_delta_into_a_text_part": ("message", refusal_delta_into_a_text_part,
                                       "stream.event.item_type"),
    # the error event and response.failed
    "failed_error_code_differs": ("error", failed_error_code_differs, "stream.error.consistent"),
    "failed_error_message_differs": ("error", failed_error_message_differs,
                                     "stream.error.consistent"),
    # usage's totals
    "cached_tokens_exceed_input": ("message", cached_tokens_exceed_input,
                                   "response.usage.consistent"),
    "reasoning_tokens_exceed_output": ("function_call", reasoning_tokens_exceed_output,
                                       "response.usage.consistent"),
}


@pytest.mark.parametrize("stream", sorted(BUILDERS))
def test_right_stream_has_no_finding_and_is_judged(stream):
    log = judge(BUILDERS[stream]())
    assert log.findings == [], [(f.check, f.message) for f in log.findings]
    judged = {check for on, _, check in MUTANTS.values() if on == stream}
    assert judged <= log.applied, judged - log.applied


@pytest.mark.parametrize("case", sorted(MUTANTS))
def test_mutant_fires_exactly_its_check_at_its_frame(case):
    stream, plant, check = MUTANTS[case]
    events = BUILDERS[stream]()
    frame = plant(events)
    log = judge(events)
    assert [f.check for f in log.findings] == [check], \
        [(f.check, f.message, f.evidence.get("frame")) for f in log.findings]
    (finding,) = log.findings
    assert finding.evidence["frame"] == frame, (finding.message, finding.evidence)


def test_every_new_rule_is_catalogued_with_evidence():
    catalogue = load_catalogue("openai")
    for check in {c for _, _, c in MUTANTS.values()}:
        entry = catalogue.check(check)
        assert entry.level in ("MUST", "SHOULD") and entry.source, check
