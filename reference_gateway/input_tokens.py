"""``POST /v1/responses/input_tokens``: how many input tokens a create request would use, as
``{"object": "response.input_tokens", "input_tokens": N}`` (the openai SDK's
``client.responses.input_tokens.count(...)``, ``InputTokenCountResponse``).

The body takes the names of the SDK's ``InputTokenCountParams``; each is checked exactly as
``POST /v1/responses`` checks it (params.py), and the conversation is built the same way
(``previous_response_id`` expanded, instructions first, image and file parts as chat parts), so
the count is of the very messages a create request would send upstream. ``model`` and
``input`` may be left out (the SDK marks both optional): without ``model`` the single upstream
is asked (a gateway with ``--routes`` needs it to choose one); without ``input`` only the
instructions and the previous response's conversation count. ``conversation`` is refused like
on create (no Conversations API); ``personality`` is accepted and ignored (a style preset does
not change the input).

Who counts, said by the ``x-input-tokens-source`` header:

- ``upstream``: the upstream's tokenizer, through vLLM's ``POST /tokenize`` with the chat
  ``messages`` (and ``tools``), which applies the model's own chat template: the number the
  upstream will report as ``prompt_tokens``.
- ``estimate``: the upstream has no such route (404/405/501: OpenAI itself, llama.cpp, most
  proxies) or speaks ``/v1/responses`` natively. ``estimate_tokens``: about four characters a
  token (OpenAI's rule of thumb for English), plus ``MESSAGE_OVERHEAD`` per message (the chat
  template's role markers) and ``IMAGE_TOKENS`` per image. An estimate, said so in the header,
  never presented as exact.

Any other failure of the upstream (a 4xx for the model or an image, 5xx, unreachable) is the
usual error envelope, as on create.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from openai.types.responses.input_token_count_params import InputTokenCountParams

from reference_gateway.errors import invalid
from reference_gateway.params import CreateRequest, check_body_names, parse_create

KNOWN_PARAMS = frozenset(InputTokenCountParams.__annotations__)
IGNORED_PARAMS = frozenset({"personality"})
UNSUPPORTED_PARAMS = frozenset({"conversation"})
SOURCE_HEADER = "x-input-tokens-source"

# The estimate's constants. ~4 characters of English text a token (OpenAI's help center: "1 token
# ~= 4 chars in English"); a chat template adds a few tokens per message (OpenAI's cookbook
# counts 3 per message plus 3 to prime the reply); a low-detail image costs 85 tokens (OpenAI's
# vision pricing), the least any image costs.
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 3
REPLY_PRIMER = 3
IMAGE_TOKENS = 85
# What stands in for a missing ``input`` while the body is checked as a create body; dropped after.
_NO_INPUT = "."


def parse_count(body: Any, *, default_model: str | None) -> CreateRequest:
    """A count body, checked as the create body it stands for; the request it would make."""
    check_body_names(body, KNOWN_PARAMS, UNSUPPORTED_PARAMS)
    create = {name: value for name, value in body.items() if name not in IGNORED_PARAMS | UNSUPPORTED_PARAMS}
    if create.get("model") is None:
        if default_model is None:
            raise invalid("Missing required parameter: 'model' (this gateway routes by model).", param="model",
                          code="missing_required_parameter")
        create["model"] = default_model
    no_input = create.get("input") is None
    if no_input:
        create["input"] = _NO_INPUT
    req = parse_create(create)
    return dataclasses.replace(req, input_items=()) if no_input else req


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return _text_tokens(content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        kind = part.get("type")
        if kind == "image_url":
            total += IMAGE_TOKENS
        elif kind == "file":
            total += _text_tokens(part["file"].get("file_data", ""))
        else:
            total += _text_tokens(part.get("text", ""))
    return total


def estimate_tokens(messages: list[dict], tools: list[dict] | None = None) -> int:
    """The estimate (module docstring) of chat ``messages`` and their ``tools``."""
    total = REPLY_PRIMER
    for message in messages:
        total += MESSAGE_OVERHEAD + _content_tokens(message.get("content"))
        for call in message.get("tool_calls") or ():
            total += _text_tokens(json.dumps(call.get("function", {}), separators=(",", ":")))
    if tools:
        total += _text_tokens(json.dumps(tools, separators=(",", ":")))
    return total


def counted(tokens: int) -> dict:
    return {"object": "response.input_tokens", "input_tokens": tokens}
