"""Build correct Responses event streams programmatically (for the checker's tests and bench).

``message_stream()`` returns the events OpenAI's service would send for a response whose output
is one or more assistant messages, each with one output_text part streamed as several deltas:

    response.created, response.in_progress,
    per message: output_item.added, content_part.added, output_text.delta*, output_text.done,
                 content_part.done, output_item.done,
    response.completed (or response.incomplete)

Field sets follow the openai SDK's event models (openai.types.responses.*Event, openai 3.54)
and the recorded OpenAI streams (shared/fixtures/openai-recorded): e.g. ``logprobs: []`` on
text deltas, ``annotations: []`` on output_text parts. ``renumber()`` rewrites
``sequence_number`` to 0, 1, 2, ... after a test has inserted or removed events.
"""

from __future__ import annotations

import copy
import json
from typing import Any

RESPONSE_ID = "resp_0123456789abcdef0123456789abcdef"
MODEL = "gpt-test-2026-01-01"


def _response(status: str, output: list[dict[str, Any]], *, usage: bool) -> dict[str, Any]:
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": 1771009000,
        # Open Responses requires these present (required-but-nullable, or required with a
        # value); OpenAI's service sends them too.
        "completed_at": 1771009002 if status in ("completed", "incomplete", "failed") else None,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "prompt_cache_key": None,
        "safety_identifier": None,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": MODEL,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": ({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                   "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 42} if usage else None),
        "user": None,
        "metadata": {},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "content": content,
            "role": "assistant"}


DEFAULT_MESSAGES = (("Hello", ",", " world", "!"), ("Second", " message", " here."))


def message_stream(messages: tuple[tuple[str, ...], ...] | list[list[str]] = DEFAULT_MESSAGES,
                   *, terminal: str = "response.completed") -> list[dict[str, Any]]:
    """A correct stream: one message item per entry of ``messages``, whose deltas are the
    entry's strings. ``terminal`` is response.completed or response.incomplete."""
    events: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        event["sequence_number"] = len(events)
        events.append(event)

    emit({"type": "response.created", "response": _response("in_progress", [], usage=False)})
    emit({"type": "response.in_progress", "response": _response("in_progress", [], usage=False)})
    output = []
    for n, deltas in enumerate(messages):
        item_id = f"msg_{n:04d}0123456789abcdef0123456789abcdef"
        text = "".join(deltas)
        emit({"type": "response.output_item.added", "output_index": n,
              "item": _message(item_id, "in_progress", [])})
        emit({"type": "response.content_part.added", "item_id": item_id, "output_index": n,
              "content_index": 0, "part": _text_part("")})
        for d in deltas:
            emit({"type": "response.output_text.delta", "item_id": item_id, "output_index": n,
                  "content_index": 0, "delta": d, "logprobs": []})
        emit({"type": "response.output_text.done", "item_id": item_id, "output_index": n,
              "content_index": 0, "text": text, "logprobs": []})
        emit({"type": "response.content_part.done", "item_id": item_id, "output_index": n,
              "content_index": 0, "part": _text_part(text)})
        done = _message(item_id, "completed", [_text_part(text)])
        emit({"type": "response.output_item.done", "output_index": n, "item": done})
        output.append(copy.deepcopy(done))
    if terminal == "response.completed":
        final = _response("completed", output, usage=True)
    elif terminal == "response.incomplete":
        final = _response("incomplete", output, usage=True)
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        raise ValueError(terminal)
    emit({"type": terminal, "response": final})
    return events


def renumber(events: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    for n, event in enumerate(events):
        event["sequence_number"] = start + n
    return events


def index_of(events: list[dict[str, Any]], etype: str, nth: int = 0) -> int:
    """Position of the ``nth`` event of type ``etype``."""
    hits = [i for i, e in enumerate(events) if isinstance(e, dict) and e.get("type") == etype]
    return hits[nth]


def frame_bytes(event: dict[str, Any] | str, *, event_field: str | None = None) -> bytes:
    """One SSE frame as OpenAI's service frames it: ``event: <type>`` + one ``data:`` line."""
    if isinstance(event, str):  # raw data (e.g. "[DONE]", or non-JSON)
        return b"data: " + event.encode() + b"\n\n"
    name = event_field if event_field is not None else event.get("type", "")
    return (b"event: " + name.encode() + b"\ndata: "
            + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n")


def to_sse(events: list[dict[str, Any] | str | tuple[dict[str, Any], str]], *,
           done: bool = False) -> bytes:
    """Frame events as an SSE body. An entry may be an event, raw data (a str), or
    ``(event, event_field)`` to send a different ``event:`` field."""
    body = b"".join(frame_bytes(e[0], event_field=e[1]) if isinstance(e, tuple) else frame_bytes(e)
                    for e in events)
    if done:
        body += b"data: [DONE]\n\n"
    return body
