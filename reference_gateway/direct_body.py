"""A response body written straight to the connection, past the ASGI ``send`` chain (issue 20).

A relayed token's bytes, sent the ASGI way, cross Starlette's ``StreamingResponse``, three
middleware ``send`` wrappers (Starlette's two, observe.py's), uvicorn's ``send``, and the
async generators that made them; the task that runs them is woken once per token. For a
chat upstream's stream that is most of what the gateway spends per token beyond its two
syscalls (reports/benchmarks/gateway-overhead.md). ``DirectBody`` lets the code that receives a
token from the upstream (upstream.py's inline relay, inside the loop's callback) write its SSE
bytes to the client's transport itself, framed as uvicorn frames them.

It is an ASGI extension: the gateway's HTTP protocol (http_protocol.py) puts one in each
request's ``scope["extensions"][EXTENSION]``; any other server (or an in-process ASGI client in
a test) has none, and every byte then goes through ``send``, the path it always had.

What keeps the two ways in order: the head, and every body part sent through ``send`` before the
direct writes, are on the transport by the time ``send`` returns (uvicorn writes synchronously;
a paused transport makes ``send`` wait for the drain), and the inline relay writes only while
the stream's task is waiting for the upstream, so never between a part being made and sent; the
terminal events and the end of the body go through ``send`` after. ``ready`` is False whenever a
direct write could not go out as ``send`` would put it: the head not sent, the response ended,
the client gone, the transport paused (its buffer is full: the bytes then go the way that
waits), or a body not chunked.
"""

from __future__ import annotations

EXTENSION = "reference_gateway.direct_body"


class DirectBody:
    """One request's body, written to its connection (uvicorn's ``RequestResponseCycle``)."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle) -> None:
        self._cycle = cycle

    def ready(self) -> bool:
        """A body part written now reaches the client in order, framed as ``send`` would."""
        cycle = self._cycle
        return (cycle.response_started and not cycle.response_complete and not cycle.disconnected
                and not cycle.flow.write_paused and cycle.chunked_encoding is True)

    def write(self, data: bytes) -> None:
        """One chunk of the body (call only when ``ready``); nothing for empty ``data`` (an empty
        chunk would end a chunked body)."""
        if data:
            self._cycle.transport.write(b"%x\r\n%b\r\n" % (len(data), data))


def install(scope: dict, cycle) -> None:
    """Offer ``cycle``'s body to the app that serves ``scope`` (http_protocol.py)."""
    extensions = scope.get("extensions")
    if extensions is None:
        scope["extensions"] = extensions = {}
    extensions[EXTENSION] = DirectBody(cycle)
