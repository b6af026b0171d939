"""Sans-IO stream checker: SSE frames in, findings out.

Drivers (the scenario runner, ``respcheck validate``, locust users) feed it the frames the SSE
decoder produced; it never does I/O. It implements the Responses streaming grammar:

    response.created (sequence_number 0) -> response.in_progress ->
      for each output item, in output_index order:
        response.output_item.added
          [ response.content_part.added -> <part deltas>* -> <part .done> -> response.content_part.done ]*
          <other item events, e.g. function_call_arguments.delta* -> .done>
          <built-in tool phases, e.g. web_search_call.in_progress -> .searching -> .completed>
        response.output_item.done
    exactly one of response.completed | response.incomplete | response.failed, then nothing
    (but ``data: [DONE]`` where the profile requires it).

Which events accumulate into which (delta -> done) is data in specs/grammar.yaml, and so are the
phases of the built-in tool items (``item_phases``: mcp_list_tools, mcp_call,
mcp_approval_request, code_interpreter_call, web_search_call), which harness/core/phases.py compiles
into one transition table per item type; how the profiles differ (``[DONE]``, unknown events,
event names, levels) is data in specs/profiles.
The checks each branch raises are the ids in specs/checks.yaml.

Whatever a stream says twice must agree (issue 16): the Response's id, model and created_at in
every lifecycle and terminal event, and each lifecycle event's status and place; an item's
status when added (in_progress) and done (a final one), the fields it keeps (name, call_id,
server_label, role), the fields its stream builds starting empty, every event on it being of
its type, and its done item repeating what was streamed; a part's type and text from
content_part.added to the done item and the terminal output. Which fields are meant is data
in specs/grammar.yaml; nothing is judged twice (a hosted tool item's status after a final
phase is builtin.item.status's, a function_call's call_id tools.call_id.stable's).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson

from harness.core.catalogue import Profile, load_checks, load_grammar, load_profile
from harness.core.findings import FindingLog
from harness.core.phases import ItemPhases, PhaseGrammar, compile_phases
from harness.core.response import check_response_object
from harness.core.schemas import SchemaSet, schema_set
from harness.core.spec_rules import (
    check_extension_event,
    check_output_items,
    extensions_allowed,
    without_extensions,
)
from harness.core.sse import Frame

# The events after which a Responses stream has nothing more to say: the keys of
# specs/grammar.yaml `terminal`, the same names in every profile. The transports stop reading a
# stream there (harness/run/client.py, ws_client.py, fuzz.py).
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})

# Checks every stream with at least one frame is judged on.
_STREAM_CHECKS = (
    "sse.data.json", "sse.event_field.matches_type", "sse.done_sentinel",
    "schema.event", "schema.event.known_type",
    "stream.first_event.created", "stream.created.in_progress", "stream.in_progress.present",
    "stream.sequence.start_zero", "stream.sequence.contiguous", "stream.response_id.consistent",
    "stream.terminal.present", "stream.terminal.single", "stream.terminal.status",
    "stream.response.consistent", "stream.lifecycle.status", "stream.lifecycle.order",
)
_ITEM_CHECKS = (
    "stream.item.lifecycle", "stream.item.grammar", "stream.output_index.dense",
    "stream.item_id.consistent", "stream.item.done_matches_added", "stream.output.matches_items",
    "stream.item.added_status", "stream.item.done_status", "stream.item.fields_stable",
    "stream.delta.starts_empty",
)
# What a replay from N + 1 (``StreamChecker.resume``) does not judge: it starts mid-stream.
_FIRST_EVENT_CHECKS = ("stream.first_event.created", "stream.sequence.start_zero")
# Checks judged on every built-in tool item that has phases (an item type with `phases: []`,
# mcp_approval_request, is judged on builtin.phase.scope only).
_PHASE_CHECKS = ("builtin.phase.scope", "builtin.phase.order", "builtin.phase.terminal")


def _at_path(obj: Any, path: tuple) -> Any:
    """``obj[path[0]][path[1]]...``, or None where the path does not lead anywhere."""
    for key in path:
        if isinstance(key, int) and isinstance(obj, list) and 0 <= key < len(obj):
            obj = obj[key]
        elif isinstance(key, str) and isinstance(obj, dict):
            obj = obj.get(key)
        else:
            return None
    return obj


@functools.cache
def _phase_grammar() -> PhaseGrammar:
    return compile_phases(load_grammar(), load_checks())


@dataclass(slots=True)
class _Part:
    type: str
    text_field: str | None
    open: bool = True
    text: str | None = None  # value of the part's .done event, once seen


@dataclass(slots=True)
class _Item:
    id: Any
    type: Any
    output_index: int
    open: bool = True
    parts: list[_Part] = field(default_factory=list)
    done: dict[str, Any] | None = None
    added: dict[str, Any] = field(default_factory=dict)  # the item of output_item.added
    values: dict[tuple, Any] | None = None  # item_path -> value of an accumulator's .done
    phases: ItemPhases | None = None  # built-in tool items: the grammar of their phase events
    phase_state: int = 0  # state of ``phases`` reached so far
    final_phase: str | None = None  # the last phase accepted that has a rule for the done item


class StreamChecker:
    """Judge one streamed response. ``headers()`` once, ``feed(frame)`` per frame, ``close()``."""

    def __init__(self, profile: Profile | str = "openai", *, log: FindingLog | None = None,
                 validate_schemas: bool = True) -> None:
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
        self.log = log if log is not None else FindingLog()
        self.schemas: SchemaSet | None = schema_set(self.profile.name) if validate_schemas else None
        # Without schemas, schema.* is not judged, so it must not be reported as applied.
        self._stream_checks = _STREAM_CHECKS if validate_schemas else tuple(
            c for c in _STREAM_CHECKS if not c.startswith("schema."))
        g = load_grammar()
        self._terminal: dict[str, str] = g["terminal"]
        self._lifecycle = set(g["lifecycle"])
        self._acc: dict[str, dict[str, Any]] = g["accumulators"]
        self._acc_done = {spec["done"]: (delta, spec) for delta, spec in self._acc.items()}
        self._part_text_field: dict[str, str] = g["part_text_field"]
        self._opaque = frozenset(g.get("opaque_item_fields") or ())
        self._added_empty: dict[str, str] = g["added_empty"]
        self._added_complete = frozenset(g["added_complete"])
        self._final_status = frozenset(g["item_final_status"])
        self._fixed_fields: tuple[str, ...] = tuple(g["item_fixed_fields"])
        self._response_fixed: tuple[str, ...] = tuple(g["response_fixed_fields"])
        self._lifecycle_status: dict[str, str] = g["lifecycle_status"]
        pg = _phase_grammar()
        self._phases: dict[str, ItemPhases] = pg.by_item
        self._phase_owners: dict[str, tuple[str, ...]] = pg.owners
        self._phase_cut_status = pg.cut_status
        self._aliases = self.profile.event_aliases
        self._grammar_names = self.profile.grammar_names
        self._extensions = extensions_allowed(self.profile)
        self._validators: dict[str, Any] = {}  # event type -> compiled validator (None: unknown)
        self.events: list[dict[str, Any]] = []
        self.final_response: dict[str, Any] | None = None
        self.terminal_type: str | None = None
        self._n = 0  # events seen (JSON frames, not [DONE])
        self._last_seq: int | None = None
        self._response_id: Any = None
        self._response_fixed_values: dict[str, Any] | None = None  # from the first lifecycle event
        self._items_started = False  # an item was added (lifecycle events come before)
        self._created_seen = False
        self._items: list[_Item] = []
        self._buffers: dict[tuple, list[str]] = {}
        self._closed_keys: set[tuple] = set()
        self._saw_in_progress = False
        self._after_terminal = False
        self._done_seen_at: int | None = None
        self._pending_error: dict[str, Any] | None = None
        self._error_event: dict[str, Any] | None = None  # the last `error` event
        self._started = False
        self._resume_after: int | None = None  # a replay from sequence number N + 1 (``resume``)
        self._replay_started = False

    # -- driver API ------------------------------------------------------------------------
    def resume(self, earlier: list[dict[str, Any]], after: int) -> None:
        """Judge what follows as a replay from ``after + 1`` (``GET /v1/responses/{id}?stream=true
        &starting_after=N``): ``earlier`` (the original stream's events up to N, judged with their
        own stream) set the grammar's state without findings, so the replayed events are held
        to the same grammar as if they had followed them; the replay's first sequence_number
        must be N + 1 (stream.replay.start). Only the replayed events are kept in ``events``."""
        own, self.log = self.log, FindingLog()
        for event in earlier:
            self.event(event)
        self.log = own
        self.events = []
        self._started = False
        self._resume_after = after
        self._stream_checks = tuple(c for c in self._stream_checks if c not in _FIRST_EVENT_CHECKS) + (
            "stream.replay.start",)

    def headers(self, status: int, content_type: str | None) -> None:
        self.log.apply("sse.content_type")
        ctype = (content_type or "").split(";")[0].strip().lower()
        if ctype != "text/event-stream":
            self.log.fail("sse.content_type",
                          f"Content-Type is {content_type!r}, expected text/event-stream",
                          expected="text/event-stream", actual=content_type)

    def feed_all(self, frames: list[Frame]) -> None:
        for frame in frames:
            self.feed(frame)

    def feed(self, frame: Frame) -> None:
        log = self.log
        if not self._started:
            self._started = True
            log.apply(*self._stream_checks)
        if self._done_seen_at is not None:
            log.fail("sse.done_sentinel", "a frame follows the data: [DONE] sentinel",
                     frame=frame.index)
        if frame.is_done:
            self._done_seen_at = frame.index
            return
        try:
            event = orjson.loads(frame.data)
        except ValueError as exc:
            log.fail("sse.data.json", f"data is not JSON: {exc}", frame=frame.index,
                     actual=frame.data[:200])
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            log.fail("sse.data.json", "data is not a JSON object with a string `type`",
                     frame=frame.index, actual=frame.data[:200])
            return
        etype = event["type"]
        if frame.event != etype:
            log.fail("sse.event_field.matches_type",
                     f"event: field is {frame.event!r} but the JSON type is {etype!r}",
                     frame=frame.index, expected=etype, actual=frame.event)
        self.event(event, frame.index)

    def event(self, event: dict[str, Any], index: int | None = None) -> None:
        """Judge one decoded event (for drivers that already have JSON, e.g. WebSocket)."""
        log = self.log
        if not self._started:
            self._started = True
            log.apply(*self._stream_checks)
        i = self._n if index is None else index
        self._n += 1
        self.events.append(event)
        raw_type = event["type"]
        seq = event.get("sequence_number")
        ev = {"frame": i, "sequence_number": seq, "event_type": raw_type}
        # The profile's name for the event (an alias from another implementation is judged by
        # the profile's schema for it, and reported), then the grammar's name for it.
        spec_type = self._aliases.get(raw_type)
        if spec_type is not None:
            log.apply("schema.event.spec_name")
            log.fail("schema.event.spec_name", f"{raw_type!r} is another implementation's name; "
                     f"profile {self.profile.name} names this event {spec_type!r}", **ev,
                     expected=spec_type, actual=raw_type)
        else:
            spec_type = raw_type
        etype = self._grammar_names.get(spec_type, spec_type)

        # Ordering: first event, sequence numbers, nothing after the terminal event.
        if self._resume_after is not None and not self._replay_started:
            self._replay_started = True
            if seq != self._resume_after + 1:
                log.fail("stream.replay.start", f"a replay from starting_after={self._resume_after} "
                         f"begins at sequence_number {seq!r}", **ev, path="$.sequence_number",
                         expected=self._resume_after + 1, actual=seq)
        elif self._n == 1:
            if etype != "response.created":
                log.fail("stream.first_event.created", f"first event is {etype!r}", **ev,
                         expected="response.created", actual=etype)
            if seq != 0:
                log.fail("stream.sequence.start_zero", f"first sequence_number is {seq!r}",
                         **ev, path="$.sequence_number", expected=0, actual=seq)
        elif isinstance(seq, int) and isinstance(self._last_seq, int) and seq != self._last_seq + 1:
            log.fail("stream.sequence.contiguous",
                     f"sequence_number {seq} follows {self._last_seq}", **ev,
                     path="$.sequence_number", expected=self._last_seq + 1, actual=seq)
        prev_seq = self._last_seq
        if isinstance(seq, int):
            self._last_seq = seq
        if self._after_terminal:
            log.fail("stream.terminal.single", f"{etype} arrives after the terminal event "
                     f"{self.terminal_type}", **ev)
        if self._pending_error is not None and etype != "response.failed":
            log.fail("stream.error.then_failed", f"`error` event is followed by {etype}, "
                     "not response.failed", **ev, expected="response.failed", actual=etype)
        self._pending_error = None

        # Schema. The validator is looked up once per event type per stream (the hot path:
        # SchemaSet.validate_event would rebuild its cache key on every event); only an
        # invalid event goes back through validate_event for its error list.
        schemas = self.schemas
        if schemas is not None:
            validator = self._validators.get(spec_type, self)
            if validator is self:
                validator = self._validators[spec_type] = (
                    schemas.event_validator(spec_type) if schemas.known_event(spec_type) else None)
            if validator is None:
                if not self._extension_allowed(raw_type):
                    log.fail("schema.event.known_type", f"event type {raw_type!r} is not in "
                             "the spec", **ev)
                else:  # an extension event: judged by its required fields, then skipped
                    check_extension_event(event, prev_seq, log, ev)
                return
            checked = dict(event, type=spec_type) if spec_type != raw_type else event
            if self._extensions:
                checked = without_extensions(checked)
            if not validator.is_valid(checked):
                for err in schemas.validate_event(checked):
                    log.fail("schema.event", f"{spec_type}: {err.message}", **ev, path=err.path)
        elif self._extension_allowed(raw_type) and raw_type not in self._lifecycle:
            check_extension_event(event, prev_seq, log, ev)
            return

        # Lifecycle / terminal.
        if etype in self._lifecycle or etype in self._terminal:
            self._lifecycle_event(etype, event, ev)
        elif etype == "error":
            log.apply("stream.error.then_failed")
            self._pending_error = self._error_event = event
        elif etype == "response.output_item.added":
            self._item_added(event, ev)
        elif etype == "response.output_item.done":
            self._item_done(event, ev)
        elif "output_index" in event or "item_id" in event:
            self._item_event(etype, event, ev)

    def close(self) -> None:
        """End of stream: judge what must have happened by now."""
        log = self.log
        if not self._started:
            if self._resume_after is not None and self.terminal_type is not None:
                return  # a replay from after the terminal event: nothing is left to send
            log.apply("stream.terminal.present")
            log.fail("stream.terminal.present", "the stream carried no events at all")
            return
        if self.terminal_type is None:
            log.fail("stream.terminal.present",
                     "the stream ended without response.completed/incomplete/failed",
                     frame=self._n - 1, sequence_number=self._last_seq)
        if self._pending_error is not None:
            log.fail("stream.error.then_failed", "the stream ends after an `error` event "
                     "without response.failed", sequence_number=self._pending_error.get(
                         "sequence_number"))
        if not self._saw_in_progress and self.terminal_type is not None:
            log.fail("stream.in_progress.present", "no response.in_progress event was sent")
        mode = self.profile.done_sentinel
        if mode == "required" and self._done_seen_at is None:
            log.fail("sse.done_sentinel", "the stream does not end with data: [DONE] "
                     f"(profile {self.profile.name} requires it)")
        elif mode == "forbidden" and self._done_seen_at is not None:
            log.fail("sse.done_sentinel", f"data: [DONE] sent (profile {self.profile.name}: "
                     "OpenAI's service sends none)", frame=self._done_seen_at)

    # -- lifecycle -------------------------------------------------------------------------
    def _extension_allowed(self, etype: str) -> bool:
        mode = self.profile.unknown_events
        if mode == "allow":
            return True
        if mode == "allow_prefixed":
            slug, sep, name = etype.partition(":")
            return bool(sep and slug and name)
        return False

    def _lifecycle_event(self, etype: str, event: dict[str, Any], ev: dict[str, Any]) -> None:
        log = self.log
        response = event.get("response")
        if not isinstance(response, dict):
            return  # schema.event already reported it
        rid = response.get("id")
        if self._response_id is None:
            self._response_id = rid
        elif rid != self._response_id:
            log.fail("stream.response_id.consistent", f"response id {rid!r} differs from "
                     f"{self._response_id!r}", **ev, path="$.response.id",
                     expected=self._response_id, actual=rid)
        fixed = self._response_fixed_values
        if fixed is None:
            self._response_fixed_values = {k: response.get(k) for k in self._response_fixed}
        else:
            for name, first in fixed.items():
                if response.get(name) != first:
                    log.fail("stream.response.consistent", f"response.{name} is "
                             f"{response.get(name)!r}; the stream's first response had "
                             f"{first!r}", **ev, path=f"$.response.{name}", expected=first,
                             actual=response.get(name))
        again = etype == "response.created" and self._created_seen
        if etype == "response.created":
            self._created_seen = True
        if etype not in self._terminal and (self._items_started or again):
            log.fail("stream.lifecycle.order", f"{etype} comes after "
                     + ("the stream's first output item" if self._items_started
                        else "the stream's response.created"), **ev)
        want = self._lifecycle_status.get(etype)
        if want is not None and response.get("status") != want:
            log.fail("stream.lifecycle.status", f"{etype} carries status "
                     f"{response.get('status')!r}", **ev, path="$.response.status",
                     expected=want, actual=response.get("status"))
        if etype == "response.created":
            status, output = response.get("status"), response.get("output")
            if status not in ("in_progress", "queued") or output not in ([], None):
                log.fail("stream.created.in_progress", f"response.created has status {status!r}"
                         f" and {len(output or [])} output items", **ev, path="$.response.status",
                         expected="in_progress", actual=status)
        elif etype == "response.in_progress":
            self._saw_in_progress = True
        elif etype in self._terminal:
            self._terminal_event(etype, response, ev)

    def _terminal_event(self, etype: str, response: dict[str, Any], ev: dict[str, Any]) -> None:
        log = self.log
        if self.terminal_type is not None:
            log.fail("stream.terminal.single", f"second terminal event {etype} (first was "
                     f"{self.terminal_type})", **ev)
            return
        self.terminal_type = etype
        self._after_terminal = True
        self.final_response = response
        if etype == "response.failed" and self._error_event is not None:
            self._error_matches_failed(self._error_event, response, ev)
        want = self._terminal[etype]
        if response.get("status") != want:
            log.fail("stream.terminal.status", f"{etype} carries status "
                     f"{response.get('status')!r}", **ev, path="$.response.status",
                     expected=want, actual=response.get("status"))
        if self._items or response.get("output"):
            self._terminal_items(response, ev)
        # The final Response object itself (status/incomplete_details/usage rules), whether or
        # not it has output (an incomplete or failed response often has none).
        check_response_object(response, log, evidence=ev, schemas=None, path_prefix="$.response")
        check_output_items(response, log, self.profile, evidence=ev, path_prefix="$.response",
                           known_types=self.schemas.output_item_types if self.schemas else None)

    def _error_matches_failed(self, event: dict[str, Any], response: dict[str, Any],
                              ev: dict[str, Any]) -> None:
        """stream.error.consistent: the `error` event and the failed response's `error` tell
        the same failure (its code and message), as in openai-error.1."""
        log = self.log
        log.apply("stream.error.consistent")
        said = event.get("error") if isinstance(event.get("error"), dict) else event  # flat
        final = response.get("error") if isinstance(response.get("error"), dict) else {}
        for name in ("code", "message"):
            if name in said and said[name] != final.get(name):
                log.fail("stream.error.consistent", f"the error event's {name} is "
                         f"{said[name]!r}, response.failed's error.{name} "
                         f"{final.get(name)!r}", **ev, path=f"$.response.error.{name}",
                         expected=said[name], actual=final.get(name))

    def _terminal_items(self, response: dict[str, Any], ev: dict[str, Any]) -> None:
        log = self.log
        log.apply(*_ITEM_CHECKS)
        for item in self._items:
            if item.open:
                log.fail("stream.item.lifecycle", f"item {item.id!r} (output_index "
                         f"{item.output_index}) was never closed by output_item.done", **ev)
        output = response.get("output")
        opaque = self._opaque
        done_items = [item.done for item in self._items]
        if isinstance(output, list) and opaque:
            output = [{k: v for k, v in o.items() if k not in opaque} if isinstance(o, dict)
                      else o for o in output]
            done_items = [{k: v for k, v in o.items() if k not in opaque} if isinstance(o, dict)
                          else o for o in done_items]
        if output != done_items:
            detail = self._first_difference(output, done_items)
            log.fail("stream.output.matches_items", "terminal response.output differs from "
                     f"the streamed items: {detail[0]}", **ev, path=detail[1])

    @staticmethod
    def _first_difference(output: Any, items: list[Any]) -> tuple[str, str]:
        if not isinstance(output, list):
            return "output is not a list", "$.response.output"
        if len(output) != len(items):
            return f"{len(output)} items in output, {len(items)} streamed", "$.response.output"
        for i, (a, b) in enumerate(zip(output, items)):
            if a != b:
                if isinstance(a, dict) and isinstance(b, dict):
                    # A key present in one and absent from the other differs even when its
                    # value is null (absent and null are apart in JSON and in the
                    # Open Responses schemas): name it, and say on which side it is missing.
                    keys = sorted(k for k in set(a) | set(b)
                                  if (k in a) != (k in b) or a.get(k) != b.get(k))
                    absent = [f"{k} absent from the {'streamed item' if k in a else 'output'}"
                              for k in keys if (k in a) != (k in b)]
                    more = f" ({'; '.join(absent)})" if absent else ""
                    return (f"item {i} differs in {keys}{more}",
                            f"$.response.output[{i}].{keys[0]}" if keys else f"$.response.output[{i}]")
                return f"item {i} differs", f"$.response.output[{i}]"
        return "equal", "$.response.output"

    # -- items -----------------------------------------------------------------------------
    def _item_added(self, event: dict[str, Any], ev: dict[str, Any]) -> None:
        log = self.log
        log.apply(*_ITEM_CHECKS)
        item = event.get("item") if isinstance(event.get("item"), dict) else {}
        idx = event.get("output_index")
        if idx != len(self._items):
            log.fail("stream.output_index.dense", f"output_item.added has output_index {idx!r},"
                     f" expected {len(self._items)}", **ev, path="$.output_index",
                     expected=len(self._items), actual=idx)
        if self._after_terminal:
            return
        self._items_started = True
        itype = item.get("type")
        if "status" in item and item["status"] != "in_progress" \
                and itype not in self._added_complete:
            log.fail("stream.item.added_status", f"{itype} item added with status "
                     f"{item['status']!r}", **ev, path="$.item.status", expected="in_progress",
                     actual=item["status"])
        built = self._added_empty.get(itype)
        if built is not None and item.get(built) not in ("", [], None):
            log.fail("stream.delta.starts_empty", f"{itype} added with {built} "
                     f"{str(item[built])[:80]!r}; what the stream builds would be appended to "
                     "it", **ev, path=f"$.item.{built}", actual=str(item[built])[:200])
        phases = self._phases.get(itype)
        self._items.append(_Item(item.get("id"), itype, len(self._items),
                                 phases=phases, added=item))
        if phases is not None:
            log.apply(*(_PHASE_CHECKS if phases.events else _PHASE_CHECKS[:1]))
        if item.get("type") == "function_call":
            log.apply("tools.arguments.added_empty", "tools.call_id.stable")
            if item.get("arguments") not in ("", None):
                log.fail("tools.arguments.added_empty", "function_call added with arguments "
                         f"{str(item.get('arguments'))[:80]!r}; the deltas would be appended to "
                         "them", **ev, path="$.item.arguments", expected="",
                         actual=str(item.get("arguments"))[:200])
            if not isinstance(item.get("call_id"), str) or not item.get("call_id"):
                log.fail("tools.call_id.stable", "function_call added without a call_id", **ev,
                         path="$.item.call_id", actual=item.get("call_id"))

    def _find_item(self, event: dict[str, Any], ev: dict[str, Any]) -> _Item | None:
        log = self.log
        idx = event.get("output_index")
        item = None
        if isinstance(idx, int) and 0 <= idx < len(self._items):
            item = self._items[idx]
        elif "item_id" in event:
            item = next((it for it in self._items if it.id == event["item_id"]), None)
        if item is None:
            log.fail("stream.item.lifecycle", f"{ev['event_type']} refers to output_index "
                     f"{idx!r} / item_id {event.get('item_id')!r}, which was never added", **ev,
                     path="$.output_index")
            return None
        if "item_id" in event and event["item_id"] != item.id:
            log.fail("stream.item_id.consistent", f"item_id {event['item_id']!r} but the item "
                     f"at output_index {item.output_index} is {item.id!r}", **ev,
                     path="$.item_id", expected=item.id, actual=event["item_id"])
        if isinstance(idx, int) and idx != item.output_index:
            log.fail("stream.item_id.consistent", f"output_index {idx} but item {item.id!r} "
                     f"was added at {item.output_index}", **ev, path="$.output_index",
                     expected=item.output_index, actual=idx)
        if not item.open:
            log.fail("stream.item.lifecycle", f"{ev['event_type']} for item {item.id!r} "
                     "after its output_item.done", **ev)
        return item

    def _item_done(self, event: dict[str, Any], ev: dict[str, Any]) -> None:
        log = self.log
        done = event.get("item") if isinstance(event.get("item"), dict) else {}
        item = self._find_item(event, ev)
        if item is None or not item.open:
            return
        item.open = False
        item.done = done
        call_id = item.added.get("call_id")
        if item.type == "function_call" and done.get("call_id") != call_id:
            log.fail("tools.call_id.stable", f"output_item.done has call_id "
                     f"{done.get('call_id')!r}, added had {call_id!r}", **ev,
                     path="$.item.call_id", expected=call_id, actual=done.get("call_id"))
        status_judged = item.phases is not None and self._phases_done(item, done, ev)
        if "status" in done and not status_judged and done["status"] not in self._final_status:
            log.fail("stream.item.done_status", f"{item.type} item done with status "
                     f"{done['status']!r}", **ev, path="$.item.status",
                     expected=sorted(self._final_status), actual=done["status"])
        added = item.added
        for name in self._fixed_fields:
            if name in added and done.get(name) != added[name] and not (
                    name == "call_id" and item.type == "function_call"):
                log.fail("stream.item.fields_stable", f"output_item.done has {name} "
                         f"{done.get(name)!r}, output_item.added had {added[name]!r}", **ev,
                         path=f"$.item.{name}", expected=added[name], actual=done.get(name))
        if item.values:
            log.apply("stream.item.done_content")
            for path, value in item.values.items():
                final = _at_path(done, path)  # judged where the done item repeats the value
                if final is not None and final != value:
                    where = ".".join(f"[{k}]" if isinstance(k, int) else k for k in path)
                    log.fail("stream.item.done_content", f"output_item.done item.{where} "
                             "differs from the value its stream's .done event gave", **ev,
                             path="$.item." + where.replace(".[", "["),
                             expected=str(value)[:200], actual=str(final)[:200])
        if done.get("id") != item.id or done.get("type") != item.type:
            log.fail("stream.item.done_matches_added", f"output_item.done is {done.get('type')!r}"
                     f" {done.get('id')!r}, added was {item.type!r} {item.id!r}", **ev,
                     path="$.item.id", expected=item.id, actual=done.get("id"))
        for n, part in enumerate(item.parts):
            if part.open:
                log.fail("stream.item.grammar", f"content part {n} of item {item.id!r} was "
                         "never closed by content_part.done", **ev, path=f"$.item.content[{n}]")
        content = done.get("content")
        if item.parts and isinstance(content, list):
            log.apply("stream.item.done_content")
            if len(content) != len(item.parts):
                log.fail("stream.item.done_content", f"output_item.done has {len(content)} "
                         f"content parts, {len(item.parts)} were streamed", **ev,
                         path="$.item.content", expected=len(item.parts), actual=len(content))
            for n, (part, final) in enumerate(zip(item.parts, content)):
                if part.text_field and part.text is not None and isinstance(final, dict) \
                        and final.get(part.text_field) != part.text:
                    log.fail("stream.item.done_content", f"content[{n}].{part.text_field} "
                             "differs from the streamed text", **ev,
                             path=f"$.item.content[{n}].{part.text_field}",
                             expected=part.text[:200], actual=str(final.get(part.text_field))[:200])

    def _item_event(self, etype: str, event: dict[str, Any], ev: dict[str, Any]) -> None:
        log = self.log
        item = self._find_item(event, ev)
        if item is None:
            return
        if etype in self._phase_owners and item.open:
            self._phase_event(etype, item, ev)
        if etype == "response.content_part.added":
            log.apply("stream.content_index.dense")
            ci = event.get("content_index")
            if ci != len(item.parts):
                log.fail("stream.content_index.dense", f"content_part.added has content_index "
                         f"{ci!r}, expected {len(item.parts)}", **ev, path="$.content_index",
                         expected=len(item.parts), actual=ci)
            added = event.get("part") or {}
            ptype = added.get("type")
            text_field = self._part_text_field.get(ptype)
            log.apply("stream.delta.starts_empty")
            if text_field is not None and added.get(text_field) not in ("", None):
                log.fail("stream.delta.starts_empty", f"content_part.added {ptype} part has "
                         f"{text_field} {str(added[text_field])[:80]!r}; the deltas would be "
                         "appended to it", **ev, path=f"$.part.{text_field}", expected="",
                         actual=str(added[text_field])[:200])
            item.parts.append(_Part(ptype, text_field))
        elif etype == "response.content_part.done":
            log.apply("stream.part.done_matches")
            part = self._part(item, event, ev)
            if part is None:
                return
            if not part.open:
                log.fail("stream.item.grammar", "second content_part.done for content_index "
                         f"{event.get('content_index')}", **ev)
            part.open = False
            final = event.get("part") or {}
            if final.get("type") != part.type:
                log.fail("stream.part.done_matches", f"content_part.done part is a "
                         f"{final.get('type')!r}, content_part.added was a {part.type!r}", **ev,
                         path="$.part.type", expected=part.type, actual=final.get("type"))
            elif part.text_field and part.text is not None \
                    and final.get(part.text_field) != part.text:
                log.fail("stream.part.done_matches", f"content_part.done {part.text_field} "
                         "differs from the text of the part's .done event", **ev,
                         path=f"$.part.{part.text_field}", expected=part.text[:200],
                         actual=str(final.get(part.text_field))[:200])
        elif etype in self._acc:
            self._delta(etype, self._acc[etype], item, event, ev)
        elif etype in self._acc_done:
            delta_type, spec = self._acc_done[etype]
            self._done(etype, spec, item, event, ev)

    def _part(self, item: _Item, event: dict[str, Any], ev: dict[str, Any]) -> _Part | None:
        ci = event.get("content_index")
        if not isinstance(ci, int) or not 0 <= ci < len(item.parts):
            self.log.fail("stream.item.grammar", f"{ev['event_type']} for content_index {ci!r},"
                          " which no content_part.added opened", **ev, path="$.content_index")
            return None
        return item.parts[ci]

    @staticmethod
    def _key(spec: dict[str, Any], event: dict[str, Any]) -> tuple:
        return (spec["done"], *map(event.get, spec["key"]))

    def _target(self, etype, spec, item: _Item, event, ev) -> tuple[bool, _Part | None]:
        """Whether an accumulated event writes into an item (and content part) of the type it
        is for (stream.event.item_type: the SDK's accumulator asserts it), and the part. A phase
        event on an item of another type (mcp_call_arguments, code_interpreter_call_code) is
        judged by builtin.phase.scope instead."""
        if item.type != spec["item"]:
            if etype not in self._phase_owners:
                self.log.fail("stream.event.item_type", f"{etype} for item {item.id!r}, a "
                              f"{item.type!r}; it belongs to a {spec['item']!r}", **ev,
                              path="$.item_id", expected=spec["item"], actual=item.type)
            return False, None
        if "part" not in spec:
            return True, None
        ci = event.get("content_index")  # self._part, inlined on the hot path (one call a delta)
        if not isinstance(ci, int) or not 0 <= ci < len(item.parts):
            return False, self._part(item, event, ev)  # reports it
        part = item.parts[ci]
        if not part.open:
            self.log.fail("stream.item.grammar", f"{etype} after content_part.done", **ev)
        if part.type != spec["part_type"]:
            self.log.fail("stream.event.item_type", f"{etype} writes into a {part.type!r} "
                          "content part", **ev, path="$.content_index",
                          expected=spec["part_type"], actual=part.type)
            return False, part
        return True, part

    def _delta(self, etype, spec, item: _Item, event, ev) -> None:
        log = self.log
        log.applied.add("stream.delta.accumulates")  # once per delta: the hot path
        self._target(etype, spec, item, event, ev)
        key = (spec["done"], *map(event.get, spec["key"]))  # self._key, inlined
        if key in self._closed_keys and not self._phase_ordered(item, etype):
            log.fail("stream.item.grammar", f"{etype} after its {spec['done']}", **ev)
        delta = event.get("delta")
        if isinstance(delta, str):
            self._buffers.setdefault(key, []).append(delta)

    def _done(self, etype, spec, item: _Item, event, ev) -> None:
        log = self.log
        log.apply("stream.delta.accumulates", "stream.event.item_type")
        key = self._key(spec, event)
        if key in self._closed_keys and not self._phase_ordered(item, etype):
            log.fail("stream.item.grammar", f"second {etype} for the same key", **ev)
        self._closed_keys.add(key)
        chunks = self._buffers.pop(key, None)
        value = event.get(spec["done_field"])
        accumulated = True
        if chunks is not None:
            joined = "".join(chunks)
            if value != joined:
                accumulated = False
                log.fail("stream.delta.accumulates", f"{etype}.{spec['done_field']} is not the "
                         f"concatenation of its {len(chunks)} deltas", **ev,
                         path=f"$.{spec['done_field']}", expected=joined[:200],
                         actual=str(value)[:200])
        fits, part = self._target(etype, spec, item, event, ev)
        if part is not None and fits and isinstance(value, str):
            part.text = value
        elif fits and accumulated and "item_path" in spec:  # the done item repeats it
            path = tuple(event.get(k) if k in spec["key"] else k for k in spec["item_path"])
            if item.values is None:
                item.values = {}
            item.values[path] = value

    # -- built-in tool item phases (the grammar: specs/grammar.yaml item_phases) ----------------
    @staticmethod
    def _phase_ordered(item: _Item, etype: str) -> bool:
        """Whether the order of ``etype`` on ``item`` is judged by the item's phase grammar
        (builtin.phase.order), so that stream.item.grammar does not judge it a second time."""
        return item.phases is not None and etype in item.phases.events

    def _phase_event(self, etype: str, item: _Item, ev: dict[str, Any]) -> None:
        log = self.log
        phases = item.phases
        if phases is None or etype not in phases.events:
            # An MCP, code_interpreter or web_search phase on an item of another type: the
            # openai SDK types each phase event for one item type, and clients route it by
            # output_index to whatever call is open there.
            log.fail("builtin.phase.scope", f"{etype} is a phase of "
                     f"{' / '.join(self._phase_owners[etype])} items, but item {item.id!r} at "
                     f"output_index {item.output_index} is a {item.type!r}", **ev,
                     path="$.item_id", expected=list(self._phase_owners[etype]),
                     actual=item.type)
            return
        # The item's own phase: it must be one the grammar allows next (OpenAI wire: every
        # recorded item sends its phases in the grammar's order).
        state = item.phase_state
        nxt = phases.table[state].get(etype)
        if nxt is None:
            log.fail("builtin.phase.order", f"{etype} for {item.type} {item.id!r} where "
                     f"{' or '.join(phases.expected(state))} was expected", **ev, path="$.type",
                     expected=phases.expected(state), actual=etype)
            nxt = phases.place(etype, state)
            if nxt is None:
                return  # a repeated or late phase: the item stays where it was
            # else phases were skipped: carry on from this one, reported once
        item.phase_state = nxt
        if etype in phases.done:
            item.final_phase = etype

    def _phases_done(self, item: _Item, done: dict[str, Any], ev: dict[str, Any]) -> bool:
        """output_item.done of a built-in tool item: its phases are over, and the done item
        says what the last of them said. Returns whether its status was judged here
        (builtin.item.status), so that stream.item.done_status does not judge it again."""
        log = self.log
        phases = item.phases
        status = done.get("status")
        # The final phase (.completed / .failed) comes before output_item.done, unless the done
        # item says it was cut short (phases_cut_status).
        if not phases.accepting[item.phase_state] and not (
                self._phase_cut_status is not None and status == self._phase_cut_status):
            missing = phases.expected(item.phase_state)
            log.fail("builtin.phase.terminal", f"output_item.done closes {item.type} "
                     f"{item.id!r} before its phases ended ({' or '.join(missing)} expected)",
                     **ev, path="$.type", expected=missing, actual=ev["event_type"])
        rule = phases.done.get(item.final_phase) if item.final_phase is not None else None
        if rule is None:
            return False
        if rule.status is not None:
            log.apply("builtin.item.status")
            if status not in rule.status:
                want = rule.status[0] if len(rule.status) == 1 else list(rule.status)
                log.fail("builtin.item.status", f"{item.type} {item.id!r} ends with "
                         f"{item.final_phase} but output_item.done has status {status!r}",
                         **ev, path="$.item.status", expected=want, actual=status)
        for name, check in rule.non_null:
            log.apply(check)
            if done.get(name) is None:
                log.fail(check, f"{item.type} {item.id!r} ends with {item.final_phase} but "
                         f"output_item.done carries no {name}", **ev, path=f"$.item.{name}",
                         expected="non-null", actual=done.get(name))
        return rule.status is not None
