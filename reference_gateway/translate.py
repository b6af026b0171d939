"""Responses request -> chat-completions request; chat result -> Response object.

The streamed and the non-streamed paths build their Response objects with the same functions
here, so the two are equivalent by construction.
"""

from __future__ import annotations

import secrets
import time

from reference_gateway.params import CreateRequest

# chat-completions finish_reason -> (response status, incomplete_details.reason).
# ``length`` means the token budget ran out: OpenAI reports it as incomplete/max_output_tokens.
FINISH_REASONS = {
    "stop": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}


def new_id(prefix: str) -> str:
    """``resp_`` / ``msg_`` followed by 48 hex digits, the length OpenAI's ids have."""
    return f"{prefix}_{secrets.token_hex(24)}"


def chat_request(req: CreateRequest) -> dict:
    body: dict = {"model": req.model, "messages": list(req.messages), "stream": req.stream}
    if req.stream:
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
    return body


def new_response(req: CreateRequest) -> dict:
    """The Response object as it stands when work begins: in_progress, no output, no usage."""
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "completed_at": None,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "max_tool_calls": req.max_tool_calls,
        "model": req.model,
        "output": [],
        "parallel_tool_calls": req.parallel_tool_calls,
        "previous_response_id": None,
        "prompt_cache_key": req.prompt_cache_key,
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": req.safety_identifier,
        "service_tier": "default",
        "store": req.store,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": {"format": {"type": "text"}, "verbosity": req.text_verbosity},
        "tool_choice": req.tool_choice,
        "tools": [],
        "top_logprobs": 0,
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": req.truncation,
        "usage": None,
        "user": req.user,
        "metadata": dict(req.metadata),
    }


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, *, status: str, content: list[dict]) -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


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


def finish(response: dict, *, item_id: str, text: str, finish_reason: str | None, chat_usage: dict | None) -> dict:
    """Fill ``response`` in place with its single message item, final status and usage."""
    status, reason = status_of(finish_reason)
    response["output"] = [message_item(item_id, status=status, content=[text_part(text)])]
    response["status"] = status
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["completed_at"] = int(time.time()) if status == "completed" else None
    response["usage"] = usage(chat_usage)
    return response


def fail(response: dict, message: str) -> dict:
    response["status"] = "failed"
    response["error"] = {"code": "server_error", "message": message}
    return response


def from_chat_completion(req: CreateRequest, completion: dict) -> dict:
    """A complete Response object from a non-streamed chat completion."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return finish(
        new_response(req),
        item_id=new_id("msg"),
        text=message.get("content") or "",
        finish_reason=choice.get("finish_reason"),
        chat_usage=completion.get("usage"),
    )
