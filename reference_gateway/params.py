"""Validation of ``POST /v1/responses`` bodies into a ``CreateRequest``, and of
``POST /v1/responses/compact`` bodies (``parse_compact``; the item it makes is compaction.py's).

Every refusal is a 400 ``invalid_request_error`` whose ``param`` names the offending field, with
the ``code`` values OpenAI's service uses (``unknown_parameter``, ``invalid_type``,
``missing_required_parameter``, ``integer_below_min_value``, ...). Features the gateway does not
implement are refused with ``unsupported_parameter`` instead of being silently ignored.

Before any field is looked at, ``check_json_values`` refuses what parsed but cannot be passed on
(nesting past ``MAX_JSON_DEPTH``, lone surrogates, integers outside 64 bits, infinite numbers),
naming its path; a tool's ``parameters`` and ``text.format.schema`` must be valid JSON Schemas
(``invalid_json_schema``, never fetched). Found by ``respcheck fuzz`` (reports/benchmarks/fuzz.md).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from openai.types.responses.response_compact_params import ResponseCompactParams
from openai.types.responses.response_create_params import ResponseCreateParamsBase

from reference_gateway import policy
from reference_gateway.errors import APIError, invalid, unsupported
from reference_gateway.input_items import parse_input, type_error
from reference_gateway.tools import ToolSetup, parse_tools

# Every name the pinned SDK can send (plus ``stream``, which lives in its two subclasses), and
# what real clients send beyond it (policy.py: Codex's ``client_metadata``).
KNOWN_PARAMS = frozenset(ResponseCreateParamsBase.__annotations__) | {"stream"} | policy.extra_parameters()

# Accepted only when absent or null: what would change the answer if ignored (policy.py).
UNSUPPORTED_PARAMS = policy.refused_parameters()

# The compact endpoint's names, from the pinned SDK's params; accepted only when absent or null
# are those the gateway has nothing behind.
KNOWN_COMPACT_PARAMS = frozenset(ResponseCompactParams.__annotations__)
UNSUPPORTED_COMPACT_PARAMS = frozenset(KNOWN_COMPACT_PARAMS - {"model", "input", "instructions",
                                                               "previous_response_id", "prompt_cache_key"})

# Nesting allowed in a request body. serde_json's default recursion limit; a request nests a few
# levels (a tool's parameters schema perhaps ten), and orjson, which writes the streamed events
# that echo those values, refuses past 255.
MAX_JSON_DEPTH = 128
# Integers must fit in 64 bits (orjson, SQLite INTEGER and most servers' int64); floats must be
# finite (``1e400`` parses to inf, which JSON cannot carry back out).
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
# The Draft 2020-12 metaschema, from jsonschema_rs's built-in registry (no network access).
METASCHEMA = jsonschema_rs.Draft202012Validator({"$ref": "https://json-schema.org/draft/2020-12/schema"})
# OpenAI's documented minimum for ``max_output_tokens``.
MIN_OUTPUT_TOKENS = 16
# Metadata limits from the API reference: 16 pairs, keys <= 64 chars, values <= 512 chars.
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512
# ``text.format.name`` rule from the API reference (ResponseFormatTextJSONSchemaConfig.name).
JSON_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
# The SDK's Reasoning.summary (and its deprecated generate_summary) values.
REASONING_SUMMARIES = ("auto", "concise", "detailed")
# ``include`` values the gateway accepts (the SDK's ResponseIncludable; policy.py says which and
# why): the code interpreter's outputs (logs) in its items, a web search's sources in its action,
# reasoning's encrypted_content; two that can never have anything to include. Others are refused.
INCLUDABLE = policy.accepted_include()


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
    include: tuple[str, ...] = ()
    reasoning_summary: str | None = None  # echoed; reasoning items get a summary (reasoning_summary.py)


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
        # Echoed always, as Open Responses' JsonSchemaResponseFormat requires both present:
        # description null when not given, strict false (the gateway enforces the schema on
        # the upstream only when asked).
        echoed[key] = value if value is not None else (None if key == "description" else False)
    for key in fmt:
        if key not in ("type", "name", "schema", "description", "strict"):
            raise invalid(f"Unknown parameter: 'text.format.{key}'.", param=f"text.format.{key}",
                          code="unknown_parameter")
    return echoed


def _reasoning(body: dict) -> tuple[str | None, str | None]:
    """``reasoning.effort`` (sent upstream) and ``reasoning.summary`` (or its deprecated name
    ``generate_summary``; echoed, and reasoning items get a summary: reasoning_summary.py)."""
    reasoning = _optional(body, "reasoning", dict, "an object")
    if not reasoning:
        return None, None
    for key, value in reasoning.items():
        if key not in ("effort", "summary", "generate_summary") and value is not None:
            raise unsupported(f"reasoning.{key}")
    effort = reasoning.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise invalid(f"Invalid value for 'reasoning.effort': expected one of {', '.join(REASONING_EFFORTS)}.",
                      param="reasoning.effort")
    summary = None
    for key in ("summary", "generate_summary"):
        value = reasoning.get(key)
        if value is not None and value not in REASONING_SUMMARIES:
            raise invalid(f"Invalid value for 'reasoning.{key}': expected one of {', '.join(REASONING_SUMMARIES)}.",
                          param=f"reasoning.{key}")
        summary = summary or value
    return effort, summary


def _refuse_unimplemented(body: dict) -> None:
    for name in sorted(UNSUPPORTED_PARAMS):
        if body.get(name) is not None:
            raise unsupported(name)
    include = _optional(body, "include", list, "an array") or []
    for i, value in enumerate(include):
        if not isinstance(value, str):
            raise _type_error(f"include[{i}]", "a string", value)
        if value not in INCLUDABLE:
            raise unsupported(f"include[{i}]", f"include value {_printable(value)[:80]!r}")
    top_logprobs = _optional(body, "top_logprobs", int, "an integer")
    if top_logprobs:
        raise unsupported("top_logprobs")
    _optional(body, "service_tier", str, "a string")  # any tier: the response says the one used (policy.py)
    _optional(body, "prompt_cache_retention", str, "a string")
    client_metadata = _optional(body, "client_metadata", dict, "an object")
    for key, value in (client_metadata or {}).items():
        if not isinstance(value, str):
            raise _type_error(f"client_metadata.{key}", "a string", value)
    stream_options = _optional(body, "stream_options", dict, "an object")
    if stream_options is not None and body.get("stream") is not True:
        raise invalid(
            "'stream_options' is only allowed when 'stream' is true.", param="stream_options"
        )


def _path(parts: tuple) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = _printable(part)
            out += f".{part}" if out else part
    return out


def _printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` (they cannot be sent as UTF-8)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def parse_json_text(text: str) -> object:
    """JSON text (already decoded: an HTTP body, a WebSocket text frame) as a value, or 400
    ``invalid_json``: for text that is not JSON, for NaN/Infinity, and for nesting too deep for
    the parser (a RecursionError, never a 500)."""

    def no_constant(name: str) -> None:  # NaN and Infinity are not JSON (RFC 8259, section 6)
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise APIError(400, "The request body is not valid JSON: it nests too deeply to parse.",
                       code="invalid_json") from None
    except ValueError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None


def check_json_values(body: Any) -> None:
    """Refuse, naming its path, a value that parsed but cannot be passed on: nesting deeper than
    ``MAX_JSON_DEPTH``, a string or key with a lone surrogate (``"\\ud800"`` is valid JSON
    syntax but no UTF-8 text can carry it, so neither the upstream request nor the store
    could), an integer outside 64 bits, a number too large for a double. Iterative: a deep body
    cannot exhaust the stack here."""
    stack: list[tuple[Any, tuple, int]] = [(body, (), 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise invalid(f"Invalid '{_path(where)}': nested deeper than {MAX_JSON_DEPTH} levels.",
                              param=_path(where) or None, code="nesting_too_deep")
            if isinstance(node, dict):
                for key, value in node.items():
                    if _has_surrogate(key):
                        raise invalid(f"Invalid key {_printable(key)!r} in '{_path(where) or 'body'}': "
                                      "it contains a lone UTF-16 surrogate.",
                                      param=_path(where + (key,)), code="invalid_string")
                    stack.append((value, where + (key,), depth + 1))
            else:
                stack.extend((value, where + (i,), depth + 1) for i, value in enumerate(node))
        elif isinstance(node, str):
            if _has_surrogate(node):
                raise invalid(f"Invalid '{_path(where)}': the string contains a lone UTF-16 surrogate "
                              "(an escape such as \\ud800 without its pair), which UTF-8 cannot carry.",
                              param=_path(where), code="invalid_string")
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if not MIN_INTEGER <= node <= MAX_INTEGER:
                raise invalid(f"Invalid '{_path(where)}': integer outside the 64-bit range.",
                              param=_path(where), code="integer_out_of_range")
        elif isinstance(node, float) and not math.isfinite(node):
            raise invalid(f"Invalid '{_path(where)}': number too large to represent.",
                          param=_path(where), code="number_out_of_range")


def _check_json_schema(schema: Any, param: str) -> None:
    """A tool's ``parameters`` and ``text.format.schema`` must be JSON Schemas (checked against
    the Draft 2020-12 metaschema, built into jsonschema_rs): the upstream (and the embedded
    mock, which builds answers from them) gets no malformed schema. The schema is validated as
    an instance, so its own ``$schema`` / ``$ref`` URLs are never fetched."""
    error = next(METASCHEMA.iter_errors(schema), None)
    if error is None:
        return
    # Follow the error's instance path through the schema itself: jsonschema_rs reports an
    # object key that looks like a number ("+0") as an integer, so a step that does not match
    # the actual value ends the path at its parent (still a path of the request).
    where, node = param, schema
    for part in error.instance_path:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            where, node = f"{where}[{part}]", node[part]
        elif isinstance(node, dict) and str(part) in node and not isinstance(part, int):
            where, node = f"{where}.{_printable(str(part))}", node[str(part)]
        elif isinstance(node, dict) and isinstance(part, int) and str(part) in node:
            where, node = f"{where}.{part}", node[str(part)]
        else:
            break
    raise invalid(f"Invalid '{where}': not a valid JSON Schema: {error.message[:200]}",
                  param=where, code="invalid_json_schema")


def _check_tool_choice_names(choice: Any) -> None:
    """Tool names in ``tool_choice`` are strings (``tools.py`` looks them up in a set)."""
    if not isinstance(choice, dict):
        return
    if "name" in choice and not isinstance(choice["name"], str):
        raise _type_error("tool_choice.name", "a string", choice["name"])
    listed = choice.get("tools")
    if isinstance(listed, list):
        for i, ref in enumerate(listed):
            if isinstance(ref, dict) and "name" in ref and not isinstance(ref["name"], str):
                raise _type_error(f"tool_choice.tools[{i}].name", "a string", ref["name"])


def check_body_names(body: Any, known: frozenset[str] | set[str],
                     unsupported_names: frozenset[str] | set[str] = frozenset()) -> dict:
    """A request body is a JSON object whose every parameter is ``known``; one in
    ``unsupported_names`` is refused unless null (400 envelopes naming it). Shared by create,
    compact and input_tokens."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", param=None, code="invalid_type")
    for name in body:
        if name not in known:
            raise invalid(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        if name in unsupported_names and body[name] is not None:
            raise unsupported(name)
    return body


def parse_create(body: Any) -> CreateRequest:
    """Validate a decoded JSON body; raise ``APIError`` naming the first offending field."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", param=None, code="invalid_type")
    check_json_values(body)
    check_body_names(body, KNOWN_PARAMS)

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
    if max_tool_calls is not None and max_tool_calls < 0:
        raise invalid(
            f"Invalid 'max_tool_calls': integer below minimum value. Expected a value >= 0, but got "
            f"{max_tool_calls} instead.",
            param="max_tool_calls",
            code="integer_below_min_value",
        )
    truncation = _optional(body, "truncation", str, "a string") or "disabled"
    if truncation not in ("auto", "disabled"):
        raise invalid("Invalid value for 'truncation': expected 'auto' or 'disabled'.", param="truncation")
    _check_tool_choice_names(body.get("tool_choice"))
    tools = parse_tools(body)
    for i, tool in enumerate(tools.tools):
        if tool.get("parameters") is not None:
            _check_json_schema(tool["parameters"], f"tools[{i}].parameters")
    parallel = _optional(body, "parallel_tool_calls", bool, "a boolean")
    stream = bool(_optional(body, "stream", bool, "a boolean"))
    store = _optional(body, "store", bool, "a boolean") is not False
    background = bool(_optional(body, "background", bool, "a boolean"))
    if background and not store:
        raise invalid("'background' requires 'store' to be true.", param="background")
    text_format, verbosity = _text(body)
    effort, summary = _reasoning(body)
    if text_format["type"] == "json_schema":
        _check_json_schema(text_format["schema"], "text.format.schema")

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
        reasoning_effort=effort,
        reasoning_summary=summary,
        user=_optional(body, "user", str, "a string"),
        safety_identifier=_optional(body, "safety_identifier", str, "a string"),
        prompt_cache_key=_optional(body, "prompt_cache_key", str, "a string"),
        include=tuple(dict.fromkeys(body.get("include") or ())),
    )


def parse_compact(body: object) -> tuple[dict, list[dict]]:
    """A ``POST /v1/responses/compact`` body, checked, and its input items (none without
    ``input``). ``model`` is required, as the SDK's params say."""
    check_body_names(body, KNOWN_COMPACT_PARAMS, UNSUPPORTED_COMPACT_PARAMS)
    if body.get("model") is None:
        raise invalid("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if not isinstance(body["model"], str) or not body["model"].strip():
        raise type_error("model", "a non-empty string", body["model"])
    for name in ("instructions", "previous_response_id", "prompt_cache_key"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise type_error(name, "a string", body[name])
    return body, (parse_input(body["input"]) if body.get("input") is not None else [])
