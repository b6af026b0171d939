"""The gateway's core: one ``Gateway`` per app, whatever transport carries its requests.

``Gateway`` holds what every request shares (the config, the store and its history cache, the
background runner, the upstreams, the code sandbox and the built-in tools) and answers in
Python values: dicts and ``APIError``. app.py (HTTP: bodies, routes, SSE framing, error
envelopes) and websocket.py (one ``response.create`` per text frame) are transports over it;
neither imports the other, and neither decides anything this module decides.

A create request is checked and resolved by ``prepare`` into a ``Turn``; the turn's ``Answer``
is chosen there, once, by where it goes:

- ``NativeAnswer``: the route's upstream speaks ``/v1/responses`` itself (native.py);
- ``ToolLoopAnswer``: the request has built-in tools the gateway runs (builtin/loop.py);
- ``ChatAnswer``: any chat-completions upstream (translate.py + emitter.py).

Each answer is written once and can answer both ways: ``respond`` (non-streamed: the final
Response object) and ``open_events`` (streamed: the events as dicts, in batches, and what closes the
upstream request). A stored stream is in the store from its ``response.created`` on, its output
as it grows, final before its terminal event is sent (response_keeper.py); it ends the way every
stream must whatever happens (``ended``).

``previous_response_id`` continues a stored conversation: the upstream sees this request's
instructions (only), then the previous response's whole context, its output, and this input.
An unknown, deleted or never-stored (``store: false``) id is 400 ``previous_response_not_found``.
An ``item_reference`` input item is replaced by the stored item it names before anything else
reads the input (item_reference.py); one that names nothing of the tenant's is 404.

Tenants (auth.py): a stored response belongs to the key that made it. Another key's GET,
input_items, DELETE and cancel get the same 404 as an unknown id; its ``previous_response_id``
gets the same 400 ``previous_response_not_found`` as an unknown id (what OpenAI answers for an
unknown one, and what the conformance suite checks): a foreign id is indistinguishable from one
that never existed, by status, code and message.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Protocol

from reference_gateway import (
    compaction,
    encrypted_reasoning,
    input_tokens,
    item_reference,
    native,
    observe,
    replay,
    translate,
)
from reference_gateway.background import BackgroundRunner
from reference_gateway.builtin.hosted import Hosted, hosted_tools
from reference_gateway.builtin.loop import Builtins, ToolLoop, check_approvals
from reference_gateway.builtin.mcp_client import McpClient
from reference_gateway.config import DEFAULT_UPSTREAM, GatewayConfig
from reference_gateway.emitter import Emitter
from reference_gateway.errors import APIError
from reference_gateway.history import HistoryCache
from reference_gateway.pagination import item_page
from reference_gateway.params import CreateRequest, parse_compact, parse_create
from reference_gateway.response_keeper import Keeper
from reference_gateway.sandbox.contract import CodeSandbox, SandboxError
from reference_gateway.sandbox.modes import open_sandbox
from reference_gateway.sealing import Sealer
from reference_gateway.store import open_store
from reference_gateway.store_contract import PENDING, StoredResponse
from reference_gateway.store_writer import StoreWriter
from reference_gateway.upstream import Upstream

log = logging.getLogger("reference_gateway")

# The events after which the Response object is final (stored before they are sent).
FINAL_EVENTS = frozenset({"error", "response.completed", "response.incomplete", "response.failed"})

Close = Callable[[], Awaitable[None]]


class DirectSend(Protocol):
    """A transport's way to send a batch of events from inside the loop's callback that brought
    their upstream read, past its own send path (app.py: the SSE body written straight to the
    connection, direct_body.py). ``ChatAnswer`` relays a token through it with no task switch
    and no async generator in between (issue 20), once the stream's first delta went the
    ordinary way: a transport's first-token timing (observe.py) sees that one."""

    def ready(self) -> bool:
        """A batch sent now reaches the client in order (else it goes the ordinary way)."""

    def send(self, events: list[dict]) -> None:
        """Send ``events`` (only when ``ready``)."""


class Answer(Protocol):
    """How one turn is answered: the same path streamed and not."""

    async def respond(self, turn: Turn) -> dict:
        """The final Response object (stored when ``store``), or ``APIError``."""

    async def open_events(self, turn: Turn, direct: DirectSend | None = None
                          ) -> tuple[AsyncIterator[list[dict]], Close]:
        """The events, and what closes the upstream request (see ``Gateway.open_events``)."""


@dataclasses.dataclass
class Turn:
    """One create request, validated and resolved (``prepare``), before any upstream call."""

    req: CreateRequest
    owner: str
    upstream: Upstream
    api_kind: str
    context: list[dict]  # the input after previous_response_id expansion
    hosted: Hosted  # the built-in tools of the request
    messages: list[dict]  # the chat upstream's view of ``context``
    response: dict  # the Response object, in_progress (or queued)
    keep: Keeper  # stores the response as it goes (when ``store``), and caches it final
    answer: Answer  # chosen once, by ``prepare``
    # Seals a finished reasoning item (include reasoning.encrypted_content), else None
    seal: Callable[[dict], dict] | None = None


def open_code_sandbox(config: GatewayConfig) -> CodeSandbox | None:
    """The code interpreter's sandbox for ``config.code_interpreter``, or None (none runs).
    "auto" spawns one when the Pyodide sandbox is installed; "spawn" and "external" that cannot
    start raise ``SandboxError`` (one line: what to install or which URL failed)."""
    if config.code_interpreter == "disabled":
        return None
    if config.code_interpreter == "auto":
        try:
            return open_sandbox("spawn")
        except SandboxError:
            return None
    return open_sandbox(config.code_interpreter, url=config.code_interpreter_url)


def not_found(response_id: str) -> APIError:
    return APIError(404, f"No response found with id '{response_id}'.", code="not_found")


def previous_not_found(response_id: str) -> APIError:
    return APIError(400, f"Previous response with id '{response_id}' not found.",
                    param="previous_response_id", code="previous_response_not_found")


async def nothing_to_close() -> None:
    """The close of a stream with no upstream request of its own (a tool loop closes its own)."""


async def ended(body: AsyncIterator[list[dict]], emitter: Emitter | native.Relay,
                keep: Keeper) -> AsyncIterator[list[dict]]:
    """``body`` (batches of events: ``one_by_one`` makes them of a stream of events), ending the
    way every stream must, whatever happens: on a gateway bug the
    client still gets ``error`` then ``response.failed`` ("internal error"); when the client
    goes away first (the task is cancelled or the generator closed: nothing can be sent) the
    response is stored failed "The client disconnected ...". Never ``in_progress``.
    Stored as it goes (response_keeper.py): ``response.created`` is sent once its in_progress
    row is committed, and each later event grows the row's live output."""
    try:
        async for batch in body:
            for event in batch:
                if event["type"] == "response.created":
                    await keep.opened(event["response"], event)
                else:
                    keep.grew(event)
            yield batch
    except Exception:
        if not emitter.running:
            raise
        log.exception("stream of %s failed", emitter.response["id"])
        events = emitter.fail("The gateway had an internal error.")
        await keep(emitter.response, events)
        yield events
    except BaseException:  # CancelledError or GeneratorExit: the client went away
        if emitter.running:
            keep.soon(emitter.response, emitter.fail("The client disconnected before the response finished."))
        raise
    finally:
        await body.aclose()


async def one_by_one(events: AsyncIterator[dict]) -> AsyncIterator[list[dict]]:
    """A stream of events as batches of one (what ``ended`` and the transports take)."""
    try:
        async for event in events:
            yield [event]
    finally:
        await events.aclose()


async def kept_when_final(events: AsyncIterator[dict], source: Emitter | native.Relay,
                          keep: Keeper) -> AsyncIterator[dict]:
    """``events`` of a stream whose producer (a relay, a tool loop) makes its terminal events
    itself: ``source.response`` is stored once, before the first ``FINAL_EVENTS`` one is sent."""
    kept = False
    async for event in events:
        if not kept and event["type"] in FINAL_EVENTS:
            await keep(source.response, [event])
            kept = True
        yield event


class NativeAnswer:
    """In front of a native /v1/responses (native.py): the gateway keeps store, chains, GET."""

    @staticmethod
    def refuse(turn: Turn) -> None:
        for present, param, what in ((bool(turn.hosted), "tools", "built-in tools with a native Responses upstream"),
                                     (turn.req.background, "background",
                                      "background responses with a native Responses upstream"),
                                     (encrypted_reasoning.INCLUDE in turn.req.include, "include",
                                      "include 'reasoning.encrypted_content' with a native Responses upstream")):
            if present:
                raise APIError(400, f"This gateway does not support {what}.", param=param,
                               code="unsupported_parameter")

    async def respond(self, turn: Turn) -> dict:
        self.refuse(turn)
        native.finish(turn.response,
                      await turn.upstream.respond(native.native_request(turn.req, turn.context, stream=False)))
        await turn.keep(turn.response)
        return turn.response

    async def open_events(self, turn: Turn, direct: DirectSend | None = None
                          ) -> tuple[AsyncIterator[list[dict]], Close]:
        self.refuse(turn)
        opened = await turn.upstream.open_stream(native.native_request(turn.req, turn.context, stream=True),
                                                 path="/responses")
        relay = native.Relay(turn.response)
        return ended(one_by_one(self._relayed(relay, opened, turn.keep)), relay, turn.keep), opened.aclose

    @staticmethod
    async def _relayed(relay: native.Relay, opened, keep: Keeper) -> AsyncIterator[dict]:
        try:
            async for event in kept_when_final(relay.events(opened), relay, keep):
                yield event
        finally:
            await opened.aclose()


class ToolLoopAnswer:
    """A request with built-in tools (builtin/loop.py): the gateway runs them between turns."""

    def __init__(self, builtins: Builtins) -> None:
        self.builtins = builtins

    def loop(self, turn: Turn) -> ToolLoop:
        emitter = Emitter(turn.response, seal=turn.seal, split=turn.req.tools.split,
                          summary=turn.req.reasoning_summary)
        return ToolLoop(turn.req, emitter, turn.messages, turn.context, turn.hosted, self.builtins, turn.upstream)

    async def respond(self, turn: Turn) -> dict:
        if turn.req.background:
            raise APIError(400, "Background responses with built-in tools are not supported by this gateway.",
                           param="background", code="unsupported_parameter")
        loop = self.loop(turn)
        async for _ in loop.events():
            pass
        await turn.keep(loop.emitter.response)
        if loop.error_status is not None:  # the upstream failed, or the loop's deadline passed
            raise APIError(loop.error_status, loop.emitter.response["error"]["message"],
                           type="server_error", code=loop.error_code, headers=loop.error_headers)
        return loop.emitter.response

    async def open_events(self, turn: Turn, direct: DirectSend | None = None
                          ) -> tuple[AsyncIterator[list[dict]], Close]:
        """Stored once, when final: before its ``error`` or terminal event is sent (and
        through ``ended``)."""
        if turn.req.background:
            raise APIError(400, "Background responses with built-in tools are not supported by this gateway.",
                           param="background", code="unsupported_parameter")
        loop = self.loop(turn)
        return ended(one_by_one(kept_when_final(loop.events(), loop.emitter, turn.keep)), loop.emitter,
                     turn.keep), nothing_to_close


class ChatAnswer:
    """Any chat-completions upstream: the request translated (translate.py), the answer
    streamed through the gateway's own event state machine (emitter.py)."""

    def __init__(self, background: BackgroundRunner) -> None:
        self.background = background

    async def respond(self, turn: Turn) -> dict:
        req, response = turn.req, turn.response
        if req.background:
            await turn.keep.opened(response)  # queued, before the client hears of it
            self.background.start(req, response, translate.chat_request(req, turn.messages, stream=False),
                                  turn.upstream, owner=turn.owner, seal=turn.seal)
            return response
        completion = await turn.upstream.complete(translate.chat_request(req, turn.messages, stream=False),
                                                  truncation=req.truncation)
        translate.from_chat_completion(req, response, completion, seal=turn.seal)
        await turn.keep(response)
        return response

    async def open_events(self, turn: Turn, direct: DirectSend | None = None
                          ) -> tuple[AsyncIterator[list[dict]], Close]:
        """A background stream (``background`` with ``stream``) runs as the background runner's
        task, whoever listens: the client reads its feed (response_feed.py) and may go away
        and come back (``GET ?stream=true&starting_after=N``, replay.py) while it runs on.
        ``direct``: the client's transport, for the tokens (not for a background stream's feed)."""
        opened = await turn.upstream.open_stream(translate.chat_request(turn.req, turn.messages, stream=True),
                                                 truncation=turn.req.truncation)
        emitter = Emitter(turn.response, seal=turn.seal, split=turn.req.tools.split,
                          summary=turn.req.reasoning_summary)
        events = ended(self._events(turn.req, emitter, opened, turn.keep, None if turn.req.background else direct),
                       emitter, turn.keep)
        if turn.req.background:
            feed = self.background.start_stream(turn.response["id"], events, opened.aclose, owner=turn.owner)
            return one_by_one(feed.follow()), nothing_to_close
        return events, opened.aclose

    @staticmethod
    async def _events(req: CreateRequest, emitter: Emitter, opened, keep: Keeper,
                      direct: DirectSend | None = None) -> AsyncIterator[list[dict]]:
        """The event stream, in batches (the events made of one upstream read together). Every
        way it can end stores (when ``store``) a terminal response:
        completed/incomplete; failed with the upstream's error (``error`` then
        ``response.failed`` are sent); and, through ``ended``, a gateway bug or a client gone.
        The upstream request is closed in ``finally``.

        ``direct``: once a delta has been sent, a read of plain chunks is relayed inline
        (upstream.py ``reads``): its events made, stored as ``ended`` stores them, and sent
        through ``direct``, inside the upstream's callback; the rest (the start, a read the
        reader keeps, the end) comes this way."""
        try:
            yield emitter.start()
            finish_reason, chat_usage = None, None
            relayed = False  # a delta went the ordinary way (DirectSend's docstring)

            def absorb(read: list[dict], events: list[dict]) -> None:
                nonlocal finish_reason, chat_usage
                for chunk in read:
                    chat_usage = chunk.get("usage") or chat_usage
                    for choice in chunk.get("choices") or []:
                        events += emitter.chat_delta(choice.get("delta") or {})
                        finish_reason = choice.get("finish_reason") or finish_reason

            def inline(read: list[dict]) -> bool:
                if not relayed or not direct.ready():
                    return False
                events: list[dict] = []
                try:
                    absorb(read, events)
                finally:  # made before a gateway bug: sent, as below (the reader raises the bug)
                    for event in events:
                        keep.grew(event)
                    if events:
                        direct.send(events)
                return True

            try:
                async for read in opened.reads(inline if direct is not None else None):
                    events: list[dict] = []
                    try:
                        absorb(read, events)
                    except Exception:
                        if events:  # made before a gateway bug: sent, as the emitter counts them sent
                            yield events
                        raise
                    if events:
                        yield events
                        if not relayed:
                            relayed = any(event["type"].endswith(".delta") for event in events)
            except APIError as exc:
                events = emitter.fail(exc.message, code=exc.code or "server_error")
            else:
                disallowed = req.tools.disallowed_calls(emitter.called_names())
                if disallowed:
                    events = emitter.fail(translate.disallowed_message(disallowed), code="tool_not_allowed")
                elif finish_reason is None:  # the body ended (or sent [DONE]) mid-answer: truncated
                    observe.upstream_failed("protocol")
                    events = emitter.fail("Upstream error: the stream ended before its finish_reason.",
                                          code="upstream_error")
                else:
                    events = emitter.finish(finish_reason, chat_usage)
            await keep(emitter.response, events)  # stored before the terminal event: a GET right after sees it
            yield events
        finally:
            await opened.aclose()


class Gateway:
    """Everything a request of any transport needs. ``start`` on the server's event loop
    (the upstream clients belong to it), ``aclose`` at shutdown."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.store = open_store(config.store_location)
        self.history = HistoryCache(self.store, max_entries=config.history_cache_entries,
                                    ttl_s=config.history_cache_ttl_s)
        self.writer = StoreWriter(self.store)  # response writes, off the event loop (store_writer.py)
        self.background = BackgroundRunner(self.store, self.writer, orphan_after_s=config.orphan_after_s)
        self.upstreams: dict[str, Upstream] = {}  # created on the server's event loop, in start (routing.py)
        self.sealer = Sealer(config.seal_key)  # compaction and reasoning blobs (sealing.py)
        self.sandbox = open_code_sandbox(config)
        self.builtins = Builtins(
            config=config.builtin, mcp=McpClient(), sandbox=self.sandbox,
            web_search=config.builtin.web_search_profiles.get(config.web_search_profile or ""),
            loop_timeout_s=config.tool_loop_timeout_s)
        self.native = NativeAnswer()
        self.tool_loop = ToolLoopAnswer(self.builtins)
        self.chat = ChatAnswer(self.background)

    # -- lifecycle

    async def start(self) -> None:
        for spec in self.config.upstream_specs:
            self.upstreams[spec.name] = Upstream(dataclasses.replace(
                self.config, upstream_url=spec.url, upstream_api_key=spec.api_key, routes=None))
        self.background.watch()  # this process's lease in the store, and the orphan sweep

    async def aclose(self) -> None:
        await self.background.shutdown()
        await self.writer.aclose()
        for one in self.upstreams.values():
            await one.aclose()
        if self.sandbox is not None:
            self.sandbox.close()
        self.store.close()

    # -- create

    def referenced(self, req: CreateRequest, owner: str) -> CreateRequest:
        """``req`` with its ``item_reference`` items replaced by the stored items they name
        (item_reference.py: ``owner``'s stored responses only; an unknown id is 404)."""
        items = self.resolved(list(req.input_items), owner)
        return req if items == list(req.input_items) else dataclasses.replace(req, input_items=tuple(items))

    def resolved(self, items: list[dict], owner: str) -> list[dict]:
        return item_reference.resolve(items, lambda item_id: self.store.find_item(item_id, owner))

    def opened(self, items: list[dict], owner: str) -> list[dict]:
        """``items`` (a request's input) with the sealed blobs this gateway made for ``owner``
        opened: reasoning items given back their content (encrypted_reasoning.py), compaction
        items replaced by what they packed (compaction.py). A blob that does not open: 400
        ``invalid_encrypted_content``."""
        return compaction.expand(encrypted_reasoning.expand(items, self.sealer, owner), self.sealer, owner)

    def conversation(self, req: CreateRequest, owner: str,
                     cached: Callable[[str], StoredResponse | None] | None = None) -> list[dict]:
        """The stored chain (if any, and ``owner``'s) followed by this request's input items,
        their sealed blobs opened (stored chains are kept opened).
        ``cached``: a WebSocket's own cache, asked before the store (websocket.py, rule 8)."""
        items = self.opened(list(req.input_items), owner)
        if req.previous_response_id is None:
            return items
        previous = cached(req.previous_response_id) if cached is not None else None
        if previous is None:
            previous = self.history.record(req.previous_response_id, owner)
        if previous is None:
            raise previous_not_found(req.previous_response_id)
        if previous.body["status"] in PENDING:
            raise APIError(
                400,
                f"Previous response with id '{req.previous_response_id}' is still {previous.body['status']}.",
                param="previous_response_id",
                code="previous_response_in_progress",
            )
        return previous.context + previous.body["output"] + items

    def route(self, model: str) -> tuple[Upstream, str]:
        """The upstream serving ``model`` (routing.py) and its api kind; 404 ``model_not_found``
        when none does."""
        if self.config.routes is None:
            return self.upstreams[DEFAULT_UPSTREAM], self.config.upstream_api_kind
        spec = self.config.routes.upstream_for(model)
        if spec is None:
            raise APIError(404, f"The model '{model}' does not exist or you do not have access to it.",
                           param="model", code="model_not_found")
        return self.upstreams[spec.name], spec.api_kind

    def prepare(self, body: object, owner: str, *, cached: Callable[[str], StoredResponse | None] | None = None,
                stream: bool = False) -> Turn:
        """Every check and lookup of a create request before any upstream call (``APIError``
        for what is refused), for HTTP and WebSocket alike. ``stream``: the response is
        streamed whatever the body says (a WebSocket turn always is)."""
        req = self.referenced(parse_create(body), owner)
        if stream:
            req = dataclasses.replace(req, stream=True)
        upstream, api_kind = self.route(req.model)
        context = self.conversation(req, owner, cached)
        hosted = hosted_tools(req.tools.tools, [t["name"] for t in req.tools.functions], config=self.builtins.config,
                              code_interpreter=self.builtins.sandbox is not None,
                              web_search_profile=self.config.web_search_profile,
                              request_headers=dict(req.tools.mcp_headers), tool_choice=req.tools.tool_choice)
        approvals = [n for n, i in enumerate(req.input_items) if i["type"] == "mcp_approval_response"]
        if approvals and not hosted.mcp:
            raise APIError(400, "An mcp_approval_response needs its mcp tool in 'tools' again.",
                           param=f"input[{approvals[0]}]", code="invalid_value")
        check_approvals(req, context)
        messages = translate.chat_messages(req.instructions, context)
        response = translate.new_response(req)
        observe.note_create(req, response)
        answer: Answer = self.native if api_kind == "responses" else self.tool_loop if hosted else self.chat
        seal = None
        if encrypted_reasoning.INCLUDE in req.include:
            seal = functools.partial(encrypted_reasoning.seal, sealer=self.sealer, owner=owner)
        return Turn(req, owner, upstream, api_kind, context, hosted, messages, response,
                    self._keeper(req, owner, context), answer, seal)

    def _keeper(self, req: CreateRequest, owner: str, context: list[dict]) -> Keeper:
        return Keeper(self.writer, self.history, owner=owner, input_items=list(req.input_items), context=context)

    async def respond(self, turn: Turn) -> dict:
        """A non-streamed (or background) response: the Response object, as the client gets it."""
        return await turn.answer.respond(turn)

    async def open_events(self, turn: Turn, direct: DirectSend | None = None
                          ) -> tuple[AsyncIterator[list[dict]], Close]:
        """A streamed response's events as dicts, in batches (the events that are ready together:
        one per upstream read of a chat upstream, a transport sends a batch in one write), and
        what closes its upstream request (call it
        whatever happens, also when the events never started). The upstream stream is opened
        first: a refusal or an unreachable upstream is still an ``APIError`` (a proper status
        code over HTTP), since nothing has been committed to the client yet."""
        return await turn.answer.open_events(turn, direct)

    # -- the other routes

    def compact(self, body: object, owner: str) -> dict:
        """``POST /v1/responses/compact`` (compaction.py): the conversation as one item."""
        body, items = parse_compact(body)
        items = self.opened(self.resolved(items, owner), owner)
        if body.get("previous_response_id") is not None:
            previous = self.history.record(body["previous_response_id"], owner)
            if previous is None:
                raise previous_not_found(body["previous_response_id"])
            items = previous.context + previous.body["output"] + items
        if not items:
            raise APIError(400, "Nothing to compact: give 'input' or 'previous_response_id'.", param="input",
                           code="missing_required_parameter")
        return compaction.compacted(items, self.sealer, owner)

    async def count_input_tokens(self, body: object, owner: str) -> tuple[dict, str]:
        """``POST /v1/responses/input_tokens`` (input_tokens.py): the count, and who counted
        (``upstream`` or ``estimate``)."""
        model_given = isinstance(body, dict) and body.get("model") is not None
        req = input_tokens.parse_count(body, default_model=None if self.config.routes is not None else "default")
        req = self.referenced(req, owner)
        upstream, api_kind = self.route(req.model)
        messages = translate.chat_messages(req.instructions, self.conversation(req, owner))
        tools = req.tools.chat_fields(req.parallel_tool_calls).get("tools")
        if api_kind == "chat_completions":
            ask = {"messages": messages, "add_generation_prompt": True}
            if model_given:
                ask["model"] = req.model
            if tools:
                ask["tools"] = tools
            count = await upstream.tokenize(ask)
            if count is not None:
                return input_tokens.counted(count), "upstream"
        return input_tokens.counted(input_tokens.estimate_tokens(messages, tools)), "estimate"

    def retrieve(self, response_id: str, owner: str) -> dict:
        response = self.store.get(response_id, owner)
        if response is None:
            raise not_found(response_id)
        return response

    def replay(self, response_id: str, owner: str, starting_after: int) -> AsyncIterator[list[dict]]:
        """``GET /v1/responses/{id}?stream=true`` (replay.py): the events after
        ``starting_after``, from the live feed of a background stream running here, else from
        the store. Refusals (404, 400 ``stream_not_available``) are raised here, before any event."""
        body = self.store.get(response_id, owner)
        if body is None:
            raise not_found(response_id)
        feed = self.background.feed(response_id, owner)
        if feed is not None:
            return one_by_one(replay.from_feed(feed, starting_after))
        if not self.store.has_events(response_id, owner):
            raise replay.not_streamed(response_id)
        return one_by_one(replay.from_store(self.store, response_id, owner, starting_after))

    def input_items(self, response_id: str, owner: str, query: Mapping[str, str]) -> dict:
        record = self.store.record(response_id, owner)
        if record is None:
            raise not_found(response_id)
        return item_page(record.input_items, query)

    def delete(self, response_id: str, owner: str) -> dict:
        self.history.forget(response_id, owner)
        if not self.store.delete(response_id, owner):
            raise not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    def cancel(self, response_id: str, owner: str) -> dict:
        cancelled = self.background.cancel(response_id, owner)
        if cancelled is None:
            raise not_found(response_id)
        return cancelled

    async def models(self) -> dict:
        config = self.config
        if config.models:
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "reference-gateway"} for m in config.models]
            return {"object": "list", "data": data}
        if config.routes is None:
            return await self.upstreams[DEFAULT_UPSTREAM].models()
        return await self._union_of_models()

    async def _union_of_models(self) -> dict:
        """Every model some route sends to the upstream that lists it, plus the exact route names."""
        data: dict[str, dict] = {}
        for name, one in self.upstreams.items():
            try:
                listed = (await one.models()).get("data") or []
            except APIError as exc:
                log.warning("upstream %s left out of /v1/models: %s", name, exc.message)
                continue
            for model in listed:
                if isinstance(model, dict) and isinstance(model.get("id"), str) \
                        and self.config.routes.routes_to(model["id"], name):
                    data.setdefault(model["id"], model)
        for rule in self.config.routes.routes:
            if rule.model is not None:
                data.setdefault(rule.model, {"id": rule.model, "object": "model", "created": 0,
                                             "owned_by": rule.upstream})
        return {"object": "list", "data": list(data.values())}
