"""A recording proxy: what a real client sends, captured to write suites/scenarios/clients/.

    .venv/bin/python clients/capture.py --upstream http://127.0.0.1:8080/v1 --port 18500 \
        --out /tmp/codex.jsonl [--drop client_metadata --drop include ...]

Every request is forwarded to ``--upstream`` and the answer relayed (streamed bodies chunk by
chunk); when the answer has ended, one JSON line is appended to ``--out``: ``{"method", "path",
"query", "json", "status", "response"}``, ``json`` the body exactly as the client sent it and
``response`` the Response object answered (the JSON body, or a stream's last ``response``),
whose ids let clients/to_scenario.py turn a later request's ``previous_response_id``, call ids
and item references into references to that step. ``--drop FIELD`` removes a top-level body field (``--drop-tool TYPE``: the tools
of that type) *from the forwarded copy only*, so a client can be driven past a server that still
refuses one of its fields while the recording keeps the field: used to capture Codex's three
turns from a gateway that refused ``client_metadata`` (reports/clients.md). The recording is
the data; ``clients/to_scenario.py`` turns it into a scenario file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

# Hop-by-hop and length headers are the proxy's own business, not relayed.
_SKIP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
UPSTREAM_TIMEOUT_S = 120.0


def _last_response(raw: bytes) -> dict | None:
    """The Response object of an answer: the JSON body itself, or the ``response`` of the last
    SSE event that has one (``response.completed``)."""
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
        return body if isinstance(body, dict) else None
    except ValueError:
        pass
    found = None
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("response"), dict):
                found = event["response"]
    return found


def build_app(upstream: str, out: Path, drop: list[str], drop_tools: list[str]) -> Starlette:
    client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S, trust_env=False)

    async def proxy(request: Request) -> Response:
        raw = await request.body()
        path = request.url.path.removeprefix("/v1")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = {"method": request.method, "path": path, "query": request.url.query, "json": body}
        if isinstance(body, dict) and (drop or drop_tools):
            body = {k: v for k, v in body.items() if k not in drop}
            if isinstance(body.get("tools"), list):
                body["tools"] = [t for t in body["tools"]
                                 if not (isinstance(t, dict) and t.get("type") in drop_tools)]
            raw = json.dumps(body).encode()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}
        url = upstream + path + (f"?{request.url.query}" if request.url.query else "")
        sent = client.build_request(request.method, url, content=raw, headers=headers)
        answer = await client.send(sent, stream=True)
        relay = {k: v for k, v in answer.headers.items() if k.lower() not in _SKIP_HEADERS}
        seen = bytearray()

        async def chunks():
            async for chunk in answer.aiter_raw():
                seen.extend(chunk)
                yield chunk

        async def done() -> None:
            await answer.aclose()
            record.update(status=answer.status_code, response=_last_response(bytes(seen)))
            with out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

        return StreamingResponse(chunks(), status_code=answer.status_code, headers=relay,
                                 background=BackgroundTask(done))

    methods = ["GET", "POST", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", proxy, methods=methods)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="base URL to forward to (ends in /v1)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True, help="JSONL file the requests are appended to")
    p.add_argument("--drop", action="append", default=[], metavar="FIELD")
    p.add_argument("--drop-tool", action="append", default=[], metavar="TYPE")
    a = p.parse_args()
    app = build_app(a.upstream.rstrip("/"), Path(a.out), a.drop, a.drop_tool)
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
