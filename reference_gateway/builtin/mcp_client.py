"""The gateway's MCP client: list a server's tools (cached), call one, each under a deadline.

Uses the ``mcp`` SDK (2.x) over Streamable HTTP: one session per operation (connect,
initialize, one request, close). Decision: no pooled sessions. A response lists each server's
tools once (and the list is cached for ``LIST_TTL_S``), so the per-call session costs one
initialize round trip on loopback-class networks, and nothing has to survive a server restart.

Failures never raise out of here as anything but ``McpError`` (one line, naming the server):
unreachable, protocol error, deadline. A tool that *answers* with ``isError`` is not a failure
of the client: ``call_tool`` returns it as ``ToolResult(is_error=True)``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

# How long a server's tool list is reused across responses. OpenAI lists a server's tools once
# per conversation (the mcp_list_tools item in context); a minute bounds how stale a list may
# be when a server adds a tool, while a burst of requests lists it once.
LIST_TTL_S = 60.0
# Deadline of one tools/list, connect and initialize included.
LIST_TIMEOUT_S = 10.0
# Deadline of one tools/call (a tool may do real work: a search, a database query).
CALL_TIMEOUT_S = 30.0
# Largest tool output kept (and sent to the model): the rest is cut with a note. 1 MiB of text
# is far beyond a model's context; the cap keeps a flooding server from filling the store.
MAX_OUTPUT_CHARS = 1024 * 1024


class McpError(Exception):
    """The server could not be reached or did not speak MCP; the message says which server.
    ``status``: 504 for a missed deadline, 502 otherwise (OpenAI's ``http_error`` shape)."""

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ToolResult:
    is_error: bool
    text: str


def _http_client(headers: dict[str, str]):
    # Deferred: the mcp SDK loads only once a request uses an MCP tool.
    from mcp.shared._httpx_utils import create_mcp_http_client

    return create_mcp_http_client(headers=headers or None)


def _client(url: str, headers: dict[str, str]):
    from mcp import Client  # deferred, as above

    if not headers:
        return Client(url)
    return Client(_HeaderTransport(url, headers))


class _HeaderTransport:
    """A Streamable HTTP transport whose requests carry configured headers (``Client(url)``
    takes none)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self._cm = None
        self._http = None

    async def __aenter__(self):
        # Deferred: the mcp SDK loads only once a request uses an MCP tool.
        from mcp.client.streamable_http import streamable_http_client

        self._http = _http_client(self.headers)
        await self._http.__aenter__()
        self._cm = streamable_http_client(self.url, http_client=self._http)
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc_info):
        try:
            return await self._cm.__aexit__(*exc_info)
        finally:
            await self._http.__aexit__(*exc_info)


def _text_of(result) -> str:
    parts = []
    for block in result.content or []:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else json.dumps(block.model_dump(mode="json", by_alias=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    text = "\n".join(parts)
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS] + f"\n[output cut at {MAX_OUTPUT_CHARS} characters]"
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):  # anyio task groups wrap the real error
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class McpClient:
    """Tool lists cached per (url, headers) for ``list_ttl_s``; nothing else is kept."""

    def __init__(self, *, list_ttl_s: float = LIST_TTL_S, list_timeout_s: float = LIST_TIMEOUT_S,
                 call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.list_ttl_s = list_ttl_s
        self.list_timeout_s = list_timeout_s
        self.call_timeout_s = call_timeout_s
        self._lists: dict[tuple, tuple[float, list[dict]]] = {}

    async def list_tools(self, url: str, headers: dict[str, str] | None = None) -> list[dict]:
        """``[{"name", "description", "input_schema", "annotations"}]`` (the shape of OpenAI's
        ``mcp_list_tools.tools``)."""
        key = (url, tuple(sorted((headers or {}).items())))
        cached = self._lists.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.list_ttl_s:
            return [dict(t) for t in cached[1]]
        try:
            async with asyncio.timeout(self.list_timeout_s):
                async with _client(url, headers or {}) as client:
                    listed = await client.list_tools()
        except TimeoutError:
            raise McpError(f"MCP server {url} did not list its tools within {self.list_timeout_s:g} s",
                           status=504) from None
        except Exception as exc:  # noqa: BLE001 - anything the SDK or the network raises
            raise McpError(f"cannot list the tools of MCP server {url}: {_describe(exc)}") from None
        tools = []
        for tool in listed.tools:
            annotations = tool.annotations.model_dump(mode="json", exclude_none=True) if tool.annotations else None
            tools.append({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema,
                          "annotations": annotations})
        self._lists[key] = (time.monotonic(), tools)
        return [dict(t) for t in tools]

    async def call_tool(self, url: str, name: str, arguments: dict, headers: dict[str, str] | None = None,
                        *, timeout_s: float | None = None) -> ToolResult:
        limit = timeout_s if timeout_s is not None else self.call_timeout_s
        try:
            async with asyncio.timeout(limit):
                async with _client(url, headers or {}) as client:
                    result = await client.call_tool(name, arguments)
        except TimeoutError:
            raise McpError(f"MCP tool {name!r} did not answer within {limit:g} s", status=504) from None
        except Exception as exc:  # noqa: BLE001
            raise McpError(f"calling MCP tool {name!r} on {url} failed: {_describe(exc)}") from None
        return ToolResult(bool(result.is_error), _text_of(result))
