"""Deterministic MCP servers on loopback, for the built-in tool scenarios and the gateway's tests.

    with start_tools_server() as server:           # add, echo, fail, slow
        server.url                                 # "http://127.0.0.1:PORT/mcp"
        ...                                        # point the gateway's `mcp` tool at it
        server.calls                               # [("add", {"a": 2, "b": 3}), ...]
        server.list_tools_count                    # tools/list requests that arrived
    with start_search_server() as search:          # search(query, max_results=3): fake web search
        ...

Each server is an MCP server (Streamable HTTP at ``/mcp``) run by a real uvicorn server in a
daemon thread (``reference_gateway.launch.RunningServer``): the port is bound before the server
starts, ``start_*`` returns once uvicorn reports started (``launch.STARTUP_DEADLINE_S``, else
RuntimeError naming the server), and ``close()`` stops it within ``launch.SHUTDOWN_DEADLINE_S``
twice over at worst. Nothing is fetched from anywhere: the search results are derived from a hash
of the query. ``python -m harness.targets.mcp_servers [--port P] [tools|search]`` serves one by hand.

Tool results (what a gateway turns into ``mcp_call.output`` / ``mcp_call.error``):
  add(a, b)        -> "5"                         integers, sum as decimal text
  echo(text)       -> the text unchanged
  fail(reason)     -> isError: true, text "fail: failed on purpose: <reason>"   (a *tool* error)
  slow(seconds)    -> sleeps min(seconds, SLOW_TOOL_MAX_SECONDS), then "done"
  search(query, max_results=3) -> JSON text: [{"title", "url", "snippet"}, ...], urls under
                      https://example.com/ (``fake_search_results`` computes the same list)
Arguments that do not match a tool's input schema give a tool error (isError: true) too: SEP-1303
(spec 2025-11-25) made input validation errors tool execution errors, so the model sees the message
and can correct itself. An unknown tool name stays a JSON-RPC protocol error (-32602,
"Unknown tool: NAME").

How the mcp 2.x client is used (mcp 2.3; the gateway must not import this module, so this is
the recipe for its own client)::

    import anyio, httpx2                               # mcp 2.x is built on httpx2, not httpx
    from mcp import Client                             # v1's streamablehttp_client is gone
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    with anyio.fail_after(deadline_s):                 # the SDK's own read timeout is 300 s
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer T"},
                                      timeout=deadline_s) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                listing = await client.list_tools()    # .tools[i].name/.description/.input_schema
                result = await client.call_tool("add", {"a": 2, "b": 3})
    result.is_error                                    # True for a tool error (fail)
    "".join(b.text for b in result.content if b.type == "text")      # "5"

  - ``Client(url_string)`` works too, with a default httpx2 client (30 s connect, 300 s read);
    pass your own ``httpx2.AsyncClient`` for headers and timeouts.
  - Entering ``Client`` negotiates the era: ``mode="auto"`` (default) POSTs ``server/discover``
    at protocol 2026-07-28 and falls back to the ``initialize`` handshake on an older server.
    Against these servers the modern era wins: no session id, one self-contained POST per
    request (headers ``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``; the version and
    client capabilities ride in ``params._meta``), a plain ``application/json`` answer.
    ``mode="legacy"`` forces initialize + ``Mcp-Session-Id`` (what a 1.x server needs).
  - A tool error is a normal result with ``is_error=True``. A protocol error (unknown tool, a
    401 whose body is a JSON-RPC error) is raised as ``MCPError`` (``.code``, ``.message``).
  - Errors from ``call_tool`` / ``list_tools`` are raised bare inside the ``async with``; any
    error that crosses the ``async with Client`` boundary (connection refused or a 401 while
    entering, or an MCPError you let propagate) arrives wrapped in an ExceptionGroup from anyio's
    task groups (``httpx2.ConnectError`` / ``MCPError`` inside): catch inside, or ``except*``.
  - After the *first successful* ``call_tool`` of a tool this ``Client`` has not listed, the
    SDK sends a ``tools/list`` of its own (to validate the result against the tool's output
    schema): a gateway that caches the tool list must list first on the same ``Client``, or
    these servers' ``list_tools_count`` will count the SDK's extra listing.
  - ``Client`` also caches list results per its ``CacheConfig``, honouring the server's
    ``ttlMs``; these servers answer ``ttlMs: 0``, so every ``list_tools()`` reaches the server.

``list_tools`` and ``call_tool`` below are that recipe, as the tests use it.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
import jsonschema_rs
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from starlette.responses import JSONResponse

from harness import __version__
from reference_gateway.launch import RunningServer

MCP_PATH = "/mcp"
TOOLS_SERVER_NAME = "respcheck-tools"
SEARCH_SERVER_NAME = "respcheck-search"

# `slow` never sleeps longer than this, whatever it is asked: long enough to outlast any deadline
# a test sets on a tool call (the gateway's own are a few seconds), short enough that a forgotten
# call cannot keep a CI job waiting. close() wakes sleeping calls anyway (below).
SLOW_TOOL_MAX_SECONDS = 10.0
# How often a sleeping `slow` call looks whether its server is closing. Without the wake-up,
# uvicorn waits out its graceful-shutdown timeout and then cancels the request with a traceback.
SLOW_TOOL_POLL_S = 0.05

# OpenAI's web search shows a handful of sources per query; 3 by default keeps transcripts short,
# and 10 is Google's and Bing's classic first page.
SEARCH_DEFAULT_RESULTS = 3
SEARCH_MAX_RESULTS = 10
SEARCH_QUERY_MAX_CHARS = 1000
SEARCH_RESULT_BASE_URL = "https://example.com"  # RFC 2606: reserved for documentation, never real
SEARCH_SLUG_MAX_CHARS = 40
SEARCH_DIGEST_HEX_CHARS = 12

# JSON-RPC 2.0 §5.1 leaves -32000..-32099 to implementations; the body of a 401 is a JSON-RPC
# error so the mcp client surfaces this message instead of "Server returned an error response".
UNAUTHORIZED_ERROR_CODE = -32001

# A bound on the pages list_tools() follows: a server whose cursor never ends cannot hang it.
LIST_TOOLS_MAX_PAGES = 100


class ToolFailure(Exception):
    """Raised by a tool's ``run`` to answer with a tool error (``isError: true``) carrying the message."""


ToolRun = Callable[..., Awaitable[str]]
"""``async run(arguments, *, closing: threading.Event) -> text``; raises ToolFailure for a tool error."""


@dataclass(frozen=True)
class McpTool:
    """One tool: what tools/list says about it, and what tools/call does."""

    name: str
    description: str
    input_schema: dict[str, Any]
    run: ToolRun


# -- the tools ----------------------------------------------------------------------------
def _object_schema(properties: dict[str, dict[str, Any]], *, required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


async def _add(arguments: Mapping[str, Any], *, closing: threading.Event) -> str:
    # JSON Schema's "integer" admits 2.0; int() makes the sum read "5", never "5.0".
    return str(int(arguments["a"]) + int(arguments["b"]))


async def _echo(arguments: Mapping[str, Any], *, closing: threading.Event) -> str:
    return arguments["text"]


async def _fail(arguments: Mapping[str, Any], *, closing: threading.Event) -> str:
    raise ToolFailure(f"fail: failed on purpose: {arguments['reason']}")


async def _slow(arguments: Mapping[str, Any], *, closing: threading.Event) -> str:
    deadline = time.monotonic() + min(float(arguments["seconds"]), SLOW_TOOL_MAX_SECONDS)
    while (remaining := deadline - time.monotonic()) > 0:
        if closing.is_set():
            raise ToolFailure("slow: interrupted, the server is shutting down")
        await anyio.sleep(min(remaining, SLOW_TOOL_POLL_S))
    return "done"


def fake_search_results(query: str, *, max_results: int = SEARCH_DEFAULT_RESULTS) -> list[dict[str, str]]:
    """The results ``search`` answers for ``query``: the same query, the same list, every time.

    Each url is ``https://example.com/<words of the query>/<sha256 of query and rank>``, so
    different queries give different urls and a reader can still tell which query made one.
    """
    slug = "-".join(re.findall(r"[a-z0-9]+", query.lower()))[:SEARCH_SLUG_MAX_CHARS].strip("-") or "query"
    results = []
    for rank in range(1, max_results + 1):
        digest = hashlib.sha256(f"{query}\x00{rank}".encode()).hexdigest()[:SEARCH_DIGEST_HEX_CHARS]
        results.append(
            {
                "title": f"{query} - result {rank}",
                "url": f"{SEARCH_RESULT_BASE_URL}/{slug}/{digest}",
                "snippet": f"Result {rank} of a deterministic fake web search for {query!r} ({digest}).",
            }
        )
    return results


async def _search(arguments: Mapping[str, Any], *, closing: threading.Event) -> str:
    max_results = int(arguments.get("max_results", SEARCH_DEFAULT_RESULTS))
    return json.dumps(fake_search_results(arguments["query"], max_results=max_results))


def tools_server_tools() -> list[McpTool]:
    """The tools of ``start_tools_server``, freshly built (the schemas are plain dicts)."""
    return [
        McpTool(
            name="add",
            description="Add two integers. Returns the sum as decimal text, e.g. add(2, 3) -> 5.",
            input_schema=_object_schema(
                {
                    "a": {"type": "integer", "description": "The first addend."},
                    "b": {"type": "integer", "description": "The second addend."},
                },
                required=["a", "b"],
            ),
            run=_add,
        ),
        McpTool(
            name="echo",
            description="Return the given text unchanged.",
            input_schema=_object_schema(
                {"text": {"type": "string", "description": "The text to send back."}}, required=["text"]
            ),
            run=_echo,
        ),
        McpTool(
            name="fail",
            description="Always fails on purpose: answers with a tool error whose message names the reason.",
            input_schema=_object_schema(
                {"reason": {"type": "string", "description": "Why it should fail; quoted in the error."}},
                required=["reason"],
            ),
            run=_fail,
        ),
        McpTool(
            name="slow",
            description=f"Wait the given number of seconds (at most {SLOW_TOOL_MAX_SECONDS:g}), then return 'done'.",
            input_schema=_object_schema(
                {
                    "seconds": {
                        "type": "number",
                        "minimum": 0,
                        "description": f"How long to wait, in seconds; capped at {SLOW_TOOL_MAX_SECONDS:g}.",
                    }
                },
                required=["seconds"],
            ),
            run=_slow,
        ),
    ]


def search_server_tools() -> list[McpTool]:
    """The tool of ``start_search_server``."""
    return [
        McpTool(
            name="search",
            description=(
                "Search the web (a deterministic fake: nothing is fetched). Returns a JSON array of "
                "results, each {title, url, snippet}."
            ),
            input_schema=_object_schema(
                {
                    "query": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": SEARCH_QUERY_MAX_CHARS,
                        "description": "What to search for.",
                    },
                    "max_results": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": SEARCH_MAX_RESULTS,
                        "default": SEARCH_DEFAULT_RESULTS,
                        "description": f"How many results to return (1 to {SEARCH_MAX_RESULTS}).",
                    },
                },
                required=["query"],
            ),
            run=_search,
        )
    ]


# -- the server ---------------------------------------------------------------------------
def _text_result(text: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=is_error)


class _BearerGate:
    """ASGI middleware: HTTP requests without ``Authorization: Bearer <token>`` get a 401."""

    def __init__(self, app, *, token: str, on_reject: Callable[[], None]) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._on_reject = on_reject

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                self._on_reject()
                error = {"code": UNAUTHORIZED_ERROR_CODE, "message": "Unauthorized: missing or wrong bearer token"}
                body = {"jsonrpc": "2.0", "id": None, "error": error}
                await JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class McpServerHandle:
    """An MCP server with ``tools``, serving Streamable HTTP at ``url`` until ``close()``.

    ``calls`` and ``list_tools_count`` are what the server received, read safely from any thread;
    ``rejected_count`` is the requests refused for a missing or wrong bearer token.
    """

    def __init__(
        self,
        tools: Sequence[McpTool],
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int = 0,
        require_bearer: str | None = None,
        json_response: bool = False,
    ) -> None:
        self.name = name
        self._tools = {tool.name: tool for tool in tools}
        self._validators = {tool.name: jsonschema_rs.validator_for(tool.input_schema) for tool in tools}
        self._lock = threading.Lock()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._list_tools_count = 0
        self._rejected_count = 0
        self._closing = threading.Event()
        # The low-level Server, not MCPServer: MCPServer's constructor calls logging.basicConfig
        # (a process-wide side effect), and here every schema and every isError is stated exactly.
        server = Server(
            name,
            version=__version__,
            on_list_tools=self._on_list_tools,
            on_call_tool=self._on_call_tool,
            # Without it the modern transport runs the tools/list handler itself to find a tool's
            # schema before each call (Mcp-Param header checks), and list_tools_count would lie.
            get_tool_input_schema=self._input_schema,
        )
        # host=: for loopback hosts the SDK turns on DNS-rebinding protection (Host must be local).
        app = server.streamable_http_app(streamable_http_path=MCP_PATH, json_response=json_response, host=host)
        if require_bearer is not None:
            app = _BearerGate(app, token=require_bearer, on_reject=self._count_rejected)
        self._server = RunningServer(app, host=host, port=port, name=f"MCP server {name}")

    # -- what tests read
    @property
    def url(self) -> str:
        return f"{self._server.origin}{MCP_PATH}"

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every tools/call received, in order, as (tool name, arguments): a snapshot copy."""
        with self._lock:
            return [(name, copy.deepcopy(arguments)) for name, arguments in self._calls]

    @property
    def list_tools_count(self) -> int:
        with self._lock:
            return self._list_tools_count

    @property
    def rejected_count(self) -> int:
        with self._lock:
            return self._rejected_count

    # -- MCP handlers (run on the server's event loop thread)
    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._tools.get(name)
        return None if tool is None else tool.input_schema

    async def _on_list_tools(self, ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        with self._lock:
            self._list_tools_count += 1
        return types.ListToolsResult(
            tools=[
                types.Tool(name=tool.name, description=tool.description, input_schema=copy.deepcopy(tool.input_schema))
                for tool in self._tools.values()
            ]
        )

    async def _on_call_tool(self, ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        with self._lock:
            self._calls.append((params.name, copy.deepcopy(arguments)))
        tool = self._tools.get(params.name)
        if tool is None:
            # MCP spec, tools "Error Handling": unknown tools are protocol errors.
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        problems = [
            f"{'/'.join(map(str, error.instance_path)) or '(arguments)'}: {error.message}"
            for error in self._validators[tool.name].iter_errors(arguments)
        ]
        if problems:
            return _text_result(f"{tool.name}: invalid arguments: {'; '.join(problems)}", is_error=True)
        try:
            return _text_result(await tool.run(arguments, closing=self._closing))
        except ToolFailure as failure:
            return _text_result(str(failure), is_error=True)

    def _count_rejected(self) -> None:
        with self._lock:
            self._rejected_count += 1

    # -- lifetime
    def close(self) -> None:
        self._closing.set()  # sleeping `slow` calls answer at once instead of holding shutdown
        self._server.close()

    def __enter__(self) -> McpServerHandle:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def start_tools_server(
    *, host: str = "127.0.0.1", port: int = 0, require_bearer: str | None = None, json_response: bool = False
) -> McpServerHandle:
    """The add / echo / fail / slow server, started (``port=0``: a free port)."""
    return McpServerHandle(
        tools_server_tools(),
        name=TOOLS_SERVER_NAME,
        host=host,
        port=port,
        require_bearer=require_bearer,
        json_response=json_response,
    )


def start_search_server(
    *, host: str = "127.0.0.1", port: int = 0, require_bearer: str | None = None, json_response: bool = False
) -> McpServerHandle:
    """The fake web-search server (tool ``search``), started (``port=0``: a free port)."""
    return McpServerHandle(
        search_server_tools(),
        name=SEARCH_SERVER_NAME,
        host=host,
        port=port,
        require_bearer=require_bearer,
        json_response=json_response,
    )


# -- the 2.x client, as documented above --------------------------------------------------
async def _with_client(
    url: str, action: Callable[[Client], Awaitable[Any]], *, timeout_s: float, headers: Mapping[str, str], mode: str
) -> Any:
    """``action(client)`` on a connected Client, connecting and all within ``timeout_s``."""
    try:
        with anyio.fail_after(timeout_s):
            async with httpx2.AsyncClient(headers=dict(headers), timeout=timeout_s) as http:
                transport = streamable_http_client(url, http_client=http)
                async with Client(transport, mode=mode, read_timeout_seconds=timeout_s) as client:
                    return await action(client)
    except BaseExceptionGroup as group:
        # Connect-time errors come wrapped by anyio's task groups; a single cause is raised bare.
        leaves = _leaf_exceptions(group)
        if len(leaves) == 1 and isinstance(leaves[0], Exception):
            raise leaves[0] from None
        raise


def _leaf_exceptions(group: BaseExceptionGroup) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaf_exceptions(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


async def list_tools(
    url: str, *, timeout_s: float, headers: Mapping[str, str] | None = None, mode: str = "auto"
) -> list[dict[str, Any]]:
    """The server's tools as ``{"name", "description", "input_schema"}``, every page of them.

    Raises MCPError (a protocol error), httpx2.TransportError (cannot connect), TimeoutError.
    """

    async def every_page(client: Client) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(LIST_TOOLS_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(
                {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}
                for tool in page.tools
            )
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    return await _with_client(url, every_page, timeout_s=timeout_s, headers=headers or {}, mode=mode)


async def call_tool(
    url: str,
    name: str,
    arguments: Mapping[str, Any],
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    mode: str = "auto",
) -> tuple[bool, str]:
    """Call one tool: ``(is_error, text)``, the text blocks of the result joined by newlines.

    A tool error is ``(True, message)``; a protocol error raises MCPError. Note the SDK lists
    the tools once after a successful call (module docstring), so list_tools_count goes up by 1.
    """

    async def one_call(client: Client) -> tuple[bool, str]:
        result = await client.call_tool(name, dict(arguments))
        text = "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))
        return bool(result.is_error), text

    return await _with_client(url, one_call, timeout_s=timeout_s, headers=headers or {}, mode=mode)


# -- by hand ------------------------------------------------------------------------------
SERVER_KINDS: dict[str, Callable[..., McpServerHandle]] = {"tools": start_tools_server, "search": start_search_server}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.targets.mcp_servers",
        description="Serve one of respcheck's deterministic MCP servers (Streamable HTTP) until Ctrl-C.",
    )
    parser.add_argument("kind", nargs="?", choices=sorted(SERVER_KINDS), default="tools")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--bearer", default=None, help="require `Authorization: Bearer BEARER`")
    args = parser.parse_args(argv)
    try:
        server = SERVER_KINDS[args.kind](host=args.host, port=args.port, require_bearer=args.bearer)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with server:
        print(server.url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
