"""Judge one exchange: the same code for a live run, a saved transcript and ``respcheck validate``.

An exchange is one of three things, decided by what came back, not by what was asked:
an event stream (Content-Type text/event-stream, or a 2xx answer to ``stream: true``), a JSON
Response object (another 2xx), or an HTTP error (4xx/5xx). Each goes to its checker.

A WebSocket turn (harness/run/ws_client.py) is judged by ``judge_ws_turn``: its frames go to the
same ``StreamChecker`` as decoded events, and a refusal before ``response.created`` (an
``error`` event) becomes an ``error`` verdict with the event's status, like an HTTP error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from harness.core.catalogue import Profile, load_profile
from harness.core.findings import FindingLog
from harness.core.response import check_error_body, check_response_object
from harness.core.schemas import schema_set
from harness.core.sse import SSEDecoder
from harness.core.stream import StreamChecker
from harness.core.structured import check_structured
from harness.core.tools import check_tool_calls
from harness.core.transcript import Exchange


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
    # A WebSocket turn's status as an HTTP exchange would have it: the error event's
    # ``status``, 200 for a turn that created a response, the upgrade's status when refused.
    status: int | None = None


def judge_stream_body(body: bytes, profile: Profile | str = "openai", *,
                      content_type: str | None = "text/event-stream",
                      chunks: list[bytes] | None = None, log: FindingLog | None = None,
                      cut: bool = False, resumes: tuple[list[dict[str, Any]], int] | None = None) -> Judged:
    """Judge a raw text/event-stream body (optionally as the chunks it arrived in).
    ``cut``: the transport stopped reading before the body's end (a cap, the deadline), so
    whether the stream would have ended inside a frame is unknown: ``sse.frame.terminated`` is
    not judged (the cut itself is an ``sse.limits`` failure). ``resumes``: (the original
    stream's events up to N, N) for a replay from N + 1 (``StreamChecker.resume``)."""
    log = log if log is not None else FindingLog()
    decoder = SSEDecoder(log)
    checker = StreamChecker(profile, log=log)
    if resumes is not None:
        checker.resume(*resumes)
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
                   request: dict[str, Any] | None = None, final: bool = True,
                   resumes: tuple[list[dict[str, Any]], int] | None = None) -> Judged:
    """Judge one exchange. ``returns`` says what a 2xx body is (response | item_list |
    deleted | compaction | input_tokens); ``request`` (the JSON sent) lets the tool and
    structured-output checks compare the answer with what was asked. ``final``: a 2xx Response
    must be finished (false for a background create or a GET, which may legitimately be queued
    or in progress). ``resumes``: a replayed stream's original events up to N, and N."""
    judged = _judge_exchange(ex, profile, expect_stream=expect_stream, returns=returns,
                             final=final, resumes=resumes)
    if judged.kind in ("stream", "json") and judged.response is not None:
        path = "$.response" if judged.kind == "stream" else "$"
        check_tool_calls(judged.response, request, judged.log, path_prefix=path)
        check_structured(judged.response, request, judged.log)
    return judged


def _judge_exchange(ex: Exchange, profile: Profile | str, *, expect_stream: bool,
                    returns: str, final: bool,
                    resumes: tuple[list[dict[str, Any]], int] | None = None) -> Judged:
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
                                   chunks=[c for _, c in ex.chunks], log=log, cut=ex.cut,
                                   resumes=resumes)
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
        # JSON `null` parses to None too: say which it was (open-responses-server answers a
        # non-streamed request with a 200 whose body is `null`).
        what = "JSON null, not an object" if ex.body.strip() == b"null" else "not JSON"
        log.fail("schema.response", f"the {ex.status} body is {what} "
                 f"(Content-Type {ex.content_type!r})", actual=ex.body[:200].decode("utf-8", "replace"))
        return Judged(log, "json")
    if returns == "item_list":
        log.apply("schema.item_list")
        for err in schema_set(prof.name).validate_root("ResponseItemList", obj):
            log.fail("schema.item_list", err.message, path=err.path)
        return Judged(log, "list", body=obj)
    if returns == "deleted":
        return Judged(log, "deleted", body=obj)
    if returns == "input_tokens":
        log.apply("schema.input_tokens")
        for err in schema_set(prof.name).validate_root("InputTokenCount", obj):
            log.fail("schema.input_tokens", err.message, path=err.path)
        return Judged(log, "input_tokens", body=obj)
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


# -- WebSocket mode ---------------------------------------------------------------------------
# Checks of the SSE framing and of the HTTP body's end: they have no counterpart on a socket
# (frames are messages; a turn ends at its terminal event, not at the end of a body), so they
# make no row on a WebSocket turn (the StreamChecker applies some of them to every stream).
_SSE_ONLY = ("sse.", "transport.closes_after_terminal")
# The frame an SSE habit would add: `data: [DONE]`'s payload sent as a message of its own.
_DONE = "[DONE]"


def judge_ws_turn(ex: Exchange, profile: Profile | str = "openai", *,
                  request: dict[str, Any] | None = None) -> Judged:
    """Judge one WebSocket turn: every frame a text frame holding one JSON event
    (``ws.frame.json``), never a ``[DONE]`` frame (``ws.frame.no_done``), the events a stream
    (the same ``StreamChecker`` as HTTP streaming, minus its SSE-only checks), or one ``error``
    event before ``response.created`` (``ws.error.shape``), which is judged like an HTTP error
    whose status is the event's ``status`` and whose envelope is ``{"error": event.error}``.

    ``kind``: "stream" (a response was created), "error" (refused by an error event),
    "refused" (the upgrade was answered with a 4xx: WebSocket mode is not offered),
    "transport" (no socket, or the handshake failed otherwise)."""
    prof = load_profile(profile) if isinstance(profile, str) else profile
    log = FindingLog()
    log.apply("transport.reachable")
    if ex.status is None:
        log.fail("transport.reachable", f"no WebSocket: {ex.error}", actual=ex.error)
        return Judged(log, "transport")
    if ex.status != 101:
        body = ex.json()
        if 400 <= ex.status < 500:
            return Judged(log, "refused", error=body if isinstance(body, dict) else None,
                          status=ex.status)
        log.apply("ws.handshake")
        log.fail("ws.handshake", f"the upgrade was answered with HTTP {ex.status}, not 101 "
                 "(nor a 4xx refusal)", expected=101, actual=ex.status)
        return Judged(log, "transport", status=ex.status)
    log.apply("ws.handshake", "ws.socket.open")
    if not ex.frames and ex.error and not ex.cut:
        # The socket was closed (by the server, or after a cut turn) before any event came.
        log.fail("ws.socket.open", ex.error, actual=ex.ws_close)
        return Judged(log, "transport", status=ex.status)
    checker_log = FindingLog()
    checker = StreamChecker(prof, log=checker_log)
    error_event: dict[str, Any] | None = None
    log.apply("ws.frame.json", "ws.frame.no_done")
    for index, (_, msg) in enumerate(ex.frames):
        event = _ws_event(msg, index, log)
        if event is None:
            continue
        if error_event is None and not checker.events and event["type"] == "error":
            error_event = event
            _judge_ws_error(event, index, log, prof)
            continue
        if error_event is not None:
            log.apply("stream.terminal.single")
            log.fail("stream.terminal.single", f"{event['type']} follows the error event that "
                     "refused the request (no response was created)", frame=index,
                     event_type=event["type"])
            continue
        checker.event(event, index)
    if error_event is None:
        checker.close()
    _copy_ws(checker_log, log)
    if ex.error:
        if ex.cut:
            log.apply("ws.limits")
            log.fail("ws.limits", ex.error)
        else:
            log.fail("ws.socket.open", ex.error, actual=ex.ws_close)
    if error_event is not None:
        err = error_event.get("error")
        status = error_event.get("status")
        return Judged(log, "error", error={"error": err} if isinstance(err, dict) else None,
                      events=[error_event], status=status if _is_int(status) else None)
    judged = Judged(log, "stream", checker.final_response, events=checker.events,
                    terminal_type=checker.terminal_type, status=200)
    if judged.response is not None:
        check_tool_calls(judged.response, request, log, path_prefix="$.response")
        check_structured(judged.response, request, log)
    return judged


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _ws_event(msg: str | bytes, index: int, log: FindingLog) -> dict[str, Any] | None:
    """The event one frame carries, or None (with the finding) when it carries none."""
    if not isinstance(msg, str):
        log.fail("ws.frame.json", f"binary frame of {len(msg)} bytes: server events are text "
                 "frames", frame=index, actual=msg[:80].decode("utf-8", "replace"))
        return None
    if msg.strip() == _DONE:
        log.fail("ws.frame.no_done", "a [DONE] frame: the SSE sentinel does not exist over "
                 "WebSocket (the turn ends at its terminal event)", frame=index, actual=msg)
        return None
    try:
        event = json.loads(msg)
    except ValueError as exc:
        log.fail("ws.frame.json", _not_one_json(msg, exc), frame=index, actual=msg[:200])
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        log.fail("ws.frame.json", "the frame is not a JSON object with a string `type`",
                 frame=index, actual=msg[:200])
        return None
    return event


def _not_one_json(msg: str, exc: ValueError) -> str:
    """Name the common case: two events in one frame (SSE's habit of batching, or JSON Lines)."""
    try:
        _, end = json.JSONDecoder().raw_decode(msg.lstrip())
    except ValueError:
        return f"the frame is not JSON: {exc}"
    return (f"the frame holds more than one JSON value (the first ends at character {end}): "
            "one frame carries exactly one event")


def _judge_ws_error(event: dict[str, Any], index: int, log: FindingLog, prof: Profile) -> None:
    """``ws.error.shape``: ``{"type": "error", "status": int, "error": {type, code, message,
    param}}`` (the profile's WebSocketErrorEvent root); its ``error`` is then judged as an
    HTTP error envelope's (schema.error_envelope, errors.type_status) with the event's status."""
    log.apply("ws.error.shape")
    schemas = schema_set(prof.name)
    for err in schemas.validate_root("WebSocketErrorEvent", event):
        log.fail("ws.error.shape", err.message, path=err.path, frame=index, event_type="error")
    status, err = event.get("status"), event.get("error")
    if isinstance(err, dict):
        check_error_body({"error": err}, log, schemas=schemas,
                         status=status if _is_int(status) else None)


def _copy_ws(src: FindingLog, dst: FindingLog) -> None:
    """The stream checker's findings and applied checks, without the SSE-only ones."""
    dst.applied |= {c for c in src.applied if not c.startswith(_SSE_ONLY)}
    for f in src.findings:
        if not f.check.startswith(_SSE_ONLY):
            dst.findings.append(f)
    for check, n in src.counts.items():
        if not check.startswith(_SSE_ONLY):
            dst.counts[check] = dst.counts.get(check, 0) + n


def ws_exchange_view(ex: Exchange, judged: Judged) -> Exchange:
    """The turn as the scenario expectations (harness/run/expect.py) read an exchange: its status
    is the turn's (the error event's, 200 for a created response), not the upgrade's 101."""
    return replace(ex, status=judged.status) if judged.status is not None else ex
