"""Sans-IO observation of one exchange under load: timed bytes in, one ``Sample`` out.

The driver (the locust user's read loop, or a test) calls ``response_started(status,
content_type, t)``, then ``feed(data, t)`` for every chunk of body bytes with the time it came
off the socket, then ``close(t)``. Timing is read off the frames the SSE decoder produces
(each frame carries the arrival time of the chunk that completed it), and a Responses stream
is judged by the very same ``SSEDecoder`` + ``StreamChecker`` as ``respcheck run`` (DESIGN,
principle 1): conformance under load is the same verdict engine, fed live.

``check`` chooses how much of the verdict engine runs in the load generator:
``full`` (framing + grammar + schemas, ~10 µs an event), ``grammar`` (no schema validation),
``off`` (SSE framing only; what a benchmark that measures the server, not the checker, wants).
A chat-completions stream has no Responses grammar: it gets the SSE framing checks only.
"""

from __future__ import annotations

from typing import Any

import orjson

from harness.core.findings import FindingLog
from harness.core.sse import SSEDecoder
from harness.run.client import TRANSPORT_MAX_FRAME_BYTES
from loadtests.metrics import Sample

CHECK_MODES = ("full", "grammar", "off")
# The largest event decoded: the conformance run's transport cap (half its body cap), so an
# event that never ends is dropped past it (a framing finding) instead of growing in memory.
MAX_FRAME_BYTES = TRANSPORT_MAX_FRAME_BYTES

# Events whose non-empty ``delta`` is generated output (what TTFT/ITL time).
RESPONSES_DELTAS = frozenset({"response.output_text.delta", "response.reasoning_text.delta",
                              "response.refusal.delta"})
RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ExchangeObserver:
    """Observe one request. ``t`` arguments are ``time.perf_counter()`` readings; ``t_send``
    is the perf_counter reading when the request's first byte was written and
    ``t_send_wall`` the wall clock at that moment."""

    def __init__(self, *, api: str, stream: bool, t_send: float, t_send_wall: float,
                 stage: str = "", check: str = "full", profile: str = "openai") -> None:
        if api not in ("responses", "chat"):
            raise ValueError(f"api must be responses or chat, got {api!r}")
        if check not in CHECK_MODES:
            raise ValueError(f"check must be one of {CHECK_MODES}, got {check!r}")
        self.api = api
        self.stream = stream
        self.check = check
        self.profile = profile
        self.t_send = t_send
        self.sample = Sample(t_send=t_send_wall, stage=stage)
        self.log = FindingLog()
        self._decoder: SSEDecoder | None = None
        self._checker = None
        self._body = bytearray()
        self._is_sse = False
        self._delta_times: list[float] = []
        self._t_terminal: float | None = None
        self._usage_tokens: int | None = None
        self._finish_reason: str | None = None
        self._bad_chunk = False

    # -- driver API ------------------------------------------------------------------------
    def response_started(self, status: int, content_type: str | None, t: float) -> None:
        self.sample.status = status
        ctype = (content_type or "").split(";")[0].strip().lower()
        self._is_sse = 200 <= status < 300 and (ctype == "text/event-stream" or self.stream)
        if not self._is_sse:
            return
        self._decoder = SSEDecoder(self.log, max_frame_bytes=MAX_FRAME_BYTES)
        if self.api == "responses" and self.check != "off":
            from harness.core.stream import StreamChecker

            self._checker = StreamChecker(self.profile, log=self.log,
                                          validate_schemas=self.check == "full")
            self._checker.headers(status, content_type)

    def feed(self, data: bytes, t: float) -> None:
        if self._decoder is None:
            self._body += data
            return
        for frame in self._decoder.feed(data, t=t):
            self._frame(frame, t)

    def close(self, t: float, *, error: str | None = None) -> Sample:
        """End of the exchange (EOF, or ``error``: a transport failure / deadline)."""
        s = self.sample
        if self._decoder is not None:
            for frame in self._decoder.close():
                self._frame(frame, t)
            if self._checker is not None:
                self._checker.close()
        if s.status is None:
            s.error = error or "transport"
        elif not 200 <= s.status < 300:
            s.error = f"http_{s.status}"
        elif self._is_sse:
            self._finish_stream(t, error)
        else:
            self._finish_json(t, error)
        s.violations = dict(self.log.counts)
        s.ok = s.error is None
        return s

    @property
    def findings(self):
        return self.log.findings

    # -- internals -------------------------------------------------------------------------
    def _frame(self, frame, t: float) -> None:
        at = frame.t if frame.t is not None else t
        if self._checker is not None:
            n = len(self._checker.events)
            self._checker.feed(frame)
            event = self._checker.events[-1] if len(self._checker.events) > n else None
        else:
            if frame.is_done:
                event = None
            else:
                try:
                    event = orjson.loads(frame.data)
                except ValueError:
                    event = None
                    self._bad_chunk = True
        if frame.is_done:
            if self.api == "chat" and self._t_terminal is None:
                self._t_terminal = at
                self.sample.terminal = "[DONE]"
            return
        if not isinstance(event, dict):
            return
        if self.api == "responses":
            self._responses_event(event, at)
        else:
            self._chat_chunk(event, at)

    def _responses_event(self, event: dict[str, Any], at: float) -> None:
        etype = event.get("type")
        if etype in RESPONSES_DELTAS:
            if event.get("delta"):
                self._delta_times.append(at)
        elif etype in RESPONSES_TERMINAL:
            if self._t_terminal is None:
                self._t_terminal = at
                self.sample.terminal = etype
                response = event.get("response")
                usage = response.get("usage") if isinstance(response, dict) else None
                if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
                    self._usage_tokens = usage["output_tokens"]

    def _chat_chunk(self, chunk: dict[str, Any], at: float) -> None:
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if delta.get("content") or delta.get("reasoning_content"):
                self._delta_times.append(at)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        usage = chunk.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            self._usage_tokens = usage["completion_tokens"]

    def _finish_stream(self, t: float, error: str | None) -> None:
        s = self.sample
        times = self._delta_times
        s.deltas = len(times)
        if times:
            s.ttft = times[0] - self.t_send
            s.itls = [b - a for a, b in zip(times, times[1:])]
        s.output_tokens = self._usage_tokens if self._usage_tokens is not None else len(times)
        if error is not None:
            s.error = error
            return
        end = self._t_terminal
        if end is None and self.api == "chat" and self._finish_reason is not None:
            end = t  # a chat server that ends the body without [DONE] after finish_reason
            s.terminal = "eof"
        if end is None:
            s.error = "no_terminal"
            s.e2el = t - self.t_send
            return
        s.e2el = end - self.t_send
        if s.terminal == "response.failed":
            s.error = "response_failed"
        elif self._bad_chunk:
            s.error = "bad_chunk"

    def _finish_json(self, t: float, error: str | None) -> None:
        s = self.sample
        s.e2el = t - self.t_send
        if error is not None:
            s.error = error
            return
        try:
            body = orjson.loads(bytes(self._body))
        except ValueError:
            s.error = "bad_json"
            return
        s.terminal = "json"
        if not isinstance(body, dict):
            s.error = "bad_json"
            return
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        key = "output_tokens" if self.api == "responses" else "completion_tokens"
        if isinstance(usage.get(key), int):
            s.output_tokens = usage[key]
        if self.api == "responses":
            if self.check != "off":
                from harness.core.verdict import judge_json_body

                judge_json_body(body, self.profile, log=self.log)
            if body.get("status") == "failed":
                s.error = "response_failed"
