"""One scenario's exchanges with the server, exactly as they happened, as JSONL.

Each line is one record: ``request``, ``response`` (status and headers), ``chunk`` (bytes as
they arrived, with their arrival time), ``end`` (how the exchange ended: ``error``, plus
``cut: true`` when the transport stopped reading at a cap or the deadline and
``open_after_terminal_s`` when the body stayed open after the terminal event), and last, for a
reader's convenience, ``findings``. The chunks are the raw bytes: a transcript re-judged later
(``respcheck validate``) gets the same verdict as the live run, byte for byte.

A WebSocket turn (harness/run/ws_client.py) is one exchange too, marked ``"transport": "ws"`` in its
``request`` record (whose ``body`` is the ``response.create`` text frame sent, and ``socket`` the
scenario's socket it went on); its ``response`` record is the upgrade's HTTP status (101, or
the 4xx/5xx of a refused upgrade, whose body is then a ``chunk``), and each server message is a
``frame`` record: ``text`` for a text frame, ``binary_b64`` for a binary one, so the two stay
apart. ``end`` adds ``ws_close`` (code and reason) when the server closed the socket.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

REDACTED_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "cookie", "set-cookie"})
# How an exchange went: an HTTP request (an SSE or JSON body), or one turn on a WebSocket in the
# Responses API's WebSocket mode.
TRANSPORTS = ("http", "ws")


@dataclass(slots=True)
class Exchange:
    """One HTTP request (or one WebSocket turn) and everything that came back."""

    step: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (seconds since start, data)
    t_headers: float | None = None
    t_end: float | None = None
    error: str | None = None  # transport failure: connect error, deadline, cap
    # Seconds the body was still open after the terminal event when the transport stopped
    # reading (harness/run/client.py CLOSE_GRACE_S); None: it ended on its own, or no terminal.
    open_after_terminal_s: float | None = None
    # The transport stopped reading at a cap or the deadline: the body's end was never seen,
    # so an event cut in half there is the harness's doing, not the server's.
    cut: bool = False
    # WebSocket mode: "ws" for one turn on a socket (harness/run/ws_client.py), whose server
    # messages are ``frames`` (str: a text frame, bytes: a binary one) and ``chunks`` is only a
    # refused upgrade's HTTP body; ``socket`` names the scenario's socket the turn went on.
    transport: str = "http"  # one of TRANSPORTS
    socket: str | None = None
    frames: list[tuple[float, str | bytes]] = field(default_factory=list)
    ws_close: dict[str, Any] | None = None  # {"code": ..., "reason": ...} when the server closed

    @property
    def body(self) -> bytes:
        return b"".join(c for _, c in self.chunks)

    @property
    def content_type(self) -> str | None:
        return self.response_headers.get("content-type")

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def records(self) -> list[dict[str, Any]]:
        return list(self.iter_records())

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """The JSONL records one at a time: a body of tens of MB (a flooding server, up to the
        transport's cap) is written out without a second copy of it in memory."""
        headers = {k: ("<redacted>" if k.lower() in REDACTED_HEADERS else v)
                   for k, v in self.request_headers.items()}
        request: dict[str, Any] = {"kind": "request", "step": self.step, "method": self.method,
                                   "url": self.url, "headers": headers,
                                   **_encode(self.request_body, "body")}
        if self.transport != "http":
            request["transport"] = self.transport
            request["socket"] = self.socket
        yield request
        if self.status is not None:
            yield {"kind": "response", "step": self.step, "status": self.status,
                   "headers": self.response_headers, "t": self.t_headers}
        for t, data in self.chunks:
            yield {"kind": "chunk", "step": self.step, "t": round(t, 6), **_encode(data, "data")}
        for t, msg in self.frames:
            yield {"kind": "frame", "step": self.step, "t": round(t, 6),
                   **({"text": msg} if isinstance(msg, str)
                      else {"binary_b64": base64.b64encode(msg).decode("ascii")})}
        end: dict[str, Any] = {"kind": "end", "step": self.step, "t": self.t_end,
                               "error": self.error}
        if self.open_after_terminal_s is not None:
            end["open_after_terminal_s"] = self.open_after_terminal_s
        if self.cut:
            end["cut"] = True
        if self.ws_close is not None:
            end["ws_close"] = self.ws_close
        yield end


def _encode(data: bytes, key: str) -> dict[str, str]:
    try:
        return {key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {key + "_b64": base64.b64encode(data).decode("ascii")}


def _decode(record: dict[str, Any], key: str) -> bytes:
    if key in record:
        return record[key].encode("utf-8")
    if key + "_b64" in record:
        return base64.b64decode(record[key + "_b64"])
    return b""


def write_transcript(path: Path, exchanges: list[Exchange],
                     findings: list[dict[str, Any]] | None = None) -> None:
    """One transcript, every record of it (no budget)."""
    TranscriptBudget(None).write(path, exchanges, findings)


# What the transcripts of one run may take on disk. A conformant server's full run writes ~3 MB
# (the largest recorded OpenAI stream is ~1 MB); 256 MiB keeps every byte of a run with a
# dozen flooding scenarios (each capped at harness/run/runner.py's SCENARIO_MAX_BYTES) and
# bounds the rest.
TRANSCRIPT_BUDGET_BYTES = 256 * 1024 * 1024


class TranscriptBudget:
    """The transcripts of one run, written within ``budget_bytes`` in all.

    ``respcheck run`` has one per run; the pytest plugin one per session. Every record is
    written except body chunks and WebSocket frames once the budget is spent;
    an exchange that lost some gets a ``truncated`` record before its ``end`` (what was
    dropped and why), so a reader of the transcript knows it is not the whole exchange.
    Request, response, end and findings records are always written: they are small and bounded
    by the number of steps."""

    DROPPABLE = frozenset({"chunk", "frame"})

    def __init__(self, budget_bytes: int | None = TRANSCRIPT_BUDGET_BYTES, *,
                 option: str = "respcheck run --transcript-budget") -> None:
        self.budget_bytes = budget_bytes  # None: no budget, every record is written
        self.option = option  # how to raise the budget, named in the truncated record
        self.written = 0
        self.dropped = 0  # bytes of records left out, over the run

    def write(self, path: Path, exchanges: list[Exchange],
              findings: list[dict[str, Any]] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            for ex in exchanges:
                dropped_records = dropped_bytes = 0
                for rec in ex.iter_records():
                    line = json.dumps(rec, ensure_ascii=False) + "\n"
                    size = len(line.encode("utf-8"))
                    if rec["kind"] in self.DROPPABLE and self.budget_bytes is not None \
                            and self.written + size > self.budget_bytes:
                        dropped_records += 1
                        dropped_bytes += size
                        continue
                    if rec["kind"] == "end" and dropped_records:
                        self.dropped += dropped_bytes
                        self._put(fh, {"kind": "truncated", "step": ex.step,
                                       "dropped_records": dropped_records,
                                       "dropped_bytes": dropped_bytes,
                                       "reason": f"the run's transcript budget of "
                                                 f"{self.budget_bytes} bytes was spent "
                                                 f"({self.option})"})
                    self.written += size
                    fh.write(line)
            if findings is not None:
                self._put(fh, {"kind": "findings", "items": findings})

    def _put(self, fh, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self.written += len(line.encode("utf-8"))
        fh.write(line)


def read_transcript(path: Path) -> list[Exchange]:
    """The exchanges of a transcript file; one whose name ends in ``.gz`` is read through gzip
    (the committed recordings, reports/vllm-responses/)."""
    exchanges: list[Exchange] = []
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = json.loads(line)
            kind = rec.get("kind")
            if kind == "request":
                exchanges.append(Exchange(rec["step"], rec["method"], rec["url"],
                                          rec.get("headers", {}), _decode(rec, "body"),
                                          transport=rec.get("transport", "http"),
                                          socket=rec.get("socket")))
            elif kind == "response" and exchanges:
                exchanges[-1].status = rec["status"]
                exchanges[-1].response_headers = rec.get("headers", {})
                exchanges[-1].t_headers = rec.get("t")
            elif kind == "chunk" and exchanges:
                exchanges[-1].chunks.append((rec.get("t") or 0.0, _decode(rec, "data")))
            elif kind == "frame" and exchanges:
                msg: str | bytes = (rec["text"] if "text" in rec
                                    else base64.b64decode(rec.get("binary_b64", "")))
                exchanges[-1].frames.append((rec.get("t") or 0.0, msg))
            elif kind == "end" and exchanges:
                exchanges[-1].t_end = rec.get("t")
                exchanges[-1].error = rec.get("error")
                exchanges[-1].open_after_terminal_s = rec.get("open_after_terminal_s")
                exchanges[-1].cut = bool(rec.get("cut", False))
                exchanges[-1].ws_close = rec.get("ws_close")
    return exchanges
