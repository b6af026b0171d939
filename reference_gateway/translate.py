"""Responses request -> chat-completions request; chat result -> Response object.

The streamed and the non-streamed paths build their Response objects with the same functions
here, so the two are equivalent by construction. Output items come in one order on both paths:
reasoning, then the assistant message, then function calls (in the upstream's tool-call index
order). Reasoning items are always ``completed``. When the token budget ran out (``length``,
``content_filter``) only the item the cut interrupted is ``incomplete``: the last one of the
output; the items before it were finished before the upstream moved on (a message followed by
calls, every call but the last), so they are ``completed`` (the checker's
``spec.item.incomplete_last``, SHOULD).

URLs in input: the gateway never fetches a URL a client sends. An ``input_image``'s
``image_url`` (a URL or a data URL) is passed to the upstream untouched as a chat ``image_url``
part; an ``input_file`` travels as its ``file_data``, and ``file_url`` is refused with 400
before anything is sent (content_parts.py). The only URL the gateway calls is its configured
upstream; whether that upstream fetches an image URL is its own policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from reference_gateway.builtin.hosted import CODE_FUNCTION, SEARCH_FUNCTION, mcp_function_name
from reference_gateway.content_parts import chat_content
from reference_gateway.errors import invalid
from reference_gateway.ids import new_id
from reference_gateway.params import CreateRequest
from reference_gateway.tools import namespaced_name

# chat-completions finish_reason -> (response status, incomplete_details.reason).
# ``length`` means the token budget ran out: OpenAI reports it as incomplete/max_output_tokens.
# ``tool_calls`` (and the legacy ``function_call``) is a normal end of turn: completed.
FINISH_REASONS = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "function_call": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def chat_messages(instructions: str | None, context: list[dict]) -> list[dict]:
    """The conversation (stored chain + this input, as items) -> chat messages.

    Only this request's ``instructions`` become the system message; earlier turns' instructions
    are not carried over (OpenAI: "the instructions from a previous response will not be carried
    over"). Consecutive function calls (and an assistant text right before them) form one
    assistant message with ``tool_calls``. A ``function_call_output`` must answer a function call
    earlier in the conversation.
    """
    messages: list[dict] = []
    if instructions is not None:
        messages.append({"role": "system", "content": instructions})
    call_ids: set[str] = set()
    for item in context:  # sealed blobs already opened (Gateway.conversation)
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": chat_content(item["content"])})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": namespaced_name(item.get("namespace"), item["name"]),
                                 "arguments": item["arguments"]}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_call_id" not in last:
                last.setdefault("tool_calls", []).append(call)
                if last["content"] == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            call_ids.add(item["call_id"])
        elif kind == "function_call_output":
            if item["call_id"] not in call_ids:
                raise invalid(
                    f"No tool call found for function call output with call_id {item['call_id']!r}.",
                    param="input",
                )
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _content_text(item["output"])})
        elif kind in HOSTED_CALL_ITEMS:
            name, arguments, result = _hosted_call(item)
            call_id = item["id"]
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
        # reasoning items: chat-completions has no input form for them; they are kept in the
        # stored conversation and contribute nothing upstream. mcp_list_tools: the tools are
        # offered as functions again (builtin/hosted.py). mcp_approval_request/_response: the
        # tool loop runs (or not) the approved call and shows it to the model then.
    return messages


# Built-in tool calls of earlier turns, shown to the model as the function calls it made
# (builtin/hosted.py names the functions).
HOSTED_CALL_ITEMS = ("mcp_call", "code_interpreter_call", "web_search_call")


def _hosted_call(item: dict) -> tuple[str, str, str]:
    """``(function name, arguments, result text)`` of a built-in call item."""
    if item["type"] == "mcp_call":
        error = item.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            result = f"Error: {message or json.dumps(error)}"
        else:
            result = str(item.get("output") or "")
        return mcp_function_name(item["server_label"], item["name"]), item["arguments"], result
    if item["type"] == "code_interpreter_call":
        logs = "".join(o.get("logs", "") for o in item.get("outputs") or [] if isinstance(o, dict))
        return CODE_FUNCTION, json.dumps({"code": item.get("code") or ""}), logs or "(outputs not kept)"
    action = item.get("action") or {}
    sources = [s.get("url") for s in action.get("sources") or [] if isinstance(s, dict)]
    return SEARCH_FUNCTION, json.dumps({"query": action.get("query") or ""}), \
        json.dumps({"sources": sources}) if sources else "(results not kept)"


def chat_request(req: CreateRequest, messages: list[dict], *, stream: bool) -> dict:
    body: dict = {"model": req.model, "messages": messages, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.max_output_tokens is not None:
        # Older servers read max_tokens, newer ones max_completion_tokens; send both.
        body["max_tokens"] = req.max_output_tokens
        body["max_completion_tokens"] = req.max_output_tokens
    if req.user is not None:
        body["user"] = req.user
    if req.reasoning_effort is not None:
        body["reasoning_effort"] = req.reasoning_effort
    body.update(req.tools.chat_fields(req.parallel_tool_calls))
    fmt = req.text_format
    if fmt["type"] == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if fmt.get(k) is not None}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    return body


# Roles that ``truncation: auto`` never drops: the instructions.
KEPT_ROLES = ("system", "developer")


def drop_oldest(messages: list[dict], count: int) -> list[dict]:
    """``messages`` without their oldest ``count`` non-system messages (``truncation: auto``),
    keeping at least the last one (this turn's input). The cut never leaves a tool result first:
    it moves on past tool results, or back to the call they answer when they end the list. The
    caller sees that nothing more can go when the list comes back no shorter."""
    others = [i for i, m in enumerate(messages) if m.get("role") not in KEPT_ROLES]
    cut = max(0, min(count, len(others) - 1))

    def is_tool(n: int) -> bool:
        return messages[others[n]].get("role") == "tool"

    while cut < len(others) - 1 and is_tool(cut):
        cut += 1
    while cut > 0 and is_tool(cut):
        cut -= 1
    dropped = set(others[:cut])
    return [m for i, m in enumerate(messages) if i not in dropped]


def new_response(req: CreateRequest) -> dict:
    """The Response object as it stands when work begins: in_progress, no output, no usage."""
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "completed_at": None,
        "status": "queued" if req.background else "in_progress",
        "background": req.background,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "model": req.model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "prompt_cache_key": req.prompt_cache_key,
        "reasoning": {"effort": req.reasoning_effort, "summary": req.reasoning_summary},
        "safety_identifier": req.safety_identifier,
        "service_tier": "default",
        "store": req.store,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        # Not settable here (chat's penalties have no Responses parameter); OpenAI's service
        # echoes both as 0 (shared/fixtures/openai-recorded/openai-compaction.*), and the Open
        # Responses schema requires them.
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "text": {"format": req.text_format, "verbosity": req.text_verbosity},
        "tool_choice": req.tools.tool_choice,
        "tools": [dict(t) for t in req.tools.tools],
        "top_logprobs": 0,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": req.truncation,
        "usage": None,
        "user": req.user,
        "metadata": dict(req.metadata),
    }


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_part(text: str) -> dict:
    return {"type": "reasoning_text", "text": text}


def message_item(item_id: str, *, status: str, content: list[dict]) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def reasoning_item(item_id: str, *, status: str, content: list[dict]) -> dict:
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def function_call_item(item_id: str, *, call_id: str, name: str, arguments: str, status: str,
                       namespace: str | None = None) -> dict:
    """A function_call item; a function of a namespace tool carries its ``namespace`` (as OpenAI
    returns it: the SDK's ResponseFunctionToolCall.namespace), others have no such key."""
    item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}
    if namespace is not None:
        item["namespace"] = namespace
    return item


def usage(chat_usage: dict | None) -> dict | None:
    if not chat_usage:
        return None
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    cached = int((chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": int(chat_usage.get("total_tokens") or prompt + completion),
    }


def status_of(finish_reason: str | None) -> tuple[str, str | None]:
    """Response status and incomplete reason; an unknown or missing reason counts as a stop."""
    return FINISH_REASONS.get(finish_reason or "stop", ("completed", None))


def item_status(finish_reason: str | None) -> str:
    return "completed" if status_of(finish_reason)[0] == "completed" else "incomplete"


def finish(response: dict, *, output: list[dict], finish_reason: str | None, chat_usage: dict | None) -> dict:
    """Fill ``response`` in place with its output items, final status and usage."""
    status, reason = status_of(finish_reason)
    response["output"] = output
    response["status"] = status
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["completed_at"] = int(time.time()) if status == "completed" else None
    response["usage"] = usage(chat_usage)
    return response


def fail(response: dict, message: str, code: str = "server_error") -> dict:
    """The failed response's ``error``: the same ``code`` as the stream's ``error`` event (and
    as the envelope a non-streamed client gets), as OpenAI's service sends them (a recorded
    quota failure: ``insufficient_quota`` in both, shared/fixtures/openai-recorded/
    openai-error.1). The SDK's ``ResponseError.code`` enum does not hold every code OpenAI
    itself sends, so it is not the rule here. ``server_error`` for a failure with no code of
    its own (a gateway bug, a client gone, the orphan sweep)."""
    response["status"] = "failed"
    response["error"] = {"code": code, "message": message}
    return response


def disallowed_message(names: list[str]) -> str:
    return f"The upstream called tools that were not allowed: {', '.join(sorted(set(names)))}."


def reasoning_text(source: dict) -> str:
    """vLLM sends ``reasoning_content`` (older) or ``reasoning`` (newer) on messages and deltas."""
    value = source.get("reasoning_content")
    if value is None:
        value = source.get("reasoning")
    return value if isinstance(value, str) else ""


def from_chat_completion(req: CreateRequest, response: dict, completion: dict,
                         seal: Callable[[dict], dict] | None = None) -> dict:
    """Fill ``response`` from a non-streamed chat completion (same items as the streamed path).
    ``seal``: sets a reasoning item's ``encrypted_content`` (encrypted_reasoning.py), when asked."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    finish_reason = choice.get("finish_reason")
    final = item_status(finish_reason)
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    disallowed = req.tools.disallowed_calls([(c.get("function") or {}).get("name") or "" for c in calls])
    if disallowed:
        return fail(response, disallowed_message(disallowed), "tool_not_allowed")
    output = []
    thought = reasoning_text(message)
    if thought:
        item = reasoning_item(new_id("rs"), status="completed", content=[reasoning_part(thought)])
        output.append(seal(item) if seal is not None else item)
    text = message.get("content") or ""
    if text or not calls:
        output.append(message_item(new_id("msg"), status="completed" if calls else final,
                                   content=[text_part(text)]))
    for n, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # a few servers send an object here
            arguments = json.dumps(arguments if arguments is not None else {}, separators=(",", ":"))
        namespace, name = req.tools.split(function.get("name") or "")
        output.append(function_call_item(
            new_id("fc"), call_id=call.get("id") or new_id("call"), name=name, namespace=namespace,
            arguments=arguments, status=final if n == len(calls) - 1 else "completed"))
    return finish(response, output=output, finish_reason=finish_reason, chat_usage=completion.get("usage"))
