"""A native Responses upstream (``--upstream-api-kind responses``, or ``api_kind`` in --routes).

The gateway keeps what it owns local and asks the upstream only to generate: every call upstream
is ``store: false`` with the whole conversation as ``input`` (the stored chain, expanded by the
gateway, then this request's items), and no ``previous_response_id``. The Response the client
gets is the gateway's: its id, ``created_at``, ``store``, ``previous_response_id``, echoed
parameters, stored and retrievable by GET, continued by ``previous_response_id``.

What comes from the upstream, and the rules that hold it to the contract. Nothing is repaired
silently: each rule either corrects by rule (and is listed here and in the README) or fails.

    N1  output, usage, status, incomplete_details and error come from the upstream's final
        Response; every other field is the gateway's (ids of the upstream's response dropped).
    N2  status must be completed, incomplete or failed: anything else is a 502.
    N3  (stream) sequence_number is renumbered from 0 by the gateway, contiguous.
    N4  (stream) the upstream's response.created / in_progress / queued are replaced by the
        gateway's own (they carry the gateway's Response object).
    N5  (stream) the terminal event's type is set by the final status: an upstream that ends an
        incomplete response with response.completed (vLLM does) gets response.incomplete.
    N6  (stream) an upstream stream that ends without a terminal event, or sends ``error``,
        ends as error + response.failed; items it left open are closed ``incomplete``.
    N7  the final output must be the items the stream carried (output_item.done, in
        output_index order); where the upstream's terminal output differs, the streamed items win
        (what the client already saw is what is stored).
    N8  ``allowed_tools`` is a hard constraint here too: a function_call item naming a function
        the request did not allow (not in ``tool_choice.tools``, or not in ``tools``) is never
        relayed. Streamed, the stream fails at that item's first event (``error`` with code
        ``tool_not_allowed``, then ``response.failed``); non-streamed, the response is failed
        with no output (as on the chat path, tools.py).

Built-in tools with a native upstream are refused (400): the gateway's tool loop drives chat
completions (builtin/loop.py).
"""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator

from reference_gateway.errors import APIError
from reference_gateway.observe import upstream_failed
from reference_gateway.params import CreateRequest
from reference_gateway.tools import namespaced_name

LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})
TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}


def native_request(req: CreateRequest, context: list[dict], *, stream: bool) -> dict:
    """The upstream's ``/v1/responses`` body: the conversation as input, nothing stored there."""
    body: dict = {"model": req.model, "input": copy.deepcopy(context), "stream": stream, "store": False}
    if req.instructions is not None:
        body["instructions"] = req.instructions
    for key, value in (("temperature", req.temperature), ("top_p", req.top_p),
                       ("max_output_tokens", req.max_output_tokens), ("user", req.user)):
        if value is not None:
            body[key] = value
    functions = [{k: v for k, v in t.items() if v is not None} for t in req.tools.tools
                 if t["type"] in ("function", "namespace")]
    if functions:
        body["tools"] = functions
        body["tool_choice"] = req.tools.tool_choice
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.text_format["type"] != "text":
        body["text"] = {"format": req.text_format}
    if req.reasoning_effort is not None:
        body["reasoning"] = {"effort": req.reasoning_effort}
    return body


def allowed_functions(response: dict) -> frozenset[str]:
    """N8: the function names the upstream may call, from the gateway's echoed request."""
    choice = response.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        return frozenset(t.get("name") for t in choice.get("tools") or [])
    tools = response.get("tools") or []
    return frozenset([t.get("name") for t in tools if t.get("type") == "function"]
                     + [namespaced_name(t.get("name"), f.get("name")) for t in tools if t.get("type") == "namespace"
                        for f in t.get("tools") or []])


def stray_call(response: dict, item: object) -> str | None:
    """N8: the name of ``item`` when it is a function_call the request did not allow, else None."""
    if not isinstance(item, dict) or item.get("type") != "function_call":
        return None
    name = namespaced_name(item.get("namespace"), str(item.get("name")))
    return None if name in allowed_functions(response) else name


def disallowed_message(name: str) -> str:
    return f"The upstream called a tool that was not allowed: {name}."


def finish(response: dict, upstream_final: dict, output: list[dict] | None = None) -> dict:
    """N1 + N2 (+ N7 when ``output`` is the streamed items) + N8: fill the gateway's Response."""
    status = upstream_final.get("status")
    if status not in TERMINAL:
        upstream_failed("protocol")  # -- observability (issue 8)
        raise APIError(502, f"Upstream error: the upstream's response has status {status!r}.",
                       type="server_error", code="upstream_error")
    stray = next(filter(None, (stray_call(response, i) for i in upstream_final.get("output") or [])), None)
    if output is None and stray is not None:
        response.update(output=[], status="failed", usage=upstream_final.get("usage"), incomplete_details=None,
                        error={"code": "tool_not_allowed", "message": disallowed_message(stray)}, completed_at=None)
        return response
    response["output"] = copy.deepcopy(output if output is not None else upstream_final.get("output") or [])
    response["status"] = status
    response["usage"] = upstream_final.get("usage")
    response["incomplete_details"] = upstream_final.get("incomplete_details")
    response["error"] = upstream_final.get("error") if status == "failed" else None
    response["completed_at"] = int(time.time()) if status == "completed" else None
    return response


class Relay:
    """The upstream's events -> the client's (N3-N7). ``response`` is the gateway's object."""

    def __init__(self, response: dict) -> None:
        self.response = response
        self.sequence = 0
        self.open: dict[int, dict] = {}  # output_index -> item added, not yet done
        self.done: dict[int, dict] = {}
        self.finished = False

    @property
    def running(self) -> bool:
        """Started and not yet terminal (gateway.py's ``ended`` asks, as it asks an Emitter)."""
        return self.sequence > 0 and not self.finished

    def _event(self, event: dict) -> dict:
        event = {**event, "sequence_number": self.sequence}
        self.sequence += 1
        return event

    def start(self) -> list[dict]:
        return [self._event({"type": "response.created", "response": copy.deepcopy(self.response)}),
                self._event({"type": "response.in_progress", "response": copy.deepcopy(self.response)})]

    def feed(self, event: dict) -> list[dict]:
        kind = event.get("type")
        if not isinstance(kind, str) or kind in LIFECYCLE:
            return []
        if kind in TERMINAL.values():
            final = event.get("response") if isinstance(event.get("response"), dict) else {}
            streamed = [self.done[i] for i in sorted(self.done)]
            finish(self.response, final, streamed)
            self.finished = True
            return [self._event({"type": TERMINAL[self.response["status"]], "response": copy.deepcopy(self.response)})]
        index = event.get("output_index")
        if kind in ("response.output_item.added", "response.output_item.done"):
            stray = stray_call(self.response, event.get("item"))
            if stray is not None:  # N8: nothing of it is relayed
                return self.fail(disallowed_message(stray), "tool_not_allowed")
        if kind == "response.output_item.added" and isinstance(index, int):
            self.open[index] = copy.deepcopy(event.get("item") or {})
        elif kind == "response.output_item.done" and isinstance(index, int):
            self.open.pop(index, None)
            self.done[index] = copy.deepcopy(event.get("item") or {})
        return [self._event(event)]

    def fail(self, message: str, code: str = "upstream_error") -> list[dict]:
        """N6: close what is open (incomplete), then error + response.failed."""
        events = []
        for index in sorted(self.open):
            item = {**self.open.pop(index), "status": "incomplete"}
            self.done[index] = item
            events.append(self._event({"type": "response.output_item.done", "output_index": index, "item": item}))
        self.response.update(output=[self.done[i] for i in sorted(self.done)], status="failed",
                             error={"code": code, "message": message}, completed_at=None)
        self.finished = True
        return events + [
            self._event({"type": "error", "error": {"type": "server_error", "code": code, "message": message,
                                                    "param": None}}),
            self._event({"type": "response.failed", "response": copy.deepcopy(self.response)})]

    async def events(self, opened) -> AsyncIterator[dict]:
        for event in self.start():
            yield event
        try:
            async for chunk in opened.chunks():
                for event in self.feed(chunk):
                    yield event
                if self.finished:
                    return
        except APIError as exc:
            for event in self.fail(exc.message, exc.code or "upstream_error"):
                yield event
            return
        upstream_failed("protocol")  # -- observability (issue 8): truncated
        for event in self.fail("Upstream error: the stream ended before its terminal event."):
            yield event
