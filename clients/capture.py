"""A recording proxy: what a real client sends, captured to write suites/scenarios/clients/.

    .venv/bin/python clients/capture.py --upstream http://127.0.0.1:8080/v1 --port 18500 \
        --out /tmp/codex.jsonl [--drop client_metadata --drop include ...]

Every request is appended to ``--out`` as one JSON line ``{"method", "path", "json"}`` exactly as
the client sent it, then forwarded to ``--upstream`` and the answer relayed (streamed bodies
chunk by chunk). ``--drop FIELD`` removes a top-level body field (``--drop-tool TYPE``: the tools
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
_SKIP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
UPSTREAM_TIMEOUT_S = 120.0


def build_app(upstream: str, out: Path, drop: list[str], drop_tools: list[str]) -> Starlette:
    client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S, trust_env=False)

    async def proxy(request: Request) -> Response:
        raw = await request.body()
        path = request.url.path.removeprefix("/v1")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"method": request.method, "path": path, "query": request.url.query,
                                "json": body}) + "\n")
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
        return StreamingResponse(answer.aiter_raw(), status_code=answer.status_code,
                                 headers=relay, background=BackgroundTask(answer.aclose))

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
