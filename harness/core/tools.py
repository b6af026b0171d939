"""Checks of a Response's function calls against the request that produced them.

Applied automatically whenever the request offered tools (``tools``/``tool_choice``/
``parallel_tool_calls``); no scenario has to ask for them. The stream-level rules for
function_call items (added with empty arguments, stable call_id) live in stream.py.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs

from harness.core.findings import FindingLog


def function_calls(response: dict[str, Any] | None) -> list[tuple[int, dict[str, Any]]]:
    """(output_index, item) of every function_call item in the response's output."""
    out = (response or {}).get("output") or []
    return [(i, it) for i, it in enumerate(out) if isinstance(it, dict)
            and it.get("type") == "function_call"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(text: str) -> Any:
    """``json.loads`` without Python's extensions: NaN / Infinity are not JSON (JSON.parse and
    every non-Python client reject them)."""
    return json.loads(text, parse_constant=_reject_constant)


def _functions(tools: Any) -> list[dict[str, Any]]:
    return [t for t in tools or [] if isinstance(t, dict) and t.get("type") == "function"
            and isinstance(t.get("name"), str)]


def _key(namespace: Any, name: Any) -> str:
    """How a function is named here: ``name``, or ``namespace.name`` for a function of a
    ``namespace`` tool (SDK 3.54 NamespaceToolParam; its calls carry ``namespace``)."""
    return f"{namespace}.{name}" if namespace else str(name)


def _offered(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    offered = {t["name"]: t for t in _functions(request.get("tools"))}
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("name"), str):
            offered.update({_key(tool["name"], f["name"]): f for f in _functions(tool.get("tools"))})
    return offered


def check_tool_calls(response: dict[str, Any] | None, request: dict[str, Any] | None,
                     log: FindingLog, *, path_prefix: str = "$") -> None:
    if not isinstance(request, dict) or not isinstance(response, dict):
        return
    calls = function_calls(response)
    offered = _offered(request)
    if not offered and not calls:
        return
    p = path_prefix
    log.apply("tools.call.known_function")
    if calls:
        log.apply("tools.call_id.distinct", "tools.arguments.json")
    seen: dict[Any, int] = {}
    for i, item in calls:
        cid = item.get("call_id")
        cid = cid if isinstance(cid, (str, int, float, bool, type(None))) else repr(cid)
        if cid in seen:
            log.fail("tools.call_id.distinct", f"output[{i}] repeats call_id {cid!r} of "
                     f"output[{seen[cid]}]", path=f"{p}.output[{i}].call_id", actual=cid)
        seen.setdefault(cid, i)
        name = item.get("name")
        if item.get("namespace"):
            name = _key(item["namespace"], name)
        tool = offered.get(name) if isinstance(name, str) else None
        if tool is None:
            log.fail("tools.call.known_function", f"output[{i}] calls {name!r}, which the "
                     f"request did not offer ({sorted(offered)})", path=f"{p}.output[{i}].name",
                     expected=sorted(offered), actual=name)
        args_text = item.get("arguments")
        try:
            args = loads_strict(args_text) if isinstance(args_text, str) else None
        except ValueError:
            args = None
        if not isinstance(args, dict):
            log.fail("tools.arguments.json", f"output[{i}].arguments is not a JSON object: "
                     f"{str(args_text)[:120]!r}", path=f"{p}.output[{i}].arguments",
                     actual=str(args_text)[:200])
            continue
        if tool and tool.get("strict") is True and isinstance(tool.get("parameters"), dict):
            log.apply("tools.arguments.schema")
            try:
                validator = jsonschema_rs.validator_for(tool["parameters"])
            except (ValueError, jsonschema_rs.ValidationError):
                continue  # the request's own schema is invalid: nothing to judge against
            for err in list(validator.iter_errors(args))[:3]:
                log.fail("tools.arguments.schema", f"output[{i}] arguments for {name}: "
                         f"{err.message}", path=f"{p}.output[{i}].arguments",
                         actual=args_text[:200])
    _check_choice(request, response, calls, offered, log, p)


def _check_choice(request, response, calls, offered, log: FindingLog, p: str) -> None:
    if response.get("status") not in ("completed",):
        return  # an incomplete or failed response may legitimately stop before its call
    log.apply("tools.choice")
    choice = request.get("tool_choice", "auto")
    names = [it.get("name") for _, it in calls]
    if choice == "none" and calls:
        log.fail("tools.choice", f"tool_choice is none but the response calls {names}",
                 path=f"{p}.output", expected=[], actual=names)
    elif choice == "required" and not calls:
        log.fail("tools.choice", "tool_choice is required but the response calls nothing",
                 path=f"{p}.output", expected="at least one function_call", actual=[])
    elif isinstance(choice, dict) and choice.get("type") == "function":
        want = choice.get("name")
        if not calls or any(n != want for n in names):
            log.fail("tools.choice", f"tool_choice forces {want!r} but the response calls "
                     f"{names}", path=f"{p}.output", expected=[want], actual=names)
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = sorted({t.get("name") for t in choice.get("tools") or []
                          if isinstance(t, dict) and isinstance(t.get("name"), str)})
        stray = [n for n in names if n not in allowed]
        if stray:
            log.fail("tools.choice", f"allowed_tools permits {allowed} but the response "
                     f"calls {stray}", path=f"{p}.output", expected=allowed, actual=stray)
        if choice.get("mode") == "required" and not calls:
            log.fail("tools.choice", "allowed_tools mode required but the response calls "
                     "nothing", path=f"{p}.output")
    if request.get("parallel_tool_calls") is False and len(calls) > 1:
        log.fail("tools.choice", f"parallel_tool_calls is false but the response makes "
                 f"{len(calls)} calls", path=f"{p}.output", expected=1, actual=len(calls))
