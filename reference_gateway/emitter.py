"""The streaming event state machine: chat-completions deltas in, Responses events out.

Grammar it produces (what OpenAI's service sends; see shared/fixtures/openai-recorded and the
SDK's ``ResponseStreamEvent`` union):

    response.created  response.in_progress
    item*
    (response.completed | response.incomplete)

    item := reasoning | message | function_call
    reasoning := output_item.added  content_part.added(reasoning_text)
                 reasoning_text.delta*  reasoning_text.done  content_part.done
                 summary?  output_item.done
    summary := reasoning_summary_part.added  reasoning_summary_text.delta
               reasoning_summary_text.done  reasoning_summary_part.done
    message := output_item.added  content_part.added(output_text)
               output_text.delta*  output_text.done  content_part.done  output_item.done
    function_call := output_item.added  function_call_arguments.delta*
                     function_call_arguments.done  output_item.done

A reasoning item's ``summary`` (the request's ``reasoning.summary``; reasoning_summary.py writes
it from the whole reasoning text) is streamed when the text is complete: after its
``content_part.done``, before its ``output_item.done``, as OpenAI's service orders a summary part
inside the item (added, text deltas, text done, part done; ``summary_index`` 0). No reasoning
text, or no ``reasoning.summary``: no summary events and ``summary: []``.

or, when the upstream fails, the open text-like item (if any) closed as ``incomplete`` with the
text it got, then ``error`` then ``response.failed`` (whose output holds the closed items).
``sequence_number`` starts at 0 and rises by exactly 1; ``output_index`` is dense. At most one
item is open at a time: events of two items never interleave.

Reasoning and message text stream live. Function-call deltas are buffered per chat tool-call
index and emitted when the upstream stream ends, each upstream fragment as one
``function_call_arguments.delta``: chat servers may interleave the deltas of parallel calls, a
Responses stream may not, and a call to a tool that was not allowed is caught before anything
of it is sent. Items therefore come as: reasoning, message, function calls (translate.py keeps
the non-streamed path in the same order).

Each method returns the events it produced (dicts); framing them as SSE is the caller's job,
which keeps this file free of I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import orjson

from reference_gateway import reasoning_summary, translate
from reference_gateway.ids import new_id


def _copy(value):
    """A deep copy of a JSON value, through orjson: 5-10x cheaper than ``copy.deepcopy`` for the
    Response object (issue 20's profile: 6% of the gateway's CPU at 64 streams), and equal on the
    wire: everything here is sent as JSON by orjson anyway (a value it cannot encode would fail
    the event's framing just the same)."""
    return orjson.loads(orjson.dumps(value))


class State(Enum):
    IDLE = "idle"  # nothing sent yet
    STARTED = "started"  # response.created / in_progress sent; no item open
    IN_REASONING = "in_reasoning"  # a reasoning item and its reasoning_text part are open
    IN_TEXT = "in_text"  # a message item and its output_text part are open
    IN_TOOL = "in_tool"  # a built-in tool item (mcp_call, code_interpreter_call, ...) is open
    CLOSED = "closed"  # a terminal event was sent; nothing may follow


class ProtocolError(RuntimeError):
    """The caller drove the emitter out of order (a gateway bug, never the client's)."""


@dataclass
class _ToolCall:
    call_id: str = ""
    name: str = ""
    fragments: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


# State of an open text-like item -> (delta event, done event, done field, part, item builder).
_TEXT_KINDS = {
    State.IN_REASONING: ("response.reasoning_text.delta", "response.reasoning_text.done",
                         translate.reasoning_part, translate.reasoning_item, "rs"),
    State.IN_TEXT: ("response.output_text.delta", "response.output_text.done",
                    translate.text_part, translate.message_item, "msg"),
}


class Emitter:
    def __init__(self, response: dict, *, seal: Callable[[dict], dict] | None = None,
                 split: Callable[[str], tuple[str | None, str]] | None = None,
                 summary: str | None = None) -> None:
        self.response = response  # the Response object, filled in as the stream goes
        # The request's ``reasoning.summary`` (None: reasoning items get no summary).
        self._summary = summary
        # Sets a finished reasoning item's ``encrypted_content`` (encrypted_reasoning.py), when
        # the request asked for it: the item carries it from its ``output_item.done`` on.
        self._seal = seal
        # A called function's (namespace, name) from the name the chat upstream used (tools.py
        # ToolSetup.split: namespace tools' functions); None: names are kept as they are.
        self._split = split
        self.state = State.IDLE
        self.output: list[dict] = []  # closed items, in output_index order
        self._sequence = 0
        self._item_id = ""
        self._text: list[str] = []
        self._calls: dict[int, _ToolCall] = {}
        self._has_message = False
        self._pending: list[dict] = []  # events of take_calls, handed out by flush
        self._open_tool: dict | None = None  # the built-in item open now (IN_TOOL)

    @property
    def running(self) -> bool:
        """Started and not yet terminal: a stream cut now must still end as ``fail()`` says."""
        return self.state is not State.IDLE and self.state is not State.CLOSED

    def _event(self, type: str, **fields) -> dict:
        event = {"type": type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            raise ProtocolError(f"emitter is {self.state.value}, expected {[s.value for s in states]}")

    def _snapshot(self) -> dict:
        # Events carry a copy: later changes to the response must not reach sent events.
        return _copy(self.response)

    def _where(self) -> dict:
        return {"item_id": self._item_id, "output_index": len(self.output), "content_index": 0}

    def start(self) -> list[dict]:
        self._expect(State.IDLE)
        self.state = State.STARTED
        created = self._event("response.created", response=self._snapshot())  # queued, for a background one
        self.response["status"] = "in_progress"
        return [created, self._event("response.in_progress", response=self._snapshot())]

    # -- text-like items (reasoning, message) -------------------------------------------------

    def _open(self, state: State) -> list[dict]:
        _, _, part, build, prefix = _TEXT_KINDS[state]
        self._item_id = new_id(prefix)
        self._text = []
        self.state = state
        if state is State.IN_TEXT:
            self._has_message = True
        return [
            self._event("response.output_item.added", output_index=len(self.output),
                        item=build(self._item_id, status="in_progress", content=[])),
            self._event("response.content_part.added", **self._where(), part=part("")),
        ]

    def _close(self, status: str) -> list[dict]:
        """Close the open text-like item, if any."""
        if self.state not in _TEXT_KINDS:
            return []
        _, done, part, build, _ = _TEXT_KINDS[self.state]
        text = "".join(self._text)
        if self.state is State.IN_REASONING:
            status = "completed"
        item = build(self._item_id, status=status, content=[part(text)])
        summary = []
        if self.state is State.IN_REASONING:
            summary = reasoning_summary.summary_parts(text, self._summary)
            item["summary"] = summary
            if self._seal is not None:
                self._seal(item)
        where = self._where()
        done_fields = {"text": text, "logprobs": []} if self.state is State.IN_TEXT else {"text": text}
        events = [
            self._event(done, **where, **done_fields),
            self._event("response.content_part.done", **where, part=_copy(item["content"][0])),
        ]
        for index, summary_part in enumerate(summary):
            events += self._summary_events(index, summary_part["text"])
        events.append(self._event("response.output_item.done", output_index=where["output_index"], item=_copy(item)))
        self.output.append(item)
        self.state = State.STARTED
        return events

    def _summary_events(self, index: int, text: str) -> list[dict]:
        """One summary part of the open reasoning item, its text in one delta."""
        where = {"item_id": self._item_id, "output_index": len(self.output), "summary_index": index}
        return [
            self._event("response.reasoning_summary_part.added", **where,
                        part=reasoning_summary.summary_part("")),
            self._event("response.reasoning_summary_text.delta", **where, delta=text),
            self._event("response.reasoning_summary_text.done", **where, text=text),
            self._event("response.reasoning_summary_part.done", **where,
                        part=reasoning_summary.summary_part(text)),
        ]

    def _delta(self, state: State, delta: str) -> list[dict]:
        if self.state is state and delta:  # one more token of the open item: the event built whole
            self._text.append(delta)
            sequence = self._sequence
            self._sequence = sequence + 1
            if state is State.IN_TEXT:
                return [{"type": "response.output_text.delta", "sequence_number": sequence, "item_id": self._item_id,
                         "output_index": len(self.output), "content_index": 0, "delta": delta, "logprobs": []}]
            return [{"type": "response.reasoning_text.delta", "sequence_number": sequence, "item_id": self._item_id,
                     "output_index": len(self.output), "content_index": 0, "delta": delta}]
        self._expect(State.STARTED, State.IN_REASONING, State.IN_TEXT)
        events = []
        if self.state is not state:
            events += self._close("completed")
            events += self._open(state)
        if delta:
            self._text.append(delta)
            extra = {"logprobs": []} if state is State.IN_TEXT else {}
            events.append(self._event(_TEXT_KINDS[state][0], **self._where(), delta=delta, **extra))
        return events

    def reasoning(self, delta: str) -> list[dict]:
        return self._delta(State.IN_REASONING, delta)

    def text(self, delta: str) -> list[dict]:
        return self._delta(State.IN_TEXT, delta)

    # -- function calls -----------------------------------------------------------------------

    def tool_call(self, chat_delta: dict) -> list[dict]:
        """Buffer one chat ``tool_calls[]`` delta (``index``, ``id``, ``function.name/arguments``)."""
        self._expect(State.STARTED, State.IN_REASONING, State.IN_TEXT)
        index = chat_delta.get("index")
        if not isinstance(index, int):
            index = len(self._calls)
        call = self._calls.setdefault(index, _ToolCall())
        if isinstance(chat_delta.get("id"), str) and not call.call_id:
            call.call_id = chat_delta["id"]
        function = chat_delta.get("function") or {}
        if isinstance(function.get("name"), str):
            call.name += function["name"]  # as the openai SDK accumulates chat deltas
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.fragments.append(arguments)
        return []

    def called_names(self) -> list[str]:
        return [call.name for call in self._calls.values()]

    def _emit_call(self, call: _ToolCall, status: str) -> list[dict]:
        item_id = new_id("fc")
        index = len(self.output)
        call_id = call.call_id or new_id("call")
        namespace, name = self._split(call.name) if self._split is not None else (None, call.name)
        added = translate.function_call_item(item_id, call_id=call_id, name=name, arguments="",
                                             status="in_progress", namespace=namespace)
        events = [self._event("response.output_item.added", output_index=index, item=added)]
        for fragment in call.fragments:
            events.append(self._event("response.function_call_arguments.delta", item_id=item_id,
                                      output_index=index, delta=fragment))
        arguments = "".join(call.fragments)
        events.append(self._event("response.function_call_arguments.done", item_id=item_id, output_index=index,
                                  arguments=arguments, name=name))
        item = translate.function_call_item(item_id, call_id=call_id, name=name, arguments=arguments,
                                            status=status, namespace=namespace)
        events.append(self._event("response.output_item.done", output_index=index, item=_copy(item)))
        self.output.append(item)
        return events

    # -- built-in tool items (builtin/loop.py drives them) -----------------------------------

    def chat_delta(self, delta: dict) -> list[dict]:
        """One chat ``choices[].delta`` -> events: reasoning, then text, then tool calls."""
        events = []
        thought = translate.reasoning_text(delta)
        if thought:
            events += self.reasoning(thought)
        if delta.get("content"):
            events += self.text(delta["content"])
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self.tool_call(call)
        return events

    def _cut_tool(self) -> list[dict]:
        """Close the built-in item that a failing response cut short: ``incomplete`` (as an
        open text item is), its phases stopping where they were (specs/grammar.yaml
        ``phases_cut_status``); a tool list that has no status fails with its error instead."""
        item = _copy(self._open_tool)
        events = []
        if item.get("type") == "mcp_list_tools":
            item["error"] = "The listing did not finish: the response failed first."
            events.append(self.item_event("response.mcp_list_tools.failed"))
        else:
            item["status"] = "incomplete"
        return events + self.close_item(item)

    def pending_calls(self) -> list[_ToolCall]:
        """The tool calls buffered in this upstream turn, in index order (builtin/loop.py)."""
        return [self._calls[i] for i in sorted(self._calls)]

    def close_turn(self) -> list[dict]:
        """End of a tool-loop turn whose hosted calls run next: close the open text-like item."""
        self._expect(State.STARTED, State.IN_REASONING, State.IN_TEXT)
        return self._close("completed")

    def keep_calls(self, calls: list[_ToolCall]) -> None:
        """Keep only ``calls`` (function calls for the client) of the buffered ones; the hosted
        ones were run and emitted as their own items."""
        self._calls = dict(enumerate(calls))

    def open_item(self, item: dict) -> list[dict]:
        """``output_item.added`` for a built-in tool item (``item`` as it stands at the start)."""
        self._expect(State.STARTED)
        self._item_id = item["id"]
        self._open_tool = _copy(item)
        self.state = State.IN_TOOL
        return [self._event("response.output_item.added", output_index=len(self.output), item=_copy(item))]

    # A built-in item's ``.done`` phase events that carry a field's final value: once sent, the
    # item holds that value, also when a failing response cuts it short (``_cut_tool``), so its
    # ``output_item.done`` repeats what the ``.done`` event said (stream.item.done_content).
    _FINAL_FIELDS = {"response.mcp_call_arguments.done": "arguments",
                     "response.code_interpreter_call_code.done": "code"}

    def item_event(self, type: str, **fields) -> dict:
        """A phase event of the open built-in item (``item_id`` and ``output_index`` added)."""
        self._expect(State.IN_TOOL)
        final = self._FINAL_FIELDS.get(type)
        if final is not None:
            self._open_tool[final] = fields[final]
        return self._event(type, output_index=len(self.output), item_id=self._item_id, **fields)

    def close_item(self, item: dict) -> list[dict]:
        self._expect(State.IN_TOOL)
        event = self._event("response.output_item.done", output_index=len(self.output), item=_copy(item))
        self.output.append(_copy(item))
        self._open_tool = None
        self.state = State.STARTED
        return [event]

    # -- the end ------------------------------------------------------------------------------

    def finish(self, finish_reason: str | None, chat_usage: dict | None, *, empty_message: bool = True) -> list[dict]:
        """Close every item and emit the terminal event. ``self.response`` is final afterwards.
        ``empty_message``: an answer with no text and no calls still gets its (empty) message
        item; a tool loop whose output already holds its built-in items says False."""
        self._expect(State.STARTED, State.IN_REASONING, State.IN_TEXT)
        status = translate.item_status(finish_reason)
        events = []
        if self.state is State.IN_REASONING:
            events += self._close(status)
        if not self._has_message and not self._calls and empty_message:
            events += self.text("")  # an answer with no text still gets its message item
        # Only the last item can be the one a cut interrupted (translate.py, item statuses).
        events += self._close("completed" if self._calls else status)
        last = max(self._calls, default=None)
        for index in sorted(self._calls):
            events += self._emit_call(self._calls[index], status if index == last else "completed")
        translate.finish(self.response, output=_copy(self.output), finish_reason=finish_reason,
                         chat_usage=chat_usage)
        terminal = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        events.append(self._event(terminal, response=self._snapshot()))
        self.state = State.CLOSED
        return events

    def fail(self, message: str, *, code: str = "server_error") -> list[dict]:
        """Close the open item, then ``error`` (nested, as OpenAI's service sends it) then
        ``response.failed``.

        The open item is closed (``incomplete``; a reasoning item ``completed``) so the stream
        stays well-formed: the SDK's accumulator, and the checker's ``stream.item.lifecycle`` /
        ``stream.output.matches_items`` (MUST), want every added item done and the terminal
        output to equal the items streamed. Buffered tool calls were never sent; they are dropped.
        """
        self._expect(State.STARTED, State.IN_REASONING, State.IN_TEXT, State.IN_TOOL)
        events = self._close("incomplete")
        if self.state is State.IN_TOOL:  # a built-in call cut short
            events += self._cut_tool()
        self.response["output"] = _copy(self.output)
        translate.fail(self.response, message, code)
        self.state = State.CLOSED
        return events + [
            self._event("error", error={"type": "server_error", "code": code, "message": message, "param": None}),
            self._event("response.failed", response=self._snapshot()),
        ]
