"""Sans-IO Server-Sent Events decoder: bytes in (any chunking), frames and framing findings out.

Modelled on h11's ``Connection.receive_data()``: the decoder never touches a socket; a driver
feeds it bytes as they arrive and gets back complete frames. Each branch implements a rule of
the WHATWG HTML standard, §9.2.6 "Interpreting an event stream" (quoted where it matters).

Findings raised here (check ids in specs/checks.yaml): ``sse.utf8``, ``sse.line_endings.lf``,
``sse.data.single_line``, ``sse.frame.terminated``, ``sse.limits``.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from harness.core.findings import FindingLog

# Largest single frame we buffer. A response.completed carrying a long output and its tool
# items is the largest legitimate frame; OpenAI's biggest recorded one is ~60 KB. 16 MiB is
# generous for real servers and still bounds memory against a server that never sends a
# blank line (compare h11's HTTP_DEFAULT_MAX_BUFFER_SIZE of 16 KiB for headers).
MAX_FRAME_BYTES = 16 * 1024 * 1024

DONE_SENTINEL = "[DONE]"


@dataclass(slots=True)
class Frame:
    """One dispatched SSE event."""

    index: int  # 0-based position among dispatched frames
    data: str  # data lines joined with "\n"
    event: str | None = None  # the `event:` field, None when absent
    id: str | None = None
    data_lines: int = 1
    t: float | None = None  # arrival time (seconds, driver's clock), when the driver knows it

    @property
    def is_done(self) -> bool:
        return self.data == DONE_SENTINEL


class SSEDecoder:
    """Incremental decoder. ``feed(bytes) -> [Frame]``; ``close() -> [Frame]`` at EOF."""

    def __init__(self, log: FindingLog | None = None, *, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.log = log if log is not None else FindingLog()
        self.max_frame_bytes = max_frame_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._buf = ""  # undecoded-to-lines text
        # Pieces of one unfinished line that arrived with no line end in them (a long frame
        # over many chunks), joined once: appending each to _buf would copy it O(N²).
        self._pending: list[str] = []
        self._pending_size = 0
        self._data: list[str] = []
        # Characters of the frame being built: its lines, field names and line ends included,
        # so that a partial line (counted in _lines) never weighs more than the complete line
        # it becomes, and the cap's verdict does not depend on where the chunks end.
        self._data_size = 0
        self._event: str | None = None
        self._last_id: str | None = None
        self._frames = 0
        self._bytes = 0
        self._first = True
        self._saw_cr = False
        self._multiline_reported = False
        self._overflow = False
        self._discard = False  # after an overflow: drop lines until the frame's blank line
        self._skip_line = False  # after an overflow mid-line: drop the rest of that line
        self._now: float | None = None
        self.comments = 0
        self.log.apply("sse.utf8", "sse.frame.terminated", "sse.line_endings.lf",
                       "sse.data.single_line")

    # -- public API ------------------------------------------------------------------------
    def feed(self, data: bytes, *, t: float | None = None) -> list[Frame]:
        self._now = t
        self._bytes += len(data)
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            return self._recover_utf8(exc, final=False)
        return self._lines(text, final=False)

    def close(self) -> list[Frame]:
        """End of stream. "If the file ends in the middle of an event, before the final empty
        line, the incomplete event is not dispatched." — so that is a finding."""
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            frames = self._recover_utf8(exc, final=True)
        else:
            frames = self._lines(text, final=True)
        if self._data or self._buf.strip():
            self.log.fail(
                "sse.frame.terminated",
                "stream ended inside a frame with no blank line after it; a client discards it",
                frame=self._frames, byte_offset=self._bytes,
                actual=("".join(self._data) or self._buf)[:200],
            )
        self._data, self._buf = [], ""
        return frames

    # -- internals -------------------------------------------------------------------------
    def _recover_utf8(self, exc: UnicodeDecodeError, *, final: bool) -> list[Frame]:
        # ``exc.object`` is what the decoder was decoding: the bytes it held back from the
        # previous chunk (a multi-byte character split across chunks) plus this chunk. Re-decode
        # all of it, or a valid character straddling the chunk boundary is lost; the offset is
        # measured from its start. The valid prefix is framed first, so that the finding
        # names the frame the bad byte is in.
        pending, start = exc.object, max(exc.start, 0)
        out = self._lines(pending[:start].decode("utf-8"), final=False)
        offset = self._bytes - len(pending) + start
        self.log.fail("sse.utf8", f"invalid UTF-8 at byte {offset} of the event stream "
                      f"({exc.reason})", byte_offset=offset, frame=self._frames)
        # Continue as a browser would: "decoded using UTF-8 decode" replaces bad bytes.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return out + self._lines(self._decoder.decode(pending[start:], final), final=final)

    def _lines(self, text: str, *, final: bool) -> list[Frame]:
        if "\n" not in text and not final and not self._first and "\r" not in text \
                and self._buf[-1:] != "\r":
            return self._unfinished_line(text)
        if self._pending:
            self._buf += "".join(self._pending)
            self._pending, self._pending_size = [], 0
        buf = self._buf + text
        if self._first and buf:
            # "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
            if buf[0] == "\ufeff":
                buf = buf[1:]
            self._first = False
        out: list[Frame] = []
        held = ""
        if "\r" in buf:
            # Lines end in "a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a
            # single U+000A LINE FEED (LF) character not preceded by a CR, or a single CR". A CR
            # at the end of the buffer may be half of a CRLF split across chunks: hold it back.
            if not self._saw_cr:
                self._saw_cr = True
                self.log.fail("sse.line_endings.lf",
                              "lines end with CR or CRLF (legal SSE, but OpenAI's service sends LF)",
                              frame=self._frames)
            if buf.endswith("\r") and not final:
                buf, held = buf[:-1], "\r"
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        if self._skip_line:
            # The rest of a line that overflowed the cap: it is not the start of a new line.
            end = buf.find("\n")
            buf = "" if end < 0 else buf[end + 1:]
            self._skip_line = end < 0
        lines = buf.split("\n")  # one C call; the last piece is the unterminated rest
        rest = lines.pop()
        line = self._line
        for text_line in lines:
            line(text_line, out)
        if len(rest) + self._data_size > self.max_frame_bytes:
            self._overflowed(len(rest))
            rest = ""
            self._skip_line = True
        self._buf = rest + held
        return out

    def _unfinished_line(self, text: str) -> list[Frame]:
        """``text`` holds no line end: it continues the line in progress."""
        if self._skip_line:  # the rest of a line that overflowed the cap
            return []
        self._pending.append(text)
        self._pending_size += len(text)
        if len(self._buf) + self._pending_size + self._data_size > self.max_frame_bytes:
            self._overflowed(len(self._buf) + self._pending_size)
            self._buf, self._pending, self._pending_size = "", [], 0
            self._skip_line = True
        return []

    def _line(self, line: str, out: list[Frame]) -> None:
        if not line:
            if self._discard:  # the blank line ending the frame that overflowed
                self._discard = False
                self._event = None
                return
            self._dispatch(out)
            return
        if self._discard:
            return
        if line[0] == ":":
            # "If the line starts with a U+003A COLON character (:) — Ignore the line."
            self.comments += 1
            return
        self._data_size += len(line) + 1
        if self._data_size > self.max_frame_bytes:
            self._overflowed(0)
            return
        colon = line.find(":")
        if colon < 0:
            field, value = line, ""
        else:
            field, value = line[:colon], line[colon + 1:]
            if value[:1] == " ":
                value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\x00" not in value:
                self._last_id = value
        # "retry" and unknown fields: "Otherwise — The field is ignored."

    def _overflowed(self, extra: int) -> None:
        if not self._overflow:
            self._overflow = True
            self.log.fail("sse.limits",
                          f"an event of more than {self.max_frame_bytes} bytes exceeds the "
                          "frame cap (no blank line ended it)",
                          frame=self._frames, byte_offset=self._bytes)
        self._data, self._data_size, self._event = [], 0, None
        self._discard = True

    def _dispatch(self, out: list[Frame]) -> None:
        data = self._data
        if not data:
            # "If the data buffer is an empty string, set the data buffer and the event type
            # buffer to the empty string and return."
            self._event, self._data_size = None, 0
            return
        n = len(data)
        if n > 1 and not self._multiline_reported:
            self._multiline_reported = True
            self.log.fail("sse.data.single_line",
                          f"frame {self._frames} splits its data over {n} data: lines",
                          frame=self._frames)
        frame = Frame(self._frames, data[0] if n == 1 else "\n".join(data), self._event,
                      self._last_id, n, self._now)
        self._frames += 1
        out.append(frame)
        self._data, self._data_size, self._event = [], 0, None


def decode_all(body: bytes, log: FindingLog | None = None) -> tuple[list[Frame], FindingLog]:
    """Decode a whole body at once (offline validation)."""
    dec = SSEDecoder(log)
    frames = dec.feed(body)
    frames += dec.close()
    return frames, dec.log
