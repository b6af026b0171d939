"""Checks on a Response object (a non-streamed body, or a stream's terminal response) and on
HTTP error bodies. Pure functions over decoded JSON; findings go to a ``FindingLog``."""

from __future__ import annotations

from typing import Any

from harness.core.findings import FindingLog
from harness.core.schemas import SchemaSet
from harness.core.spec_rules import check_output_items, extensions_allowed, without_extensions

FINAL_STATUSES = ("completed", "incomplete", "failed", "cancelled")
ENVELOPE_KEYS = ("message", "type", "param", "code")


def check_response_object(response: Any, log: FindingLog, *, evidence: dict | None = None,
                          schemas: SchemaSet | None, path_prefix: str = "$",
                          final: bool = True) -> None:
    """Judge a Response object. ``final``: it should be finished (a synchronous answer or a
    terminal event), so its status must be a final one."""
    ev = dict(evidence or {})
    p = path_prefix
    log.apply("response.object", "response.incomplete_details", "response.output_text",
              "response.usage.consistent")
    if schemas is not None:
        log.apply("schema.response")
        checked = response
        if isinstance(response, dict) and extensions_allowed(schemas.profile):
            checked = without_extensions(response)
        for err in schemas.validate_root("Response", checked):
            log.fail("schema.response", err.message, **ev, path=p + err.path[1:])
    if not isinstance(response, dict):
        log.fail("response.object", "the body is not a JSON object", **ev, path=p)
        return
    if schemas is not None:
        check_output_items(response, log, schemas.profile, known_types=schemas.output_item_types,
                           evidence=ev, path_prefix=p)
    if response.get("object") != "response" or not isinstance(response.get("id"), str) \
            or not response.get("id"):
        log.fail("response.object", f"object={response.get('object')!r} id={response.get('id')!r}",
                 **ev, path=f"{p}.object", expected="response", actual=response.get("object"))
    status = response.get("status")
    if final:
        log.apply("response.status.valid")
        if status not in FINAL_STATUSES:
            log.fail("response.status.valid", f"status {status!r} is not a final status", **ev,
                     path=f"{p}.status", expected=list(FINAL_STATUSES), actual=status)
    details = response.get("incomplete_details")
    if status == "incomplete":
        if not isinstance(details, dict) or not details.get("reason"):
            log.fail("response.incomplete_details", "status is incomplete but "
                     "incomplete_details.reason is missing", **ev,
                     path=f"{p}.incomplete_details", actual=details)
    elif status in ("completed", "in_progress", "queued") and details is not None:
        log.fail("response.incomplete_details", f"status is {status} but incomplete_details is "
                 f"{details!r}", **ev, path=f"{p}.incomplete_details", expected=None,
                 actual=details)
    for i, item in enumerate(response.get("output") or []):
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for j, part in enumerate(item.get("content") or []):
            if isinstance(part, dict) and part.get("type") == "output_text" \
                    and not isinstance(part.get("text"), str):
                log.fail("response.output_text", "output_text part without string text", **ev,
                         path=f"{p}.output[{i}].content[{j}].text")
    if status in ("completed", "incomplete"):
        usage = response.get("usage")
        if not isinstance(usage, dict):
            log.fail("response.usage.consistent", "a finished response carries no usage", **ev,
                     path=f"{p}.usage")
        else:
            it, ot, tt = (usage.get(k) for k in ("input_tokens", "output_tokens", "total_tokens"))
            if all(isinstance(x, int) for x in (it, ot, tt)) and it + ot != tt:
                log.fail("response.usage.consistent", f"total_tokens {tt} != input_tokens {it} "
                         f"+ output_tokens {ot}", **ev, path=f"{p}.usage.total_tokens",
                         expected=it + ot, actual=tt)
            # A detail counts part of its total: cached input tokens are input tokens,
            # reasoning tokens are output tokens.
            for total, value, details, name in ((it, usage.get("input_tokens_details"),
                                                 "input_tokens_details", "cached_tokens"),
                                                (ot, usage.get("output_tokens_details"),
                                                 "output_tokens_details", "reasoning_tokens")):
                part = value.get(name) if isinstance(value, dict) else None
                if isinstance(part, int) and isinstance(total, int) and part > total:
                    log.fail("response.usage.consistent", f"{details}.{name} {part} exceeds "
                             f"the {total} tokens it is part of", **ev,
                             path=f"{p}.usage.{details}.{name}", expected=f"<= {total}",
                             actual=part)


# Open Responses' error types and their status codes (specification, "Error Types"). The
# specification says they "generally, but not always" map, so errors.type_status is a SHOULD;
# types outside this table (OpenAI's invalid_request_error, ...) are not judged by it.
SPEC_ERROR_STATUS = {"server_error": 500, "invalid_request": 400, "not_found": 404,
                     "model_error": 500, "too_many_requests": 429}


def check_error_body(body: Any, log: FindingLog, *, schemas: SchemaSet | None,
                     status: int | None = None) -> None:
    """An HTTP error body must be ``{"error": {"message", "type", "param", "code"}}``: all four
    keys present (param and code may be null), as OpenAI's service sends them. ``status``: the
    HTTP status it came with (or a WebSocket error event's ``status``), for errors.type_status."""
    log.apply("schema.error_envelope")
    err_type = body.get("error", {}).get("type") if isinstance(body, dict) and isinstance(
        body.get("error"), dict) else None
    if status is not None and err_type in SPEC_ERROR_STATUS:
        log.apply("errors.type_status")
        if SPEC_ERROR_STATUS[err_type] != status:
            log.fail("errors.type_status", f"error type {err_type!r} comes with status "
                     f"{status}; the specification maps it to {SPEC_ERROR_STATUS[err_type]}",
                     path="$.error.type", expected=SPEC_ERROR_STATUS[err_type], actual=status)
    if schemas is not None:
        for err in schemas.validate_root("ErrorEnvelope", body):
            log.fail("schema.error_envelope", err.message, path=err.path)
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        log.fail("schema.error_envelope", "the body has no `error` object", path="$.error",
                 actual=str(body)[:200])
        return
    missing = [k for k in ENVELOPE_KEYS if k not in err]
    if missing:
        log.fail("schema.error_envelope", f"error object lacks {missing}", path="$.error",
                 expected=list(ENVELOPE_KEYS), actual=sorted(err))
