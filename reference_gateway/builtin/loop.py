"""The tool loop: the upstream model calls hosted tools, the gateway runs them, and says so.

One response with hosted tools is:

    response.created  response.in_progress
    mcp_list_tools item per MCP server not already listed in the conversation
    mcp_call items for the approvals this input answers (approved ones are run)
    turn*: one streamed upstream call (reasoning and text stream live) whose hosted calls are
           run in order, each streamed as its item (below), then fed back as tool messages
    terminal event

    mcp_list_tools := added  mcp_list_tools.in_progress  (completed | failed)  done
    mcp_call := added  mcp_call.in_progress  mcp_call_arguments.delta*  mcp_call_arguments.done
                (mcp_call.completed | mcp_call.failed)  done
    mcp_approval_request := added  done                 (and the response ends: completed)
    code_interpreter_call := added  .in_progress  _code.delta*  _code.done  .interpreting
                             .completed  done
    web_search_call := added  .in_progress  .searching  .completed  done

The loop ends when a turn calls no hosted tool (its text and function calls end the response,
as without hosted tools), when a call needs approval, at ``MAX_TURNS`` (the last turn is not
offered hosted tools, so the model must answer), or at the deadline ``loop_timeout_s``
(the response fails). ``max_tool_calls`` caps the hosted calls run in a response: once reached,
hosted tools are no longer offered, and a call past the cap in the same turn is not run (the
model is told so in its tool message, and no item is emitted for it: it never happened).

Failures of a tool are the tool's, not the response's: an MCP tool error or an unreachable
server makes a failed ``mcp_call`` (``error`` set), a list that cannot be fetched a failed
``mcp_list_tools`` (``error`` set, no tools offered), a search that fails a ``web_search_call``
with status ``failed``, Python that raises a completed ``code_interpreter_call`` whose logs
hold the traceback; the model sees each and the response goes on. Only the upstream failing,
or the deadline, fails the response.

Code interpreter: each call runs in a fresh sandbox (reference_gateway/sandbox/), so variables
do not carry from one call to the next (OpenAI's containers keep them; decision: isolation over
state, documented in the README). ``container_id`` names the response's container.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reference_gateway import translate
from reference_gateway.builtin.config import BuiltinConfig, WebSearchProfile
from reference_gateway.builtin.hosted import Hosted, McpTool, mcp_function_name
from reference_gateway.builtin.mcp_client import McpClient, McpError
from reference_gateway.emitter import Emitter
from reference_gateway.errors import APIError
from reference_gateway.ids import new_id
from reference_gateway.observe import tool_call, upstream_failed
from reference_gateway.params import CreateRequest
from reference_gateway.sandbox.contract import SandboxError
from reference_gateway.tools import WEB_SEARCH_TYPES

# Upstream turns in one response. OpenAI does not document its cap; agents rarely chain more
# than a handful of tool rounds, and every turn costs a model call.
MAX_TURNS = 8
# The whole loop (every turn and every tool call) of one response.
LOOP_TIMEOUT_S = 300.0
# Code deltas: the code is streamed in pieces of at most this many characters (the model's
# own fragments are JSON of ``{"code": ...}``, not code).
CODE_DELTA_CHARS = 64
# Results of a search shown to the model.
SEARCH_RESULTS = 5


@dataclass
class Builtins:
    """What the app gives every tool loop."""
    config: BuiltinConfig
    mcp: McpClient
    sandbox: Any  # reference_gateway.sandbox.CodeSandbox, or None
    web_search: WebSearchProfile | None
    loop_timeout_s: float = LOOP_TIMEOUT_S


def listed_in_context(context: list[dict], label: str) -> list[dict] | None:
    """The tools of the last ``mcp_list_tools`` item for ``label`` in the conversation."""
    for item in reversed(context):
        if item.get("type") == "mcp_list_tools" and item.get("server_label") == label and not item.get("error"):
            return list(item.get("tools") or [])
    return None


def approval_requests(context: list[dict]) -> dict[str, dict]:
    return {i["id"]: i for i in context if i.get("type") == "mcp_approval_request"}


def check_approvals(req: CreateRequest, context: list[dict]) -> None:
    """Every ``mcp_approval_response`` of this input answers a request of the conversation (400
    before anything streams)."""
    known = approval_requests(context)
    for n, item in enumerate(req.input_items):
        if item["type"] == "mcp_approval_response" and item["approval_request_id"] not in known:
            raise APIError(400, f"No mcp_approval_request with id {item['approval_request_id']!r} in this "
                           "conversation.", param=f"input[{n}].approval_request_id", code="invalid_value")


def _usage_sum(total: dict | None, more: dict | None) -> dict | None:
    if not more:
        return total
    if not total:
        return dict(more)
    out = dict(total)
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        out[key] = int(total.get(key) or 0) + int(more.get(key) or 0)
    return out


class ToolLoop:
    def __init__(self, req: CreateRequest, emitter: Emitter, messages: list[dict], context: list[dict],
                 hosted: Hosted, builtins: Builtins, upstream) -> None:
        self.req, self.emitter, self.messages, self.context = req, emitter, messages, context
        self.hosted, self.builtins, self.upstream = hosted, builtins, upstream
        self.calls_made = 0
        self.container_id = new_id("cntr")
        self.usage: dict | None = None
        self._error: str | None = None  # why the loop stopped early (deadline, upstream)
        # The error's code, public: a non-streamed client gets it with ``error_status``.
        self.error_code = "server_error"
        self.error_status: int | None = None  # the HTTP status a non-streamed client gets then
        self.error_headers: dict[str, str] = {}  # and its headers (an upstream 429's retry-after)

    async def events(self) -> AsyncIterator[dict]:
        """Every event of the response, the terminal one included (``emitter.fail`` on error)."""
        for event in self.emitter.start():
            yield event
        queue: asyncio.Queue = asyncio.Queue()

        async def produce() -> None:
            try:
                async for event in self._body():
                    await queue.put(event)
            finally:
                await queue.put(None)

        # The loop runs under its deadline in its own task; events reach the client as they come.
        task = asyncio.create_task(self._bounded(produce))
        try:
            while True:
                event = await queue.get()
                if event is None:
                    break
                yield event
            await task
        except BaseException:
            task.cancel()
            raise
        if self.emitter.running:  # the task ended by an error: fail() was not yet called
            for event in self.emitter.fail(self._error or "The gateway had an internal error.",
                                           code=self.error_code):
                yield event

    async def _bounded(self, produce) -> None:
        try:
            async with asyncio.timeout(self.builtins.loop_timeout_s):
                await produce()
        except TimeoutError:
            self._error = f"The tool loop did not finish within {self.builtins.loop_timeout_s:g} s."
            self.error_code, self.error_status = "timeout", 504
        except APIError as exc:
            self._error, self.error_code = exc.message, exc.code or "server_error"
            self.error_status, self.error_headers = exc.status, exc.headers

    async def _body(self) -> AsyncIterator[dict]:
        for tool in self.hosted.mcp:
            async for event in self._list_tools(tool):
                yield event
        async for event in self._answered_approvals():
            yield event
        finish_reason = "stop"
        for turn in range(MAX_TURNS):
            offer = turn < MAX_TURNS - 1 and (self.req.max_tool_calls is None
                                              or self.calls_made < self.req.max_tool_calls)
            body = self._chat_body(first=turn == 0, offer_hosted=offer)
            opened = await self.upstream.open_stream(body, truncation=self.req.truncation)
            finish_reason = None
            try:
                async for chunk in opened.chunks():
                    self.usage = _usage_sum(self.usage, chunk.get("usage"))
                    for choice in chunk.get("choices") or []:
                        for event in self.emitter.chat_delta(choice.get("delta") or {}):
                            yield event
                        finish_reason = choice.get("finish_reason") or finish_reason
            finally:
                await opened.aclose()
            if finish_reason is None:
                upstream_failed("protocol")  # -- observability (issue 8): truncated
                raise APIError(502, "Upstream error: the stream ended before its finish_reason.",
                               code="upstream_error")
            calls = self.emitter.pending_calls()
            kinds = [self.hosted.resolve(c.name) for c in calls]
            functions = [c for c, k in zip(calls, kinds) if k[0] == "function"]
            disallowed = self.req.tools.disallowed_calls([c.name for c in functions])
            if disallowed:
                raise APIError(502, translate.disallowed_message(disallowed), code="tool_not_allowed")
            hosted_calls = [(c, k) for c, k in zip(calls, kinds) if k[0] != "function"]
            if not hosted_calls or finish_reason == "length":
                self.emitter.keep_calls(functions)  # a hosted call cut off is not run, nor shown as a function
                break
            for event in self.emitter.close_turn():
                yield event
            self.emitter.keep_calls(functions)
            results: list[tuple[Any, str]] = []
            awaiting = False
            for call, (kind, tool, name) in hosted_calls:
                if self.req.max_tool_calls is not None and self.calls_made >= self.req.max_tool_calls:
                    results.append((call, f"Not run: max_tool_calls ({self.req.max_tool_calls}) reached."))
                    continue
                if kind == "mcp" and tool.needs_approval(name):
                    for event in self._approval_request(tool, name, call):
                        yield event
                    awaiting = True
                    continue
                self.calls_made += 1
                outcome: list[str] = []
                async for event in self._run(kind, tool, name, call, outcome):
                    yield event
                results.append((call, outcome[0]))
            if results:
                self._feed_back(results)
            if awaiting or functions:
                break
        for event in self.emitter.finish(finish_reason, self.usage, empty_message=not self.emitter.output):
            yield event

    # -- the upstream's view ------------------------------------------------------------------

    def _chat_body(self, *, first: bool, offer_hosted: bool) -> dict:
        body = translate.chat_request(self.req, self.messages, stream=True)
        extra = self.hosted.functions() if offer_hosted else []
        if extra:
            body["tools"] = list(body.get("tools") or []) + extra
            body.setdefault("parallel_tool_calls", self.req.parallel_tool_calls)
        choice = self.req.tools.tool_choice
        forced = self.hosted.forced_choice(choice) if first and offer_hosted else None
        if forced is not None:
            body["tool_choice"] = forced
        elif not first and body.get("tools"):
            body["tool_choice"] = "auto"  # a forced or required tool is forced once, not forever
        if not body.get("tools"):
            body.pop("tool_choice", None)
            body.pop("parallel_tool_calls", None)
        return body

    def _feed_back(self, results: list[tuple[Any, str]]) -> None:
        calls = [{"id": call.call_id or new_id("call"), "type": "function",
                  "function": {"name": call.name, "arguments": call.arguments}} for call, _ in results]
        self.messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for (call, text), chat_call in zip(results, calls):
            self.messages.append({"role": "tool", "tool_call_id": chat_call["id"], "content": text})

    # -- MCP ----------------------------------------------------------------------------------

    async def _list_tools(self, tool: McpTool) -> AsyncIterator[dict]:
        known = listed_in_context(self.context, tool.label)
        if known is not None:  # OpenAI: a server listed earlier in the conversation is not relisted
            self.hosted.listed[tool.label] = [t for t in known if tool.allowed is None or t["name"] in tool.allowed]
            return
        item = {"id": new_id("mcpl"), "type": "mcp_list_tools", "server_label": tool.label, "tools": []}
        for event in self.emitter.open_item(item):
            yield event
        yield self.emitter.item_event("response.mcp_list_tools.in_progress")
        try:
            tools = await self.builtins.mcp.list_tools(tool.server.url, tool.server.headers)
        except McpError as exc:
            item["error"] = str(exc)
            self.hosted.listed[tool.label] = []
            yield self.emitter.item_event("response.mcp_list_tools.failed")
        else:
            item["tools"] = [t for t in tools if tool.allowed is None or t["name"] in tool.allowed]
            self.hosted.listed[tool.label] = item["tools"]
            yield self.emitter.item_event("response.mcp_list_tools.completed")
        for event in self.emitter.close_item(item):
            yield event

    def _approval_request(self, tool: McpTool, name: str, call) -> list[dict]:
        item = {"id": new_id("mcpr"), "type": "mcp_approval_request", "arguments": call.arguments,
                "name": name, "server_label": tool.label}
        return self.emitter.open_item(item) + self.emitter.close_item(item)

    async def _answered_approvals(self) -> AsyncIterator[dict]:
        requests = approval_requests(self.context)
        for answer in (i for i in self.req.input_items if i["type"] == "mcp_approval_response"):
            request = requests[answer["approval_request_id"]]
            tool = next((t for t in self.hosted.mcp if t.label == request["server_label"]), None)
            function = mcp_function_name(request["server_label"], request["name"])
            if not answer["approve"] or tool is None:
                text = "The user denied this tool call." if not answer["approve"] else \
                    f"Not run: the MCP server {request['server_label']!r} is not among this request's tools."
            else:
                self.calls_made += 1
                outcome: list[str] = []
                async for event in self._mcp_call(tool, request["name"], request["arguments"], outcome,
                                                  approval_request_id=request["id"]):
                    yield event
                text = outcome[0]
            call_id = new_id("call")
            self.messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": function, "arguments": request["arguments"]}}]})
            self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    async def _mcp_call(self, tool: McpTool, name: str, arguments: str, outcome: list[str], *,
                        approval_request_id: str | None = None, fragments: list[str] | None = None
                        ) -> AsyncIterator[dict]:
        item = {"id": new_id("mcp"), "type": "mcp_call", "status": "in_progress",
                "approval_request_id": approval_request_id, "arguments": "", "error": None, "name": name,
                "output": None, "server_label": tool.label}
        watch = tool_call(item)  # -- observability (issue 8): a span, and the count when closed
        for event in self.emitter.open_item(item):
            yield event
        yield self.emitter.item_event("response.mcp_call.in_progress")
        for fragment in fragments or ([arguments] if arguments else []):
            yield self.emitter.item_event("response.mcp_call_arguments.delta", delta=fragment)
        item["arguments"] = arguments
        yield self.emitter.item_event("response.mcp_call_arguments.done", arguments=arguments)
        try:
            parsed = json.loads(arguments or "{}")
            if not isinstance(parsed, dict):
                raise ValueError("not an object")
        except ValueError:
            item["error"] = {"type": "mcp_protocol_error", "code": -32602,
                             "message": "The model's arguments are not a JSON object."}
        else:
            try:
                result = await self.builtins.mcp.call_tool(tool.server.url, name, parsed, tool.server.headers)
            except McpError as exc:
                item["error"] = {"type": "http_error", "code": exc.status, "message": str(exc)}
            else:
                if result.is_error:
                    item["error"] = {"type": "mcp_tool_execution_error",
                                     "content": [{"type": "text", "text": result.text}]}
                else:
                    item["output"] = result.text
        if item["error"] is None:
            item["status"] = "completed"
            yield self.emitter.item_event("response.mcp_call.completed")
            outcome.append(item["output"])
        else:
            item["status"] = "failed"
            yield self.emitter.item_event("response.mcp_call.failed")
            error = item["error"]
            message = error.get("message") or (error.get("content") or [{}])[0].get("text", "")
            outcome.append(f"Error: {message}")
        watch.closed(item)
        for event in self.emitter.close_item(item):
            yield event

    # -- code interpreter and web search ------------------------------------------------------

    async def _run(self, kind: str, tool: McpTool | None, name: str | None, call,
                   outcome: list[str]) -> AsyncIterator[dict]:
        if kind == "mcp":  # the model's own argument fragments become the argument deltas
            runner = self._mcp_call(tool, name, call.arguments, outcome, fragments=call.fragments)
        elif kind == "code_interpreter":
            runner = self._code(call.arguments, outcome)
        else:
            runner = self._search(call.arguments, outcome)
        async for event in runner:
            yield event

    async def _code(self, arguments: str, outcome: list[str]) -> AsyncIterator[dict]:
        code = _argument(arguments, "code")
        item = {"id": new_id("ci"), "type": "code_interpreter_call", "status": "in_progress", "code": "",
                "container_id": self.container_id, "outputs": []}
        watch = tool_call(item)  # -- observability (issue 8)
        for event in self.emitter.open_item(item):
            yield event
        yield self.emitter.item_event("response.code_interpreter_call.in_progress")
        for start in range(0, len(code), CODE_DELTA_CHARS):
            yield self.emitter.item_event("response.code_interpreter_call_code.delta",
                                          delta=code[start:start + CODE_DELTA_CHARS])
        item["code"] = code
        yield self.emitter.item_event("response.code_interpreter_call_code.done", code=code)
        yield self.emitter.item_event("response.code_interpreter_call.interpreting")
        try:
            result = await self.builtins.sandbox.run(code)
        except SandboxError as exc:
            logs, failed = f"The sandbox could not run the code: {exc}", True
        else:
            logs = result.logs
            if result.timed_out:
                logs += "\n[killed: the code ran past its time limit]"
            failed = False
        item["status"] = "failed" if failed else "completed"
        item["outputs"] = [{"type": "logs", "logs": logs}] if "code_interpreter_call.outputs" in self.req.include \
            else None
        yield self.emitter.item_event("response.code_interpreter_call.completed")
        watch.closed(item)
        for event in self.emitter.close_item(item):
            yield event
        outcome.append(logs or "(no output)")

    async def _search(self, arguments: str, outcome: list[str]) -> AsyncIterator[dict]:
        query = _argument(arguments, "query")
        profile = self.builtins.web_search
        # The action is known before the search runs; the SDK's type requires it on every item
        # (OpenAI's wire omits it on output_item.added, which the openai profile tolerates).
        item = {"id": new_id("ws"), "type": "web_search_call", "status": "in_progress",
                "action": {"type": "search", "query": query}}
        watch = tool_call(item)  # -- observability (issue 8)
        for event in self.emitter.open_item(item):
            yield event
        yield self.emitter.item_event("response.web_search_call.in_progress")
        yield self.emitter.item_event("response.web_search_call.searching")
        server = self.builtins.config.servers[profile.server]
        results: list[dict] = []
        try:
            answer = await self.builtins.mcp.call_tool(server.url, profile.tool,
                                                       {"query": query, "max_results": SEARCH_RESULTS},
                                                       server.headers)
            if answer.is_error:
                raise McpError(answer.text)
            parsed = json.loads(answer.text)
            results = [r for r in parsed if isinstance(r, dict) and isinstance(r.get("url"), str)] \
                if isinstance(parsed, list) else []
            domains = allowed_domains(self.req.tools.tools)
            if domains:  # the tool's filters.allowed_domains: other results are neither shown nor sourced
                results = [r for r in results if within_domains(r["url"], domains)]
            failed = None
        except (McpError, ValueError) as exc:
            failed = str(exc)
        action: dict = {"type": "search", "query": query}
        if "web_search_call.action.sources" in self.req.include:
            action["sources"] = [{"type": "url", "url": r["url"]} for r in results]
        item.update(status="failed" if failed else "completed", action=action)
        yield self.emitter.item_event("response.web_search_call.completed")
        watch.closed(item)
        for event in self.emitter.close_item(item):
            yield event
        if failed:
            outcome.append(f"Error: the search failed: {failed}")
        else:
            outcome.append(json.dumps(results[:SEARCH_RESULTS], ensure_ascii=False))


def allowed_domains(tools: tuple[dict, ...]) -> tuple[str, ...]:
    """The web_search tool's ``filters.allowed_domains`` (lower case), or () for any domain."""
    for tool in tools:
        if tool["type"] in WEB_SEARCH_TYPES and isinstance(tool.get("filters"), dict):
            return tuple(d.lower().strip(".") for d in tool["filters"].get("allowed_domains") or ())
    return ()


def within_domains(url: str, domains: tuple[str, ...]) -> bool:
    """Whether ``url``'s host is one of ``domains`` or a subdomain of one (OpenAI: "Subdomains of
    the provided domains are allowed as well")."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


def _argument(arguments: str, key: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    value = parsed.get(key) if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else ""

