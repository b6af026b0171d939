"""A deterministic JSON value valid against a JSON Schema (the mock upstream's "model" for tool
arguments and structured output).

Covers what function parameters and ``text.format`` schemas use: ``type`` (or a list of types),
``enum``, ``const``, objects (every declared property; required ones first), arrays (honouring
``minItems``/``maxItems``), strings (``minLength``/``maxLength``, a few ``format``s), numbers
and integers (``minimum``/``maximum``/exclusive bounds/``multipleOf``), booleans, null,
``anyOf``/``oneOf`` (first branch), ``allOf`` (merged), and local ``$ref`` (``#/$defs/...``).
"""

from __future__ import annotations

import math

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
    if schema.get("format") in FORMATS:
        return FORMATS[schema["format"]]
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    text = WORD
    while len(text) < low:
        text += WORD
    return text[: int(high)] if high is not None else text


def _number(schema: dict, integer: bool) -> float | int:
    low = schema.get("minimum")
    if schema.get("exclusiveMinimum") is not None:
        low = schema["exclusiveMinimum"] + (1 if integer else 0.5)
    high = schema.get("maximum")
    if schema.get("exclusiveMaximum") is not None:
        high = schema["exclusiveMaximum"] - (1 if integer else 0.5)
    value = low if low is not None else (min(1, high) if high is not None else 1)
    step = schema.get("multipleOf")
    if step:
        value = math.ceil(value / step) * step
    if integer:
        value = int(math.ceil(value))
    return value


def example(schema, root: dict | None = None, depth: int = 0):
    """A value valid against ``schema`` (``root`` resolves ``$ref``; defaults to ``schema``)."""
    if not isinstance(schema, dict):
        return {}
    root = schema if root is None else root
    if depth > MAX_DEPTH:
        return None
    if "$ref" in schema:
        return example(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict = {}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if "$ref" in part else part
            for k, v in part.items():
                if k in ("properties",) and k in merged:
                    merged[k] = {**merged[k], **v}
                elif k == "required" and k in merged:
                    merged[k] = list(merged[k]) + list(v)
                else:
                    merged[k] = v
        return example(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        names = required + [name for name in properties if name not in required]
        extra = schema.get("additionalProperties")
        fallback = extra if isinstance(extra, dict) else {}
        return {name: example(properties.get(name, fallback), root, depth + 1) for name in names}
    if kind == "array":
        count = max(int(schema.get("minItems", 0)), 1)
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items")
        if isinstance(schema.get("prefixItems"), list):
            return [example(s, root, depth + 1) for s in schema["prefixItems"]]
        return [example(items if isinstance(items, dict) else {}, root, depth + 1) for _ in range(count)]
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _number(schema, integer=True)
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    return None
