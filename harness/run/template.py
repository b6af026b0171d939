"""``{{...}}`` references in scenario requests, resolved against the run so far.

    {{model}}                                        the target's model
    {{steps.create.response.id}}                     a field of an earlier step's Response
    {{steps.create.response.output[type=function_call].call_id}}
                                                     first element whose `type` is function_call
    {{steps.create.response.output}}                 a whole value (list, object, ...)
    {{steps.list.body.data[0].id}}                   the raw JSON body of an earlier step

    {{repeat:N:text}}                                ``text`` N times over (literal text: no braces;
                                                     spaces kept), e.g. an input larger than any
                                                     small model's context window

A string that is exactly one reference becomes the referenced value with its JSON type; a
reference inside a longer string is interpolated as text. In a list, ``"{{...expr}}"`` splices
the referenced list in place (e.g. an earlier response's output items followed by a new message).
"""

from __future__ import annotations

import json
import re
from typing import Any

_REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_SPLICE = re.compile(r"\{\{\s*\.\.\.([^{}]+?)\s*\}\}")
_REPEAT = re.compile(r"\{\{repeat:(\d+):([^{}]*)\}\}")
# What one ``{{repeat:...}}`` may expand to: 16 MiB, beyond any request body a server takes by
# default (the reference gateway's is 1 MiB; nginx's 1m), so a typo in N cannot exhaust memory.
MAX_REPEAT_CHARS = 16 * 1024 * 1024
_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[([A-Za-z_]+)=([^\]]+)\]")


class UnresolvedReference(Exception):
    """A reference names something the earlier steps did not produce."""


def lookup(context: dict[str, Any], expr: str) -> Any:
    node: Any = context
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise UnresolvedReference(f"cannot parse reference {{{{{expr}}}}} at {expr[pos:]!r}")
        name, index, key, value = m.groups()
        if name is not None:
            if not isinstance(node, dict) or name not in node:
                raise UnresolvedReference(f"{{{{{expr}}}}}: no {name!r} in {_short(node)}")
            node = node[name]
        elif index is not None:
            i = int(index)
            if not isinstance(node, list) or i >= len(node):
                raise UnresolvedReference(f"{{{{{expr}}}}}: no element [{i}] in {_short(node)}")
            node = node[i]
        else:
            if not isinstance(node, list):
                raise UnresolvedReference(f"{{{{{expr}}}}}: [{key}={value}] applied to "
                                          f"{_short(node)}")
            found = [x for x in node if isinstance(x, dict) and str(x.get(key)) == value]
            if not found:
                raise UnresolvedReference(f"{{{{{expr}}}}}: no element with {key}={value}")
            node = found[0]
        pos = m.end()
    return node


def _repeat(m: re.Match) -> str:
    count, text = int(m.group(1)), m.group(2)
    if count * len(text) > MAX_REPEAT_CHARS:
        raise UnresolvedReference(f"{{{{repeat:{count}:...}}}} would be {count * len(text)} characters, "
                                  f"more than {MAX_REPEAT_CHARS}")
    return text * count


def fill(value: Any, context: dict[str, Any]) -> Any:
    """Resolve every reference in a JSON-like value (raises UnresolvedReference)."""
    if isinstance(value, str):
        if "{{repeat:" in value:
            value = _REPEAT.sub(_repeat, value)
        whole = _REF.fullmatch(value)
        if whole:
            return lookup(context, whole.group(1))
        return _REF.sub(lambda m: _text(lookup(context, m.group(1))), value)
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            splice = _SPLICE.fullmatch(v) if isinstance(v, str) else None
            if splice:
                items = lookup(context, splice.group(1))
                if not isinstance(items, list):
                    raise UnresolvedReference(f"{{{{...{splice.group(1)}}}}} is not a list")
                out.extend(items)
            else:
                out.append(fill(v, context))
        return out
    if isinstance(value, dict):
        return {k: fill(v, context) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _short(node: Any) -> str:
    if isinstance(node, dict):
        return f"an object with keys {sorted(node)[:8]}"
    if isinstance(node, list):
        return f"a list of {len(node)}"
    return repr(node)[:60]
