"""Checks of a Response's text against the request's ``text.format`` (structured output).

Applied automatically when the request asks for ``json_schema`` or ``json_object``; judged on
completed responses only (an incomplete one may be cut mid-JSON by max_output_tokens), and not
on a turn that calls a tool or whose message is a refusal (neither has a final answer to judge).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from harness.core.findings import FindingLog
from harness.core.tools import loads_strict


def output_text(response: dict[str, Any]) -> str:
    """What the SDK's ``Response.output_text`` returns: all output_text parts, concatenated."""
    parts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "output_text" \
                        and isinstance(part.get("text"), str):
                    parts.append(part["text"])
    return "".join(parts)


def _refused(response: dict[str, Any]) -> bool:
    return any(isinstance(part, dict) and part.get("type") == "refusal"
               for item in response.get("output") or []
               if isinstance(item, dict) and item.get("type") == "message"
               for part in item.get("content") or [])


def check_structured(response: dict[str, Any] | None, request: dict[str, Any] | None,
                     log: FindingLog) -> None:
    if not isinstance(request, dict) or not isinstance(response, dict):
        return
    fmt = ((request.get("text") or {}).get("format") or {}) if isinstance(request.get("text"), dict) else {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("json_schema", "json_object") or response.get("status") != "completed":
        return
    if any(isinstance(it, dict) and it.get("type") == "function_call"
           for it in response.get("output") or []):
        return  # a turn that calls a tool has no final text to judge
    if _refused(response):
        return  # the model may refuse instead of answering in the schema (a refusal part)
    log.apply("structured.output.json")
    text = output_text(response)
    try:
        value = loads_strict(text)
    except ValueError as exc:
        log.fail("structured.output.json", f"output text is not JSON ({exc}): {text[:120]!r}",
                 path="$.output", actual=text[:200])
        return
    if kind == "json_schema" and fmt.get("strict") is True and isinstance(fmt.get("schema"), dict):
        log.apply("structured.output.schema")
        try:
            validator = jsonschema_rs.validator_for(fmt["schema"])
        except (ValueError, jsonschema_rs.ValidationError):
            return
        for err in list(validator.iter_errors(value))[:3]:
            path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                 for p in err.instance_path)
            log.fail("structured.output.schema", f"output JSON at {path}: {err.message}",
                     path="$.output", actual=text[:200])
