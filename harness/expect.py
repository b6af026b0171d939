"""Scenario expectations: what the server must guarantee for one step's request.

These complement the protocol checks (stream grammar, schemas): they compare the answer with
what the request forces, never with what a model chose to say.
"""

from __future__ import annotations

from typing import Any

from harness.findings import FindingLog
from harness.scenario import Step
from harness.transcript import Exchange
from harness.verdict import Judged

# Fields compared by response.stream_equivalent: what the same request must yield whether
# streamed or not. Never the text: a sampled model may say something else each time.
_EQUIVALENT_FIELDS = ("status", "incomplete_details", "model", "instructions", "temperature",
                      "top_p", "max_output_tokens", "metadata", "tool_choice", "store")


def status_matches(expected: Any, actual: int) -> bool:
    if isinstance(expected, int):
        return actual == expected
    if isinstance(expected, str) and len(expected) == 3 and expected.endswith("xx"):
        return str(actual)[0] == expected[0]
    if isinstance(expected, list):
        return any(status_matches(e, actual) for e in expected)
    return False


def is_clean_refusal(ex: Exchange, judged: Judged) -> bool:
    """A 4xx with a well-formed error envelope: the server honestly refused."""
    return (ex.status is not None and 400 <= ex.status < 500 and judged.kind == "error"
            and not judged.log.failed("schema.error_envelope"))


def check_step(step: Step, ex: Exchange, judged: Judged, log: FindingLog,
               earlier: dict[str, Judged]) -> None:
    exp = step.expect
    if ex.status is None:
        return  # transport.reachable already failed; nothing else can be judged
    want = exp.get("status", 200)
    if status_matches(want, 200):
        log.apply("response.accepted")
        if not 200 <= ex.status < 300:
            err = (judged.error or {}).get("error") if judged.error else None
            msg = err.get("message") if isinstance(err, dict) else None
            log.fail("response.accepted", f"a valid request got HTTP {ex.status}"
                     + (f": {msg}" if msg else ""), expected=want, actual=ex.status)
            return
    else:
        log.apply("errors.status")
        if step.stream:
            log.apply("errors.not_streamed")
            if judged.kind == "stream":
                log.fail("errors.not_streamed", "an invalid request was answered with an "
                         f"HTTP {ex.status} event stream instead of an HTTP error",
                         expected=want, actual=ex.status)
        if not status_matches(want, ex.status):
            log.fail("errors.status", f"expected HTTP {want}, got {ex.status}", expected=want,
                     actual=ex.status)
        if "error_param" in exp and ex.status >= 400:
            log.apply("errors.param")
            err = (judged.error or {}).get("error") if isinstance(judged.error, dict) else None
            param = err.get("param") if isinstance(err, dict) else None
            if param != exp["error_param"]:
                log.fail("errors.param", f"error.param is {param!r}, expected "
                         f"{exp['error_param']!r}", path="$.error.param",
                         expected=exp["error_param"], actual=param)
        return

    response = judged.response
    if any(k in exp for k in ("response_status", "incomplete_reason", "terminal_event")):
        log.apply("response.status.expected")
        status = (response or {}).get("status")
        if "response_status" in exp and status != exp["response_status"]:
            log.fail("response.status.expected", f"response status is {status!r}",
                     path="$.status", expected=exp["response_status"], actual=status)
        if "incomplete_reason" in exp:
            reason = ((response or {}).get("incomplete_details") or {}).get("reason")
            if reason != exp["incomplete_reason"]:
                log.fail("response.status.expected", f"incomplete_details.reason is {reason!r}",
                         path="$.incomplete_details.reason", expected=exp["incomplete_reason"],
                         actual=reason)
        if "terminal_event" in exp and judged.kind == "stream" \
                and judged.terminal_type != exp["terminal_event"]:
            log.fail("response.status.expected", f"terminal event is {judged.terminal_type!r}",
                     expected=exp["terminal_event"], actual=judged.terminal_type)
    if "echo" in exp:
        log.apply("response.echo")
        for key, value in exp["echo"].items():
            got = (response or {}).get(key, _MISSING)
            if not _subset(value, got):
                log.fail("response.echo", f"{key} is {_show(got)}, the request sent {value!r}",
                         path=f"$.{key}", expected=value, actual=None if got is _MISSING else got)
    ref = exp.get("equivalent_to")
    if ref is not None:
        log.apply("response.stream_equivalent")
        other = earlier[ref].response
        for problem in _differences(other, response):
            log.fail("response.stream_equivalent", f"differs from step {ref!r}: {problem}")


class _Missing:
    def __repr__(self) -> str:
        return "absent"


_MISSING = _Missing()


def _show(v: Any) -> str:
    return "absent" if v is _MISSING else repr(v)


def _subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(_subset(v, got.get(k, _MISSING)) for k, v in want.items())
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and abs(want - got) < 1e-9
    return want == got


def _shape(response: dict[str, Any]) -> list[Any]:
    out = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            out.append(None)
            continue
        parts = [p.get("type") for p in item.get("content") or [] if isinstance(p, dict)]
        out.append((item.get("type"), item.get("role"), item.get("status"), parts))
    return out


def _differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    if a is None or b is None:
        return ["one of the two produced no Response object"]
    out = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in _EQUIVALENT_FIELDS if a.get(k) != b.get(k)]
    if _shape(a) != _shape(b):
        out.append(f"output shape {_shape(a)} vs {_shape(b)}")
    missing = sorted(set(a) ^ set(b))
    if missing:
        out.append(f"fields present in only one: {missing}")
    return out
