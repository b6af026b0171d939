"""Validation of ``POST /v1/responses`` bodies into a ``CreateRequest``.

Every refusal is a 400 ``invalid_request_error`` whose ``param`` names the offending field, with
the ``code`` values OpenAI's service uses (``unknown_parameter``, ``invalid_type``,
``missing_required_parameter``, ``integer_below_min_value``, ...). Features the gateway does not
implement are refused with ``unsupported_parameter`` instead of being silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from openai.types.responses.response_create_params import ResponseCreateParamsBase

from reference_gateway.errors import APIError, invalid, unsupported
from reference_gateway.input_items import parse_input, type_error
from reference_gateway.tools import ToolSetup, parse_tools

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
# ``text.format.name`` rule from the API reference (ResponseFormatTextJSONSchemaConfig.name).
JSON_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True)
class CreateRequest:
    model: str
    input_items: tuple[dict, ...]  # normalized, with ids (what GET .../input_items lists)
    instructions: str | None
    previous_response_id: str | None
    stream: bool
    store: bool
    background: bool
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    metadata: dict[str, str]
    parallel_tool_calls: bool
    tools: ToolSetup
    truncation: str
    text_format: dict
    text_verbosity: str
    reasoning_effort: str | None
    user: str | None
    safety_identifier: str | None
    prompt_cache_key: str | None


_type_error = type_error


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


def _text(body: dict) -> tuple[dict, str]:
    """``text.format`` (echoed exactly as the SDK types it) and ``text.verbosity``."""
    text = _optional(body, "text", dict, "an object")
    if text is None:
        return {"type": "text"}, "medium"
    for key in text:
        if key not in ("format", "verbosity"):
            raise invalid(f"Unknown parameter: 'text.{key}'.", param=f"text.{key}", code="unknown_parameter")
    fmt = text.get("format")
    if fmt is None:
        fmt = {"type": "text"}
    elif not isinstance(fmt, dict):
        raise _type_error("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        fmt = {"type": kind}
    elif kind == "json_schema":
        fmt = _json_schema_format(fmt)
    else:
        raise unsupported("text.format", f"text.format type {kind!r}")
    verbosity = text.get("verbosity")
    if verbosity is None:
        return fmt, "medium"
    if verbosity not in ("low", "medium", "high"):
        raise invalid("Invalid value for 'text.verbosity'.", param="text.verbosity")
    return fmt, verbosity


def _json_schema_format(fmt: dict) -> dict:
    """The SDK's ``ResponseFormatTextJSONSchemaConfig``: name and schema required."""
    name = fmt.get("name")
    if name is None:
        raise invalid("Missing required parameter: 'text.format.name'.", param="text.format.name",
                      code="missing_required_parameter")
    if not isinstance(name, str) or not JSON_SCHEMA_NAME.match(name):
        raise invalid(f"Invalid 'text.format.name': must match {JSON_SCHEMA_NAME.pattern}.",
                      param="text.format.name")
    schema = fmt.get("schema")
    if schema is None:
        raise invalid("Missing required parameter: 'text.format.schema'.", param="text.format.schema",
                      code="missing_required_parameter")
    if not isinstance(schema, dict):
        raise _type_error("text.format.schema", "an object", schema)
    echoed = {"type": "json_schema", "name": name, "schema": schema}
    for key, kind, expected in (("description", str, "a string"), ("strict", bool, "a boolean")):
        value = fmt.get(key)
        if value is not None and not isinstance(value, kind):
            raise _type_error(f"text.format.{key}", expected, value)
        if key in fmt:
            echoed[key] = value
    for key in fmt:
        if key not in ("type", "name", "schema", "description", "strict"):
            raise invalid(f"Unknown parameter: 'text.format.{key}'.", param=f"text.format.{key}",
                          code="unknown_parameter")
    return echoed


def _reasoning_effort(body: dict) -> str | None:
    reasoning = _optional(body, "reasoning", dict, "an object")
    if not reasoning:
        return None
    for key, value in reasoning.items():
        if key == "effort" or value is None:
            continue
        # A summary cannot be made from a chat upstream's raw reasoning; refused, not faked.
        raise unsupported(f"reasoning.{key}")
    effort = reasoning.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise invalid(f"Invalid value for 'reasoning.effort': expected one of {', '.join(REASONING_EFFORTS)}.",
                      param="reasoning.effort")
    return effort


def _refuse_unimplemented(body: dict) -> None:
    for name in sorted(UNSUPPORTED_PARAMS):
        if body.get(name) is not None:
            raise unsupported(name)
    include = _optional(body, "include", list, "an array")
    if include:
        raise unsupported("include")
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
    previous = _optional(body, "previous_response_id", str, "a string")
    if "input" not in body or body["input"] is None:
        raise invalid("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    input_items = parse_input(body["input"])
    if not input_items:
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
    tools = parse_tools(body)
    parallel = _optional(body, "parallel_tool_calls", bool, "a boolean")
    stream = bool(_optional(body, "stream", bool, "a boolean"))
    store = _optional(body, "store", bool, "a boolean") is not False
    background = bool(_optional(body, "background", bool, "a boolean"))
    if background and not store:
        raise invalid("'background' requires 'store' to be true.", param="background")
    if background and stream:
        # Streaming a background response (and resuming it by sequence_number) is not built.
        raise unsupported("stream", "streaming a background response")
    text_format, verbosity = _text(body)

    return CreateRequest(
        model=model,
        input_items=tuple(input_items),
        instructions=instructions,
        previous_response_id=previous,
        stream=stream,
        store=store,
        background=background,
        temperature=_number_in(body, "temperature", 0, 2),
        top_p=_number_in(body, "top_p", 0, 1),
        max_output_tokens=max_output_tokens,
        max_tool_calls=max_tool_calls,
        metadata=_metadata(body.get("metadata")),
        parallel_tool_calls=parallel is not False,
        tools=tools,
        truncation=truncation,
        text_format=text_format,
        text_verbosity=verbosity,
        reasoning_effort=_reasoning_effort(body),
        user=_optional(body, "user", str, "a string"),
        safety_identifier=_optional(body, "safety_identifier", str, "a string"),
        prompt_cache_key=_optional(body, "prompt_cache_key", str, "a string"),
    )
