"""Build correct Responses event streams and bodies whose output holds function_call items.

``stream_builder.message_stream()`` only emits assistant messages; this adds what OpenAI's
service sends for a turn that calls functions:

    response.output_item.added   item {type: function_call, status: in_progress, arguments: ""}
    response.function_call_arguments.delta*
    response.function_call_arguments.done   {arguments: <all deltas concatenated>}
    response.output_item.done    item {status: completed, arguments: <the same>}

``tool_stream(items)`` takes a list of specs, each ``Call(name, call_id, deltas)`` or
``Text(deltas)`` (an assistant message with one output_text part), and returns events that
validate against the SDK's ``ResponseStreamEvent`` union. ``exchange()`` wraps a body in a
``harness.core.transcript.Exchange`` so it can go through ``judge_exchange`` like a live answer.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from harness.core.transcript import Exchange
from stream_builder import _message, _response, _text_part, to_sse

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_PARAMS = {
    "type": "object",
    "properties": {"tz": {"type": "string"}},
    "required": ["tz"],
    "additionalProperties": False,
}


def function_tool(name: str, parameters: dict[str, Any] | None = None, *,
                  strict: bool | None = True) -> dict[str, Any]:
    return {"type": "function", "name": name, "description": f"{name} tool",
            "parameters": parameters if parameters is not None else {"type": "object"},
            "strict": strict}


TOOLS = [function_tool("get_weather", WEATHER_PARAMS), function_tool("get_time", TIME_PARAMS)]


@dataclass(frozen=True)
class Call:
    name: str = "get_weather"
    call_id: str = "call_weather0001"
    deltas: tuple[str, ...] = ('{"city":', ' "Paris",', ' "unit": "c"}')


@dataclass(frozen=True)
class Text:
    deltas: tuple[str, ...] = ("Let me", " check.")


def function_call_item(call: Call, item_id: str, status: str, arguments: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "arguments": arguments,
            "call_id": call.call_id, "name": call.name}


def tool_stream(items: list[Call | Text] | None = None, *, terminal: str = "response.completed",
                tools: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A correct stream whose output items are ``items`` (default: one get_weather call)."""
    items = [Call()] if items is None else items
    events: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        event["sequence_number"] = len(events)
        events.append(event)

    def resp(status: str, output: list[dict[str, Any]], usage: bool) -> dict[str, Any]:
        r = _response(status, output, usage=usage)
        r["tools"] = copy.deepcopy(TOOLS if tools is None else tools)
        return r

    emit({"type": "response.created", "response": resp("in_progress", [], False)})
    emit({"type": "response.in_progress", "response": resp("in_progress", [], False)})
    output: list[dict[str, Any]] = []
    for n, spec in enumerate(items):
        if isinstance(spec, Text):
            item_id = f"msg_{n:04d}0123456789abcdef0123456789abcdef"
            text = "".join(spec.deltas)
            emit({"type": "response.output_item.added", "output_index": n,
                  "item": _message(item_id, "in_progress", [])})
            emit({"type": "response.content_part.added", "item_id": item_id, "output_index": n,
                  "content_index": 0, "part": _text_part("")})
            for d in spec.deltas:
                emit({"type": "response.output_text.delta", "item_id": item_id,
                      "output_index": n, "content_index": 0, "delta": d, "logprobs": []})
            emit({"type": "response.output_text.done", "item_id": item_id, "output_index": n,
                  "content_index": 0, "text": text, "logprobs": []})
            emit({"type": "response.content_part.done", "item_id": item_id, "output_index": n,
                  "content_index": 0, "part": _text_part(text)})
            done = _message(item_id, "completed", [_text_part(text)])
        else:
            item_id = f"fc_{n:04d}0123456789abcdef0123456789abcdef"
            args = "".join(spec.deltas)
            emit({"type": "response.output_item.added", "output_index": n,
                  "item": function_call_item(spec, item_id, "in_progress", "")})
            for d in spec.deltas:
                emit({"type": "response.function_call_arguments.delta", "item_id": item_id,
                      "output_index": n, "delta": d})
            emit({"type": "response.function_call_arguments.done", "item_id": item_id,
                  "output_index": n, "arguments": args})
            done = function_call_item(spec, item_id, "completed", args)
        emit({"type": "response.output_item.done", "output_index": n, "item": done})
        output.append(copy.deepcopy(done))
    if terminal == "response.completed":
        final = resp("completed", output, True)
    elif terminal == "response.incomplete":
        final = resp("incomplete", output, True)
        final["incomplete_details"] = {"reason": "max_output_tokens"}
    else:
        raise ValueError(terminal)
    emit({"type": terminal, "response": final})
    return events


def tool_response(items: list[Call | Text] | None = None, *, status: str = "completed",
                  tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The non-streamed Response object for the same output (the stream's terminal response)."""
    terminal = "response.completed" if status == "completed" else "response.incomplete"
    return tool_stream(items, terminal=terminal, tools=tools)[-1]["response"]


def exchange(body: bytes | dict[str, Any], *, status: int = 200,
             content_type: str | None = None, step: str = "create",
             method: str = "POST") -> Exchange:
    """An Exchange as the transport would record it (one chunk holding the whole body)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        content_type = content_type or "application/json"
    headers = {"content-type": content_type or "text/event-stream"}
    return Exchange(step, method, "http://test/v1/responses", {}, b"", status=status,
                    response_headers=headers, chunks=[(0.0, body)])


def stream_exchange(events: list[dict[str, Any]]) -> Exchange:
    return exchange(to_sse(events), content_type="text/event-stream")
