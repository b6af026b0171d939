"""Judge one exchange: the same code for a live run, a saved transcript and ``respcheck validate``.

An exchange is one of three things, decided by what came back, not by what was asked:
an event stream (Content-Type text/event-stream, or a 2xx answer to ``stream: true``), a JSON
Response object (another 2xx), or an HTTP error (4xx/5xx). Each goes to its checker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from harness.catalogue import Profile, load_profile
from harness.findings import FindingLog
from harness.response import check_error_body, check_response_object
from harness.schemas import schema_set
from harness.sse import SSEDecoder
from harness.stream import StreamChecker
from harness.structured import check_structured
from harness.tools import check_tool_calls
from harness.transcript import Exchange


@dataclass(slots=True)
class Judged:
    """What the checkers made of one exchange."""

    log: FindingLog
    kind: str  # "stream" | "json" | "error" | "transport"
    response: dict[str, Any] | None = None  # the final Response object, if any
    error: dict[str, Any] | None = None  # the error envelope's body, if any
    events: list[dict[str, Any]] | None = None
    terminal_type: str | None = None
    body: Any = None  # the JSON body of a non-streamed answer (lists, deletions, ...)


def judge_stream_body(body: bytes, profile: Profile | str = "openai", *,
                      content_type: str | None = "text/event-stream",
                      chunks: list[bytes] | None = None, log: FindingLog | None = None,
                      cut: bool = False) -> Judged:
    """Judge a raw text/event-stream body (optionally as the chunks it arrived in).
    ``cut``: the transport stopped reading before the body's end (a cap, the deadline), so
    whether the stream would have ended inside a frame is unknown: ``sse.frame.terminated`` is
    not judged (the cut itself is an ``sse.limits`` failure)."""
    log = log if log is not None else FindingLog()
    decoder = SSEDecoder(log)
    checker = StreamChecker(profile, log=log)
    checker.headers(200, content_type)
    for data in chunks if chunks is not None else [body]:
        for frame in decoder.feed(data):
            checker.feed(frame)
    if cut:
        log.applied.discard("sse.frame.terminated")
    else:
        for frame in decoder.close():
            checker.feed(frame)
    checker.close()
    return Judged(log, "stream", checker.final_response, events=checker.events,
                  terminal_type=checker.terminal_type)


def judge_json_body(obj: Any, profile: Profile | str = "openai", *,
                    log: FindingLog | None = None, final: bool = True) -> Judged:
    """Judge a non-streamed Response object."""
    log = log if log is not None else FindingLog()
    prof = load_profile(profile) if isinstance(profile, str) else profile
    check_response_object(obj, log, schemas=schema_set(prof.name), final=final)
    return Judged(log, "json", obj if isinstance(obj, dict) else None)


def judge_exchange(ex: Exchange, profile: Profile | str = "openai", *,
                   expect_stream: bool = False, returns: str = "response",
                   request: dict[str, Any] | None = None, final: bool = True) -> Judged:
    """Judge one exchange. ``returns`` says what a 2xx body is (response | item_list |
    deleted); ``request`` (the JSON sent) lets the tool and structured-output checks compare
    the answer with what was asked. ``final``: a 2xx Response must be finished (false for a
    background create or a GET, which may legitimately be queued or in progress)."""
    judged = _judge_exchange(ex, profile, expect_stream=expect_stream, returns=returns,
                             final=final)
    if judged.kind in ("stream", "json") and judged.response is not None:
        path = "$.response" if judged.kind == "stream" else "$"
        check_tool_calls(judged.response, request, judged.log, path_prefix=path)
        check_structured(judged.response, request, judged.log)
    return judged


def _judge_exchange(ex: Exchange, profile: Profile | str, *, expect_stream: bool,
                    returns: str, final: bool) -> Judged:
    log = FindingLog()
    prof = load_profile(profile) if isinstance(profile, str) else profile
    if ex.status is None:
        log.apply("transport.reachable")
        log.fail("transport.reachable", f"no HTTP response: {ex.error}", actual=ex.error)
        return Judged(log, "transport")
    log.apply("transport.reachable")
    ctype = (ex.content_type or "").split(";")[0].strip().lower()
    if ex.status >= 400:
        body = ex.json()
        check_error_body(body, log, schemas=schema_set(prof.name), status=ex.status)
        return Judged(log, "error", error=body if isinstance(body, dict) else None)
    if ctype == "text/event-stream" or expect_stream:
        # The chunks as they arrived, not ``ex.body``: joining them would hold a second copy
        # of a body that may be as large as the transport's cap.
        judged = judge_stream_body(b"", prof, content_type=ex.content_type,
                                   chunks=[c for _, c in ex.chunks], log=log, cut=ex.cut)
        if ex.error:
            log.apply("sse.limits")
            log.fail("sse.limits", ex.error)
        if judged.terminal_type is not None:
            _judge_close(ex, judged, log)
        return judged
    if ex.error:
        log.fail("transport.reachable", ex.error)
    obj = ex.json()
    if obj is None:
        log.apply("schema.response")
        log.fail("schema.response", f"the {ex.status} body is not JSON "
                 f"(Content-Type {ex.content_type!r})", actual=ex.body[:200].decode("utf-8", "replace"))
        return Judged(log, "json")
    if returns == "item_list":
        log.apply("schema.item_list")
        for err in schema_set(prof.name).validate_root("ResponseItemList", obj):
            log.fail("schema.item_list", err.message, path=err.path)
        return Judged(log, "list", body=obj)
    if returns == "deleted":
        return Judged(log, "deleted", body=obj)
    if returns == "compaction":
        log.apply("schema.compaction")
        for err in schema_set(prof.name).validate_root("CompactResource", obj):
            log.fail("schema.compaction", err.message, path=err.path)
        return Judged(log, "compaction", body=obj)
    judged = judge_json_body(obj, prof, log=log, final=final)
    judged.body = obj
    return judged


def _judge_close(ex: Exchange, judged: Judged, log: FindingLog) -> None:
    """``transport.closes_after_terminal``: judged on every live stream that reached its terminal
    event (a raw body given to ``respcheck validate`` has no timing, so it is not judged).
    Decision: the check is MUST. The openai SDK's ``Stream`` stops only at ``data: [DONE]`` or
    at the end of the body, and a Responses stream sends no ``[DONE]`` (openai profile), so a
    body left open after ``response.completed`` leaves ``for event in stream`` waiting until the
    client's read timeout (600 s by default); ``curl | jq`` pipelines hang the same way. The
    transport waits ``CLOSE_GRACE_S`` after the terminal event (so a ``[DONE]`` the profile
    expects still arrives) before it calls the body open."""
    log.apply("transport.closes_after_terminal")
    if ex.open_after_terminal_s is not None:
        log.fail("transport.closes_after_terminal",
                 f"connection still open {ex.open_after_terminal_s:.1f} s after the terminal "
                 f"event {judged.terminal_type}: the body never ended, so a client reading to "
                 "the end (the openai SDK's `for event in stream`) waits until its timeout",
                 event_type=judged.terminal_type, actual=ex.open_after_terminal_s)


def judge_file(data: bytes, profile: Profile | str = "openai") -> Judged:
    """``respcheck validate``: a file holding either a raw event-stream body or a JSON Response.
    JSON Lines of events (one event's JSON per line, as in recorded fixtures) are accepted too
    and framed as OpenAI frames them (``event: <type>`` + ``data:``)."""
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            obj = json.loads(data)
        except ValueError:
            return judge_stream_body(events_to_sse(data), profile)
        if isinstance(obj, dict) and "error" in obj and "object" not in obj:
            log = FindingLog()
            prof = load_profile(profile) if isinstance(profile, str) else profile
            check_error_body(obj, log, schemas=schema_set(prof.name))
            return Judged(log, "error", error=obj)
        return judge_json_body(obj, profile)
    return judge_stream_body(data, profile)


def events_to_sse(jsonl: bytes) -> bytes:
    """Frame one-event-per-line JSON as an SSE body, as OpenAI's service frames it."""
    out = bytearray()
    for line in jsonl.splitlines():
        line = line.strip()
        if not line:
            continue
        etype = json.loads(line).get("type", "")
        out += b"event: " + etype.encode() + b"\ndata: " + line + b"\n\n"
    return bytes(out)
