"""The phase grammar of built-in tool items (specs/grammar.yaml ``item_phases``, compiled by
harness/core/phases.py, run by harness/core/stream.py), calibrated on the recorded OpenAI streams.

Every recorded stream with MCP, code_interpreter or web_search items is judged conformant with
the builtin.* checks applied; streams without such items do not have them applied. Then each
rule is broken in a stream derived from a recording, as a broken server would break it, and the
checker must name exactly the check that claims the fault, at the frame that shows it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Callable

import pytest

from harness.core.catalogue import (SpecError, load_catalogue, load_checks, load_grammar,
                                    load_profile)
from harness.core.phases import ITEM_DONE, compile_phases
from harness.core.schemas import schema_set
from harness.core.stream import StreamChecker
from harness.core.verdict import events_to_sse, judge_stream_body

RECORDED = Path(__file__).resolve().parents[1] / "fixtures_openai" / "recorded"
MCP = "openai-mcp-tool.1"
APPROVAL = "openai-mcp-tool-approval.1"
LISTING = "openai-mcp-tool-approval.2"
CODE = "openai-code-interpreter-tool.1"
SEARCH = "openai-web-search-tool.1"
PHASED = (MCP, APPROVAL, LISTING, CODE, SEARCH)
UNPHASED = ("openai-compaction.1", "openai-error.1", "openai-file-search-tool.1",
            "openai-image-generation-tool.1", "openai-local-shell-tool.1",
            "openai-shell-container.1", "openai-tool-search.1")

PHASE_CHECKS = {"builtin.phase.order", "builtin.phase.scope", "builtin.phase.terminal"}
# The stream checker's builtin.* checks (others in the namespace are judged elsewhere, e.g. on a
# scenario's expectations) and their levels.
STREAM_BUILTIN_CHECKS = {**dict.fromkeys(PHASE_CHECKS, "MUST"), "builtin.item.status": "MUST",
                         "builtin.web_search.action": "MUST", "builtin.mcp.error": "SHOULD"}
MCP_ERROR = {"type": "mcp_protocol_error", "code": -32603, "message": "upstream timed out"}


def recorded(name: str) -> list[dict]:
    path = RECORDED / f"{name}.chunks.txt"
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def judge(events: list[dict], profile="openai"):
    jsonl = b"\n".join(json.dumps(e, ensure_ascii=False).encode() for e in events)
    return judge_stream_body(events_to_sse(jsonl), profile).log


def renumber(events: list[dict]) -> list[dict]:
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events


def at(events: list[dict], etype: str, nth: int = 0) -> int:
    """Position of the ``nth`` event of type ``etype``."""
    return [i for i, e in enumerate(events) if e["type"] == etype][nth]


def item_window(events: list[dict], item_type: str, nth: int = 0) -> tuple[int, int]:
    """Positions of output_item.added and output_item.done of the ``nth`` item of a type."""
    added = [i for i, e in enumerate(events) if e["type"] == "response.output_item.added"
             and e["item"]["type"] == item_type][nth]
    idx = events[added]["output_index"]
    done = next(i for i, e in enumerate(events) if e["type"] == ITEM_DONE
                and e["output_index"] == idx)
    return added, done


def set_done_field(events: list[dict], item_type: str, field: str, value, nth: int = 0):
    """Set a field of the done item, and of the same item in the terminal output (so that only
    the rule under test can fire, not stream.output.matches_items)."""
    _, done = item_window(events, item_type, nth)
    item = events[done]["item"]
    for target in (item, events[-1]["response"]["output"][events[done]["output_index"]]):
        if value is _DELETE:
            del target[field]
        else:
            target[field] = value
    return events


_DELETE = object()


def phase_event(template: dict, etype: str) -> dict:
    """A phase event of type ``etype`` for the item ``template`` names."""
    return {"type": etype, "sequence_number": 0, "output_index": template["output_index"],
            "item_id": template["item_id"]}


# -- the recordings ------------------------------------------------------------------------
@pytest.mark.parametrize("name", PHASED)
def test_recorded_stream_with_builtin_items_passes_and_is_judged(name):
    log = judge(recorded(name))
    assert log.findings == [], [(f.check, f.message, f.evidence) for f in log.findings]
    assert PHASE_CHECKS <= log.applied


@pytest.mark.parametrize(("name", "applied"), [
    (MCP, {"builtin.item.status"}),
    (CODE, {"builtin.item.status"}),
    (SEARCH, {"builtin.item.status", "builtin.web_search.action"}),
    (APPROVAL, set()),  # mcp_list_tools has no status; mcp_approval_request has no phases
    (LISTING, set()),
])
def test_done_item_rules_are_applied_only_where_judged(name, applied):
    """builtin.item.status is judged where a done item has a status rule; builtin.mcp.error only
    on a failed MCP call or listing, which no recording has."""
    judged = judge(recorded(name)).applied & set(STREAM_BUILTIN_CHECKS)
    assert judged == PHASE_CHECKS | applied


@pytest.mark.parametrize("name", UNPHASED)
def test_streams_without_builtin_items_are_not_judged_on_them(name):
    log = judge(recorded(name))
    assert not log.applied & set(STREAM_BUILTIN_CHECKS)
    assert not {f.check for f in log.findings if f.check.startswith("builtin.")}


def test_every_phase_event_is_in_the_sdk_union():
    """The grammar names only events the SDK defines (no code_interpreter_call.failed, no
    web_search_call.failed: they do not exist)."""
    schemas = schema_set("openai")
    grammar = compile_phases(load_grammar(), load_checks())
    assert set(grammar.by_item) == {"mcp_list_tools", "mcp_call", "mcp_approval_request",
                                    "code_interpreter_call", "web_search_call"}
    for event in grammar.owners:
        assert schemas.known_event(event), event
    assert not schemas.known_event("response.code_interpreter_call.failed")
    assert not schemas.known_event("response.web_search_call.failed")


def mcp_in_progress_again_after_deltas(events: list[dict], *, split: bool = False
                                       ) -> list[dict]:
    """The shape issue 16 reports from OpenAI's service for an mcp_call: in_progress ->
    arguments.delta -> in_progress -> arguments.done -> completed. No recording kept here has
    it (openai-mcp-tool.1 sends in_progress once), so it is built from that recording's first
    call by sending in_progress again after its delta. ``split``: its arguments in two deltas
    with in_progress between them as well."""
    i = at(events, "response.mcp_call_arguments.delta")
    delta = events[i]
    again = phase_event(delta, "response.mcp_call.in_progress")
    if not split:
        events.insert(i + 1, again)
        return renumber(events)
    whole = delta["delta"]
    first, second = copy.deepcopy(delta), copy.deepcopy(delta)
    first["delta"], second["delta"] = whole[:len(whole) // 2], whole[len(whole) // 2:]
    events[i:i + 1] = [first, copy.deepcopy(again), second, again]
    return renumber(events)


@pytest.mark.parametrize(("split", "shape"), [
    (False, ["in_progress", "arguments.delta", "in_progress", "arguments.done", "completed"]),
    (True, ["in_progress", "arguments.delta", "in_progress", "arguments.delta", "in_progress",
            "arguments.done", "completed"]),
], ids=["as_reported", "between_deltas_too"])
def test_mcp_in_progress_again_after_argument_deltas_passes(split, shape):
    events = mcp_in_progress_again_after_deltas(recorded(MCP), split=split)
    call_id = events[at(events, "response.mcp_call.in_progress")]["item_id"]
    sent = [e["type"].removeprefix("response.mcp_call").lstrip("._") for e in events
            if e.get("item_id") == call_id]
    assert sent == shape
    log = judge(events)
    assert log.findings == [], [(f.check, f.message) for f in log.findings]
    assert "builtin.phase.order" in log.applied


def first_in_progress_dropped(events: list[dict]) -> list[dict]:
    del events[at(events, "response.mcp_call.in_progress")]
    return events


def in_progress_after_arguments_done(events: list[dict]) -> list[dict]:
    i = at(events, "response.mcp_call_arguments.done")
    events.insert(i + 1, phase_event(events[i], "response.mcp_call.in_progress"))
    return events


# in_progress must still come first, and not after arguments.done: the fault is the event named.
@pytest.mark.parametrize(("mutate", "etype"), [
    (first_in_progress_dropped, "response.mcp_call_arguments.delta"),
    (in_progress_after_arguments_done, "response.mcp_call.in_progress"),
])
def test_mcp_in_progress_is_still_ordered(mutate, etype):
    events = renumber(mutate(mcp_in_progress_again_after_deltas(recorded(MCP))))
    log = judge(events)
    assert [(f.check, f.evidence["event_type"]) for f in log.findings] == [
        ("builtin.phase.order", etype)], [(f.check, f.message) for f in log.findings]


def test_failed_mcp_call_with_error_and_status_failed_passes():
    """The .failed branch of the grammar: what a conformant failed call looks like."""
    events = recorded(MCP)
    events[at(events, "response.mcp_call.completed")]["type"] = "response.mcp_call.failed"
    set_done_field(events, "mcp_call", "status", "failed")
    set_done_field(events, "mcp_call", "error", MCP_ERROR)
    set_done_field(events, "mcp_call", "output", None)
    log = judge(events)
    assert log.findings == [], [(f.check, f.message) for f in log.findings]
    assert {"builtin.item.status", "builtin.mcp.error"} <= log.applied


def test_failed_mcp_listing_with_error_passes():
    events = recorded(LISTING)
    events[at(events, "response.mcp_list_tools.completed")]["type"] = \
        "response.mcp_list_tools.failed"
    set_done_field(events, "mcp_list_tools", "error", "server returned 503")
    set_done_field(events, "mcp_list_tools", "tools", [])
    log = judge(events)
    assert log.findings == [], [(f.check, f.message) for f in log.findings]
    assert "builtin.mcp.error" in log.applied


@pytest.mark.parametrize(("name", "item_type"), [(CODE, "code_interpreter_call"),
                                               (SEARCH, "web_search_call")])
def test_failed_status_after_completed_where_the_sdk_has_no_failed_phase(name, item_type):
    """code_interpreter_call and web_search_call have no .failed event: a failed call ends with
    .completed and status failed, and that is conformant."""
    events = set_done_field(recorded(name), item_type, "status", "failed", 1)
    log = judge(events)
    assert log.findings == [], [(f.check, f.message) for f in log.findings]
    assert "builtin.item.status" in log.applied


def test_item_cut_short_with_status_incomplete_is_tolerated():
    """phases_cut_status: an item closed early as incomplete (a truncated response) need not
    reach its final phase; the phases it did send must still be in order."""
    events = recorded(SEARCH)
    del events[at(events, "response.web_search_call.completed")]
    del events[at(events, "response.web_search_call.searching")]
    set_done_field(events, "web_search_call", "status", "incomplete")
    # The phase grammar tolerates it. Only the item rule fires (SHOULD under openai, MUST under
    # openresponses): an incomplete item must be the last one, in an incomplete response,
    # and this recording has a completed response with items after the search.
    findings = judge(renumber(events)).findings
    assert {f.check for f in findings} == {"spec.item.incomplete_last"}
    assert load_catalogue("openai").level("spec.item.incomplete_last") == "SHOULD"


def test_profile_event_aliases_are_resolved_before_the_grammar():
    """A profile that renames a phase event (event_aliases) is judged on the canonical name."""
    profile = dataclasses.replace(load_profile("openai"), event_aliases={
        "acme.web_search_call.looking": "response.web_search_call.searching"})
    events = recorded(SEARCH)
    for e in events:
        if e["type"] == "response.web_search_call.searching":
            e["type"] = "acme.web_search_call.looking"
    # The alias is reported (another implementation's name), and judged on the canonical one.
    assert {f.check for f in judge(events, profile).findings} == {"schema.event.spec_name"}
    # ... and a renamed phase out of order is still an order fault.
    i = at(events, "acme.web_search_call.looking")
    events[i], events[i - 1] = events[i - 1], events[i]
    assert {f.check for f in judge(renumber(events), profile).findings} == {
        "builtin.phase.order", "schema.event.spec_name"}


# -- planted violations ----------------------------------------------------------------------
# Each case: (recording, mutation returning (events, position of the frame that shows the
# fault)), and the exact set of checks that must fire. The first finding of the first check of
# the set must point at that frame.
def drop(etype: str, nth: int = 0, *, evidence: str | None = None):
    """Drop the nth ``etype``; the fault shows at the event that then follows it (or at the first
    ``evidence`` event after it)."""
    def mutate(ev):
        i = at(ev, etype, nth)
        del ev[i]
        if evidence is not None:
            i = next(j for j in range(i, len(ev)) if ev[j]["type"] == evidence)
        return ev, i
    mutate.__name__ = f"drop_{etype.rsplit('.', 1)[-1]}"
    return mutate


def swap_web_search_in_progress_and_searching(ev):
    i = at(ev, "response.web_search_call.in_progress")
    ev[i], ev[i + 1] = ev[i + 1], ev[i]
    return ev, i


def repeat(etype: str, nth: int = 0):
    """Send the nth ``etype`` twice in a row: the second one is the fault."""
    def mutate(ev):
        i = at(ev, etype, nth)
        ev.insert(i + 1, copy.deepcopy(ev[i]))
        return ev, i + 1
    return mutate


def mcp_arguments_delta_after_done(ev):
    i = at(ev, "response.mcp_call_arguments.done")
    extra = copy.deepcopy(ev[i - 1])
    assert extra["type"] == "response.mcp_call_arguments.delta"
    extra["delta"] = ""  # empty: accumulation itself is unaffected
    ev.insert(i + 1, extra)
    return ev, i + 1


def code_delta_after_done(ev):
    i = at(ev, "response.code_interpreter_call_code.done", 1)
    extra = copy.deepcopy(ev[i - 1])
    assert extra["type"] == "response.code_interpreter_call_code.delta"
    extra["delta"] = ""
    ev.insert(i + 1, extra)
    return ev, i + 1


def swap_code_interpreting_and_completed(ev):
    i = at(ev, "response.code_interpreter_call.interpreting", 2)
    ev[i], ev[i + 1] = ev[i + 1], ev[i]
    return ev, i


def mcp_phase_wrong_item_id(ev):
    i = at(ev, "response.mcp_call.in_progress", 1)
    ev[i]["item_id"] = "mcp_not_this_item"
    return ev, i


def insert_phase(item_type: str, etype: str, *, nth: int = 0, offset: int = 1):
    """Insert a phase event ``etype`` naming the nth ``item_type`` item, ``offset`` events after
    its output_item.added (inside its window) or, with offset None, right after its done."""
    def mutate(ev):
        added, done = item_window(ev, item_type, nth)
        template = {"output_index": ev[added]["output_index"], "item_id": ev[added]["item"]["id"]}
        i = done + 1 if offset is None else added + offset
        ev.insert(i, phase_event(template, etype))
        return ev, i
    mutate.__name__ = f"insert_{etype.rsplit('.', 2)[-2]}_{etype.rsplit('.', 1)[-1]}"
    return mutate


def move_mcp_completed_after_item_done(ev):
    i = at(ev, "response.mcp_call.completed")
    event = ev.pop(i)
    assert ev[i]["type"] == ITEM_DONE
    ev.insert(i + 1, event)
    return ev, i  # the done that arrives before the final phase


def set_type(etype: str, new_type: str, nth: int = 0):
    def mutate(ev):
        i = at(ev, etype, nth)
        ev[i]["type"] = new_type
        return ev, i
    return mutate


def then(*steps: Callable):
    """Chain mutations; the evidence position is that of the last step that gives one."""
    def mutate(ev):
        pos = None
        for step in steps:
            ev, p = step(ev)
            pos = p if p is not None else pos
        return ev, pos
    return mutate


def done_field(item_type: str, field: str, value, nth: int = 0):
    def mutate(ev):
        set_done_field(ev, item_type, field, value, nth)
        return ev, item_window(ev, item_type, nth)[1]
    return mutate


def no_position(step: Callable):
    def mutate(ev):
        return step(ev)[0], None
    return mutate


CASES: dict[str, tuple[str, Callable, set[str]]] = {
    # web_search_call
    "search_in_progress_dropped": (SEARCH, drop("response.web_search_call.in_progress"),
                                   {"builtin.phase.order"}),
    "search_searching_dropped": (SEARCH, drop("response.web_search_call.searching", 2),
                                 {"builtin.phase.order"}),
    "search_in_progress_and_searching_swapped": (
        SEARCH, swap_web_search_in_progress_and_searching, {"builtin.phase.order"}),
    "search_completed_twice": (SEARCH, repeat("response.web_search_call.completed", 3),
                               {"builtin.phase.order"}),
    "search_completed_dropped": (SEARCH, drop("response.web_search_call.completed", 1),
                                 {"builtin.phase.terminal"}),
    "search_done_without_action": (SEARCH, done_field("web_search_call", "action", _DELETE, 4),
                                   {"builtin.web_search.action"}),
    "search_done_status_in_progress": (SEARCH, done_field("web_search_call", "status",
                                                          "in_progress"), {"builtin.item.status"}),
    # A completed search is not incomplete: the cut tolerance needs the phases unfinished.
    "search_completed_but_status_incomplete": (
        SEARCH, done_field("web_search_call", "status", "incomplete", 5),
        {"builtin.item.status", "spec.item.incomplete_last"}),
    "search_phase_on_a_message": (SEARCH, insert_phase("message", "response.web_search_call."
                                                       "searching", offset=2),
                                  {"builtin.phase.scope"}),
    # mcp_call
    "mcp_in_progress_dropped": (MCP, drop("response.mcp_call.in_progress"),
                                {"builtin.phase.order"}),
    "mcp_arguments_done_dropped": (MCP, drop("response.mcp_call_arguments.done", 1),
                                   {"builtin.phase.order"}),
    "mcp_completed_twice": (MCP, repeat("response.mcp_call.completed"), {"builtin.phase.order"}),
    "mcp_completed_then_failed": (
        MCP, then(repeat("response.mcp_call.completed"),
                  set_type("response.mcp_call.completed", "response.mcp_call.failed", 1)),
        {"builtin.phase.order"}),
    "mcp_arguments_delta_after_done": (MCP, mcp_arguments_delta_after_done,
                                       {"builtin.phase.order"}),
    "mcp_completed_dropped": (MCP, drop("response.mcp_call.completed", 1),
                              {"builtin.phase.terminal"}),
    # The generic item rules already judge where an item event may be and whom it names; they
    # are not judged a second time under builtin.*.
    "mcp_phase_wrong_item_id": (MCP, mcp_phase_wrong_item_id, {"stream.item_id.consistent"}),
    "mcp_phase_after_item_done": (MCP, insert_phase("mcp_call", "response.mcp_call.completed",
                                                    offset=None),
                                  {"stream.item.lifecycle"}),
    "mcp_final_phase_moved_after_item_done": (
        MCP, move_mcp_completed_after_item_done,
        {"builtin.phase.terminal", "stream.item.lifecycle"}),
    "mcp_phase_of_web_search": (MCP, insert_phase("mcp_call", "response.web_search_call."
                                                  "searching", nth=1, offset=2),
                                {"builtin.phase.scope"}),
    "mcp_failed_but_status_completed": (
        MCP, then(no_position(set_type("response.mcp_call.completed", "response.mcp_call.failed")),
                  done_field("mcp_call", "error", MCP_ERROR)), {"builtin.item.status"}),
    "mcp_failed_without_error": (
        MCP, then(no_position(set_type("response.mcp_call.completed", "response.mcp_call.failed")),
                  done_field("mcp_call", "status", "failed")), {"builtin.mcp.error"}),
    # mcp_list_tools
    "listing_in_progress_dropped": (LISTING, drop("response.mcp_list_tools.in_progress"),
                                    {"builtin.phase.order"}),
    "listing_completed_dropped": (LISTING, drop("response.mcp_list_tools.completed"),
                                  {"builtin.phase.terminal"}),
    "listing_completed_and_failed": (
        LISTING, then(repeat("response.mcp_list_tools.completed"),
                      set_type("response.mcp_list_tools.completed",
                               "response.mcp_list_tools.failed", 1)), {"builtin.phase.order"}),
    "listing_failed_without_error": (
        LISTING, then(no_position(set_type("response.mcp_list_tools.completed",
                                           "response.mcp_list_tools.failed")),
                      done_field("mcp_list_tools", "error", None)), {"builtin.mcp.error"}),
    # mcp_approval_request: no events between added and done.
    "approval_with_a_phase": (APPROVAL, insert_phase("mcp_approval_request",
                                                     "response.mcp_call.in_progress"),
                              {"builtin.phase.scope"}),
    # code_interpreter_call
    "code_in_progress_dropped": (CODE, drop("response.code_interpreter_call.in_progress", 1),
                                 {"builtin.phase.order"}),
    "code_done_dropped": (CODE, drop("response.code_interpreter_call_code.done"),
                          {"builtin.phase.order"}),
    "code_delta_after_done": (CODE, code_delta_after_done, {"builtin.phase.order"}),
    "code_interpreting_and_completed_swapped": (CODE, swap_code_interpreting_and_completed,
                                                {"builtin.phase.order"}),
    "code_interpreting_twice": (CODE, repeat("response.code_interpreter_call.interpreting", 1),
                                {"builtin.phase.order"}),
    "code_completed_dropped": (CODE, drop("response.code_interpreter_call.completed"),
                               {"builtin.phase.terminal"}),
    "code_done_status_in_progress": (CODE, done_field("code_interpreter_call", "status",
                                                      "in_progress", 2), {"builtin.item.status"}),
    "code_phase_of_mcp": (CODE, insert_phase("code_interpreter_call",
                                             "response.mcp_call.completed", nth=1, offset=3),
                          {"builtin.phase.scope"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_violation_fires_exactly_its_check_at_its_frame(case):
    name, mutate, expected = CASES[case]
    events, pos = mutate(copy.deepcopy(recorded(name)))
    log = judge(renumber(events))
    assert {f.check for f in log.findings} == expected, \
        [(f.check, f.message, f.evidence.get("frame")) for f in log.findings]
    assert expected <= log.applied
    first = min(expected, key=lambda c: (not c.startswith("builtin."), c))
    finding = next(f for f in log.findings if f.check == first)
    assert finding.evidence["frame"] == pos, (finding.message, finding.evidence)
    assert finding.evidence["sequence_number"] == events[pos]["sequence_number"] == pos


def test_order_evidence_names_what_was_expected():
    events, pos = drop("response.web_search_call.in_progress")(recorded(SEARCH))
    (finding,) = judge(renumber(events)).findings
    assert finding.check == "builtin.phase.order"
    assert finding.evidence["actual"] == "response.web_search_call.searching"
    assert finding.evidence["expected"] == ["response.web_search_call.in_progress"]
    assert finding.evidence["path"] == "$.type"


def test_terminal_evidence_names_the_missing_phase():
    events, pos = drop("response.mcp_call.completed")(recorded(MCP))
    (finding,) = judge(renumber(events)).findings
    assert finding.check == "builtin.phase.terminal"
    assert finding.evidence["expected"] == ["response.mcp_call.completed",
                                            "response.mcp_call.failed"]
    assert finding.evidence["actual"] == ITEM_DONE


def test_status_evidence_points_at_the_status_field():
    events, pos = then(no_position(set_type("response.mcp_call.completed",
                                            "response.mcp_call.failed")),
                       done_field("mcp_call", "error", MCP_ERROR))(recorded(MCP))
    (finding,) = judge(renumber(events)).findings
    assert finding.evidence["path"] == "$.item.status"
    assert (finding.evidence["expected"], finding.evidence["actual"]) == ("failed", "completed")


def test_a_skipped_phase_is_reported_once_and_the_item_carries_on():
    """Resynchronisation: after a fault the automaton continues from the phase that came, so one
    dropped event yields one finding, not one per later phase."""
    events, _ = drop("response.code_interpreter_call_code.done", 2)(recorded(CODE))
    log = judge(renumber(events))
    assert log.counts == {"builtin.phase.order": 1}


def test_without_schemas_the_phase_rules_still_judge():
    """The phase rules do not depend on schema validation (validate_schemas=False, as the load
    tests run the checker)."""
    events, _ = drop("response.web_search_call.searching")(recorded(SEARCH))
    checker = StreamChecker("openai", validate_schemas=False)
    for event in renumber(events):
        checker.event(event)
    checker.close()
    assert {f.check for f in checker.log.findings} == {"builtin.phase.order"}


@pytest.mark.parametrize("check", sorted(STREAM_BUILTIN_CHECKS))
def test_builtin_checks_are_catalogued_with_their_level(check):
    assert load_catalogue("openai").level(check) == STREAM_BUILTIN_CHECKS[check]


# -- the compiler --------------------------------------------------------------------------
def _compile(phases, done=None):
    return compile_phases({"item_phases": {"t": {"phases": phases, "done": done or {}}}},
                          load_checks()).by_item["t"]


def test_compiled_table_of_a_grammar_with_repeat_and_alternatives():
    g = _compile(["a", {"repeat": "d"}, "e", {"one_of": ["ok", "fail"]}])
    # State n is "before step n": a repeat keeps the state it was taken in (1), so state 2 is
    # never reached; its row is still well defined.
    assert g.table == ({"a": 1}, {"d": 1, "e": 3}, {"e": 3}, {"ok": 4, "fail": 4}, {})
    assert g.accepting == (False, False, False, False, True)
    assert g.expected(1) == ["d", "e"]
    assert g.expected(4) == [ITEM_DONE]


def test_an_event_may_come_back_in_a_later_repeat_step():
    """mcp_call's shape: ``a`` first, then any mix of ``d`` and ``a``, then ``e``."""
    g = _compile(["a", {"repeat": ["d", "a"]}, "e"])
    assert g.table == ({"a": 1}, {"d": 1, "a": 1, "e": 3}, {"e": 3}, {})
    # Out of order: ``a`` after ``e`` is behind both its steps; ``d`` first skips ``a``.
    assert g.place("a", 3) is None
    assert g.place("d", 0) == 1


def test_optional_steps_may_be_skipped_up_to_the_end():
    g = _compile(["a", {"optional": "b"}, {"repeat": ["c", "d"]}])
    assert g.table[1] == {"b": 2, "c": 2, "d": 2}
    assert g.accepting == (False, True, True, True)


@pytest.mark.parametrize(("phases", "done"), [
    (["a", "a"], None),  # one event in two steps, the later one not a repeat
    (["a", {"one_of": ["b", "a"]}], None),
    ([{"repeat": "a"}, {"repeat": ["a", "b"]}], None),  # a -> two states: not deterministic
    ([{"many": "a"}], None),  # unknown step kind
    ([{"repeat": []}], None),
    (["a"], {"zzz": {"status": "completed"}}),  # done rule for a phase the type lacks
    (["a"], {"a": {"non_null": {"error": "builtin.no_such_check"}}}),  # uncatalogued check
    (["a"], {"a": {"status": []}}),
    (["a"], {"a": {"status": 3}}),
])
def test_bad_grammar_is_refused(phases, done):
    with pytest.raises(SpecError):
        _compile(phases, done)
