"""Validation of ``POST /v1/responses`` bodies into a ``CreateRequest``.

Every refusal is a 400 ``invalid_request_error`` whose ``param`` names the offending field, with
the ``code`` values OpenAI's service uses (``unknown_parameter``, ``invalid_type``,
``missing_required_parameter``, ``integer_below_min_value``, ...). Features the gateway does not
implement are refused with ``unsupported_parameter`` instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai.types.responses.response_create_params import ResponseCreateParamsBase

from reference_gateway.errors import APIError, invalid, unsupported

# Every name the pinned SDK can send (plus ``stream``, which lives in its two subclasses).
KNOWN_PARAMS = frozenset(ResponseCreateParamsBase.__annotations__) | {"stream"}

# Accepted only when absent or null: the gateway has no implementation behind them.
UNSUPPORTED_PARAMS = frozenset(
    {
        "access_programs",
        "background_options",
        "context_management",
        "conversation",
        "image",
        "moderation",
        "previous_response_id",
        "prompt",
        "prompt_cache_options",
        "prompt_cache_retention",
    }
)

# OpenAI's documented minimum for ``max_output_tokens``.
MIN_OUTPUT_TOKENS = 16
# Metadata limits from the API reference: 16 pairs, keys <= 64 chars, values <= 512 chars.
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512

MESSAGE_ROLES = ("user", "system", "developer", "assistant")
TEXT_PART_TYPES = ("input_text", "output_text")


@dataclass(frozen=True)
class CreateRequest:
    model: str
    messages: tuple[dict, ...]  # chat-completions messages, instructions first
    instructions: str | None
    stream: bool
    store: bool
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    metadata: dict[str, str]
    parallel_tool_calls: bool
    tool_choice: str
    truncation: str
    text_verbosity: str
    user: str | None
    safety_identifier: str | None
    prompt_cache_key: str | None


def _type_error(param: str, expected: str, value: Any) -> APIError:
    return invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional(body: dict, name: str, kind: type | tuple, expected: str) -> Any:
    """The value of an optional field, null meaning absent; a wrong JSON type is refused."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise _type_error(name, expected, value)
    if not isinstance(value, kind):
        raise _type_error(name, expected, value)
    return value


def _number_in(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_number(value):
        raise _type_error(name, "a number", value)
    if value < low:
        raise invalid(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low}, but got {value} instead.",
            param=name,
            code="decimal_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high}, but got {value} instead.",
            param=name,
            code="decimal_above_max_value",
        )
    return float(value)


def _messages(value: Any) -> list[dict]:
    """Input items -> chat messages (content parts joined into one text)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _type_error("input", "a string or an array of input items", value)
    messages = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _type_error(where, "an object", item)
        kind = item.get("type", "message")
        if kind != "message":
            raise unsupported(f"{where}.type", f"input item type {kind!r}")
        role = item.get("role")
        if role not in MESSAGE_ROLES:
            raise invalid(
                f"Invalid value for '{where}.role': expected one of {', '.join(MESSAGE_ROLES)}.",
                param=f"{where}.role",
                code="invalid_value" if role is not None else "missing_required_parameter",
            )
        content = item.get("content")
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                part_where = f"{where}.content[{j}]"
                if not isinstance(part, dict):
                    raise _type_error(part_where, "an object", part)
                if part.get("type") not in TEXT_PART_TYPES:
                    raise unsupported(f"{part_where}.type", f"content part type {part.get('type')!r}")
                if not isinstance(part.get("text"), str):
                    raise _type_error(f"{part_where}.text", "a string", part.get("text"))
                texts.append(part["text"])
            text = "".join(texts)
        else:
            raise _type_error(f"{where}.content", "a string or an array of content parts", content)
        messages.append({"role": role, "content": text})
    return messages


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error("metadata", "an object", value)
    if len(value) > METADATA_MAX_PAIRS:
        raise invalid(
            f"Invalid 'metadata': too many properties. Expected at most {METADATA_MAX_PAIRS}, got {len(value)}.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise invalid(
                f"Invalid 'metadata': key longer than {METADATA_MAX_KEY} characters.",
                param="metadata",
                code="string_above_max_length",
            )
        if not isinstance(item, str):
            raise _type_error(f"metadata.{key}", "a string", item)
        if len(item) > METADATA_MAX_VALUE:
            raise invalid(
                f"Invalid 'metadata.{key}': string longer than {METADATA_MAX_VALUE} characters.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(value)


def _tools(body: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _type_error("tools", "an array", tools)
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _type_error(f"tools[{i}]", "an object", tool)
        # Function tools would need tool-call items in both directions; refused honestly.
        raise unsupported("tools", f"tools of type {tool.get('type')!r}")


def _tool_choice(body: dict) -> str:
    choice = body.get("tool_choice")
    if choice is None:
        return "auto"
    if choice in ("auto", "none"):
        return choice
    if isinstance(choice, (str, dict)):
        raise unsupported("tool_choice", f"tool_choice {choice!r}")
    raise _type_error("tool_choice", "a string or an object", choice)


def _text_verbosity(body: dict) -> str:
    text = _optional(body, "text", dict, "an object")
    if text is None:
        return "medium"
    for key in text:
        if key not in ("format", "verbosity"):
            raise invalid(f"Unknown parameter: 'text.{key}'.", param=f"text.{key}", code="unknown_parameter")
    fmt = text.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise _type_error("text.format", "an object", fmt)
        if fmt.get("type") != "text":
            raise unsupported("text.format", f"text.format type {fmt.get('type')!r}")
    verbosity = text.get("verbosity")
    if verbosity is None:
        return "medium"
    if verbosity not in ("low", "medium", "high"):
        raise invalid("Invalid value for 'text.verbosity'.", param="text.verbosity")
    return verbosity


def _refuse_unimplemented(body: dict) -> None:
    for name in sorted(UNSUPPORTED_PARAMS):
        if body.get(name) is not None:
            raise unsupported(name)
    if _optional(body, "background", bool, "a boolean"):
        raise unsupported("background")
    include = _optional(body, "include", list, "an array")
    if include:
        raise unsupported("include")
    reasoning = _optional(body, "reasoning", dict, "an object")
    if reasoning and any(v is not None for v in reasoning.values()):
        raise unsupported("reasoning")
    top_logprobs = _optional(body, "top_logprobs", int, "an integer")
    if top_logprobs:
        raise unsupported("top_logprobs")
    if _optional(body, "service_tier", str, "a string") not in (None, "auto", "default"):
        raise unsupported("service_tier")
    stream_options = _optional(body, "stream_options", dict, "an object")
    if stream_options is not None and body.get("stream") is not True:
        raise invalid(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )


def parse_create(body: Any) -> CreateRequest:
    """Validate a decoded JSON body; raise ``APIError`` naming the first offending field."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", param=None, code="invalid_type")
    for name in body:
        if name not in KNOWN_PARAMS:
            raise invalid(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")

    model = body.get("model")
    if model is None:
        raise invalid("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if not isinstance(model, str):
        raise _type_error("model", "a string", model)
    if not model.strip():
        raise invalid("Invalid 'model': empty string.", param="model", code="empty_string")

    _refuse_unimplemented(body)
    instructions = _optional(body, "instructions", str, "a string")
    if "input" not in body or body["input"] is None:
        raise invalid("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    messages = _messages(body["input"])
    if instructions is not None:
        messages.insert(0, {"role": "system", "content": instructions})
    if not messages:
        raise invalid("Invalid 'input': expected at least one input item.", param="input", code="empty_array")

    max_output_tokens = _optional(body, "max_output_tokens", int, "an integer")
    if max_output_tokens is not None and max_output_tokens < MIN_OUTPUT_TOKENS:
        raise invalid(
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {max_output_tokens} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    max_tool_calls = _optional(body, "max_tool_calls", int, "an integer")
    truncation = _optional(body, "truncation", str, "a string") or "disabled"
    if truncation not in ("auto", "disabled"):
        raise invalid("Invalid value for 'truncation': expected 'auto' or 'disabled'.", param="truncation")
    _tools(body)
    parallel = _optional(body, "parallel_tool_calls", bool, "a boolean")
    stream = _optional(body, "stream", bool, "a boolean")
    store = _optional(body, "store", bool, "a boolean")

    return CreateRequest(
        model=model,
        messages=tuple(messages),
        instructions=instructions,
        stream=bool(stream),
        store=store is not False,
        temperature=_number_in(body, "temperature", 0, 2),
        top_p=_number_in(body, "top_p", 0, 1),
        max_output_tokens=max_output_tokens,
        max_tool_calls=max_tool_calls,
        metadata=_metadata(body.get("metadata")),
        parallel_tool_calls=parallel is not False,
        tool_choice=_tool_choice(body),
        truncation=truncation,
        text_verbosity=_text_verbosity(body),
        user=_optional(body, "user", str, "a string"),
        safety_identifier=_optional(body, "safety_identifier", str, "a string"),
        prompt_cache_key=_optional(body, "prompt_cache_key", str, "a string"),
    )
