"""A deterministic JSON value valid against a JSON Schema (the mock upstream's "model" for tool
arguments and structured output).

Covers what function parameters and ``text.format`` schemas use: ``type`` (or a list of types),
``enum``, ``const``, objects (every declared property, required ones first; with a hint, the
required ones and the optional ones the hint fills, then more up to ``minProperties``), arrays
(honouring ``minItems``/``maxItems``), strings (``minLength``/``maxLength``, a few
``format``s), numbers and integers (``minimum``/``maximum``/exclusive bounds, draft-4 boolean
ones too, ``multipleOf``), booleans, null, ``anyOf``/``oneOf`` (first branch), ``allOf``
(merged), and local ``$ref`` (``#/$defs/...``). Not generated: ``pattern`` (a hinted string is
used only when it matches), ``uniqueItems`` with ``minItems`` > 1, ``not``, ``if``/``then``,
``patternProperties``, ``dependentRequired``; a oneOf whose first branch's value also matches
another branch is not valid."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

# Recursion bound for self-referencing schemas (a tree node referring to itself).
MAX_DEPTH = 8
WORD = "lorem"
FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}


def _resolve(ref: str, root: dict) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _string(schema: dict) -> str:
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    formatted = FORMATS.get(schema.get("format"))
    if formatted is not None and low <= len(formatted) and (high is None or len(formatted) <= int(high)):
        return formatted
    text = WORD
    while len(text) < low:
        text += WORD
    return text[: int(high)] if high is not None else text


def _fits_string(value, schema: dict) -> bool:
    """Whether a proposed string satisfies the string keywords of ``schema``."""
    if not isinstance(value, str) or not value or schema.get("format") is not None:
        return False
    if len(value) < int(schema.get("minLength", 0)):
        return False
    if schema.get("maxLength") is not None and len(value) > int(schema["maxLength"]):
        return False
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            return re.search(pattern, value) is not None
        except re.error:
            return False
    return True


def _is_multiple(value, step) -> bool:
    """``multipleOf`` exactly as the jsonschema package decides it (a float quotient must be whole)."""
    if isinstance(step, float) or isinstance(value, float):
        quotient = value / step
        return math.isfinite(quotient) and int(quotient) == quotient
    return value % step == 0


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds(schema: dict) -> tuple:
    """(low, low exclusive, high, high exclusive); draft-4 boolean exclusives understood too."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_ex = high_ex = False
    if schema.get("exclusiveMinimum") is True:
        low_ex = low is not None
    elif _numeric(schema.get("exclusiveMinimum")) and (low is None or schema["exclusiveMinimum"] >= low):
        low, low_ex = schema["exclusiveMinimum"], True
    if schema.get("exclusiveMaximum") is True:
        high_ex = high is not None
    elif _numeric(schema.get("exclusiveMaximum")) and (high is None or schema["exclusiveMaximum"] <= high):
        high, high_ex = schema["exclusiveMaximum"], True
    return low, low_ex, high, high_ex


def fits_number(value, schema: dict, integer: bool) -> bool:
    """Whether ``value`` satisfies ``schema``'s numeric keywords (and is whole, for an integer)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if integer and value != int(value):
        return False
    low, low_ex, high, high_ex = _bounds(schema)
    if low is not None and (value < low or (low_ex and value == low)):
        return False
    if high is not None and (value > high or (high_ex and value == high)):
        return False
    step = schema.get("multipleOf")
    return not step or _is_multiple(value, step)


def _number(schema: dict, integer: bool, preferred=None) -> float | int:
    """``preferred`` when it fits ``schema``, else the smallest fitting value near the lower
    bound (1 when unbounded, the middle of a range with an exclusive lower bound)."""
    if fits_number(preferred, schema, integer):
        return int(preferred) if integer else preferred
    low, low_ex, high, high_ex = _bounds(schema)
    if low is None:
        start = 1 if high is None or high > 1 else (high - 1 if high_ex or not integer else high)
    elif not low_ex:
        start = low
    elif integer:
        start = math.floor(low) + 1
    else:
        start = (low + high) / 2 if high is not None else low + 1
    if integer:
        start = math.ceil(start)
    step = schema.get("multipleOf")
    if not step:
        return start
    # The first multiple of the step that fits: up from the lower bound, else down from the
    # start (bounded searches).
    if low is not None:
        k = math.ceil(low / step)
        steps = range(k, k + 10000)
    else:
        k = math.floor(start / step)
        steps = range(k, k - 10000, -1)
    for i in steps:
        value = i * step
        if integer and value == int(value):
            value = int(value)
        if fits_number(value, schema, integer):
            return value
    return k * step


def _merged(parts: list, root: dict) -> dict:
    merged: dict = {}
    for part in parts:
        part = _resolve(part["$ref"], root) if "$ref" in part else part
        for k, v in part.items():
            if k in ("properties",) and k in merged:
                merged[k] = {**merged[k], **v}
            elif k == "required" and k in merged:
                merged[k] = list(merged[k]) + list(v)
            else:
                merged[k] = v
    return merged


# What a hint proposes is used only where it is valid (_hinted); None means no proposal.
Hint = Callable[[str | None, dict], object]
_NONE = object()


def _hinted(schema: dict, kind: str | None, name: str | None, hint: Hint | None):
    """The hint's proposal for the property ``name`` when it satisfies ``schema``, else _NONE."""
    if hint is None:
        return _NONE
    proposal = hint(name, schema)
    if proposal is None:
        return _NONE
    if schema.get("enum"):
        return proposal if proposal in schema["enum"] else _NONE
    if kind == "string":
        return proposal if _fits_string(proposal, schema) else _NONE
    if kind in ("integer", "number"):
        integer = kind == "integer"
        return (int(proposal) if integer else proposal) if fits_number(proposal, schema, integer) else _NONE
    if kind == "boolean":
        return proposal if isinstance(proposal, bool) else _NONE
    return _NONE


def example(schema, root: dict | None = None, depth: int = 0, *, hint: Hint | None = None, name: str | None = None):
    """A value valid against ``schema`` (``root`` resolves ``$ref``; defaults to ``schema``).

    With ``hint`` (a function of a property's name and schema that proposes a value or None), a
    scalar takes the proposal where it is valid, and an object holds its required properties
    plus the optional ones for which a valid proposal exists (tool-call arguments, as a model
    writes them); without it, every declared property (structured output). ``name`` is the
    property the schema describes (array items keep their array's name)."""
    if not isinstance(schema, dict):
        return {}
    root = schema if root is None else root
    if depth > MAX_DEPTH:
        return None
    if "$ref" in schema:
        return example(_resolve(schema["$ref"], root), root, depth + 1, hint=hint, name=name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        proposal = _hinted(schema, None, name, hint)
        return schema["enum"][0] if proposal is _NONE else proposal
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example(schema[key][0], root, depth + 1, hint=hint, name=name)
    if schema.get("allOf"):
        return example(_merged(schema["allOf"], root), root, depth + 1, hint=hint, name=name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = list(dict.fromkeys(schema.get("required") or []))
        extra = schema.get("additionalProperties")
        fallback = extra if isinstance(extra, dict) else {}
        values = {}
        for key in required:
            values[key] = example(properties.get(key, fallback), root, depth + 1, hint=hint, name=key)
        optional = [key for key in properties if key not in values]
        for key in optional:
            if hint is None:
                values[key] = example(properties[key], root, depth + 1, name=key)
                continue
            value = _optional(properties[key], root, depth + 1, hint, key)
            if value is not _NONE:
                values[key] = value
        minimum = int(schema.get("minProperties", 0))
        for key in optional:
            if len(values) >= minimum:
                break
            if key not in values:
                values[key] = example(properties[key], root, depth + 1, hint=hint, name=key)
        return values
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), 1)
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items")
        if isinstance(schema.get("prefixItems"), list):
            return [example(s, root, depth + 1, hint=hint, name=name) for s in schema["prefixItems"]]
        return [example(items if isinstance(items, dict) else {}, root, depth + 1, hint=hint, name=name)
                for _ in range(count)]
    proposal = _hinted(schema, kind, name, hint)
    if proposal is not _NONE:
        return proposal
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    return None


def _optional(schema: dict, root: dict, depth: int, hint: Hint, name: str):
    """An optional property's value when the hint proposes a valid scalar for it, else _NONE."""
    while isinstance(schema, dict) and "$ref" in schema and depth <= MAX_DEPTH:
        schema, depth = _resolve(schema["$ref"], root), depth + 1
    if not isinstance(schema, dict) or "const" in schema or any(schema.get(k) for k in ("anyOf", "oneOf", "allOf")):
        return _NONE
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _hinted(schema, kind or ("string" if schema.get("enum") is None else None), name, hint)
