"""The streaming event state machine: chat-completions chunks in, Responses events out.

Grammar it produces (what OpenAI's service sends for a text answer; see
shared/fixtures/openai-recorded and the SDK's ``ResponseStreamEvent`` union):

    response.created  response.in_progress
    response.output_item.added  response.content_part.added
    response.output_text.delta*
    response.output_text.done  response.content_part.done  response.output_item.done
    (response.completed | response.incomplete)

or, when the upstream fails, ``error`` then ``response.failed``. ``sequence_number`` starts at
0 and rises by exactly 1. Each method returns the events it produced (dicts); framing them
as SSE is the caller's job, which keeps this file free of I/O.
"""

from __future__ import annotations

import copy
from enum import Enum

from reference_gateway import translate


class State(Enum):
    IDLE = "idle"  # nothing sent yet
    STARTED = "started"  # response.created / in_progress sent
    IN_TEXT = "in_text"  # message item and its content part are open
    CLOSED = "closed"  # a terminal event was sent; nothing may follow


class ProtocolError(RuntimeError):
    """The caller drove the emitter out of order (a gateway bug, never the client's)."""


class Emitter:
    def __init__(self, response: dict) -> None:
        self.response = response  # the Response object, filled in as the stream goes
        self.item_id = translate.new_id("msg")
        self.state = State.IDLE
        self._sequence = 0
        self._text: list[str] = []

    def _event(self, type: str, **fields) -> dict:
        event = {"type": type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _expect(self, *states: State) -> None:
        if self.state not in states:
            raise ProtocolError(f"emitter is {self.state.value}, expected {[s.value for s in states]}")

    def _snapshot(self) -> dict:
        # Events carry a copy: later changes to the response must not reach sent events.
        return copy.deepcopy(self.response)

    def start(self) -> list[dict]:
        self._expect(State.IDLE)
        self.state = State.STARTED
        return [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]

    def _open_text(self) -> list[dict]:
        self.state = State.IN_TEXT
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        return [
            self._event(
                "response.output_item.added",
                output_index=0,
                item=translate.message_item(self.item_id, status="in_progress", content=[]),
            ),
            self._event("response.content_part.added", **where, part=translate.text_part("")),
        ]

    def text(self, delta: str) -> list[dict]:
        self._expect(State.STARTED, State.IN_TEXT)
        events = self._open_text() if self.state is State.STARTED else []
        if delta:
            self._text.append(delta)
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=self.item_id,
                    output_index=0,
                    content_index=0,
                    delta=delta,
                    logprobs=[],
                )
            )
        return events

    def finish(self, finish_reason: str | None, chat_usage: dict | None) -> list[dict]:
        """Close the item and emit the terminal event. ``self.response`` is final afterwards."""
        events = self.text("")  # an empty answer still gets its item and content part
        text = "".join(self._text)
        translate.finish(
            self.response, item_id=self.item_id, text=text, finish_reason=finish_reason, chat_usage=chat_usage
        )
        item = self.response["output"][0]
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        events += [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=copy.deepcopy(item["content"][0])),
            self._event("response.output_item.done", output_index=0, item=copy.deepcopy(item)),
        ]
        terminal = "response.completed" if self.response["status"] == "completed" else "response.incomplete"
        events.append(self._event(terminal, response=self._snapshot()))
        self.state = State.CLOSED
        return events

    def fail(self, message: str, *, code: str = "server_error") -> list[dict]:
        """``error`` (nested, as OpenAI's service sends it) then ``response.failed``."""
        self._expect(State.STARTED, State.IN_TEXT)
        translate.fail(self.response, message)
        self.state = State.CLOSED
        return [
            self._event("error", error={"type": "server_error", "code": code, "message": message, "param": None}),
            self._event("response.failed", response=self._snapshot()),
        ]
