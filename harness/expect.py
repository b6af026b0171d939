"""Scenario expectations: what the server must guarantee for one step's request.

These complement the protocol checks (stream grammar, schemas): they compare the answer with
what the request forces, never with what a model chose to say.
"""

from __future__ import annotations

import json
from typing import Any

from harness.findings import FindingLog
from harness.scenario import Step
from harness.structured import output_text
from harness.tools import function_calls
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


def check_step(step: Step, exp: dict[str, Any], ex: Exchange, judged: Judged,
               log: FindingLog, earlier: dict[str, Judged]) -> None:
    """Judge one step against its expectations ``exp`` (references already resolved)."""
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
        if "error_code" in exp and ex.status >= 400:
            log.apply("errors.code")
            err = (judged.error or {}).get("error") if isinstance(judged.error, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            if code != exp["error_code"]:
                log.fail("errors.code", f"error.code is {code!r}, expected {exp['error_code']!r}",
                         path="$.error.code", expected=exp["error_code"], actual=code)
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
    if step.returns != "response":
        response = None
    if any(k in exp for k in ("response_status", "incomplete_reason", "terminal_event")):
        log.apply("response.status.expected")
        status = (response or {}).get("status")
        wanted = exp.get("response_status")
        if "response_status" in exp and status not in (wanted if isinstance(wanted, list)
                                                       else [wanted]):
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
    if "same_as" in exp:
        log.apply("state.retrieve.same")
        other = earlier[exp["same_as"]].response
        if response != other:
            keys = sorted(k for k in set(response or {}) | set(other or {})
                          if (response or {}).get(k, _MISSING) != (other or {}).get(k, _MISSING))
            log.fail("state.retrieve.same", f"differs from step {exp['same_as']!r} in {keys}",
                     path=f"$.{keys[0]}" if keys else "$", expected=None, actual=keys)
    if "tool_calls" in exp:
        _expect_tool_calls(exp["tool_calls"], response, log)
    if "items" in exp:
        log.apply("state.input_items")
        data = judged.body.get("data") if isinstance(judged.body, dict) else None
        want = exp["items"]
        if not isinstance(data, list) or len(data) != len(want) \
                or not all(_subset(w, d) for w, d in zip(want, data)):
            log.fail("state.input_items", f"input_items data is {_brief_items(data)}, expected "
                     f"{_brief_items(want)}", path="$.data", expected=want,
                     actual=_brief_items(data))
    if "body" in exp:
        check = {"deleted": "state.delete", "item_list": "state.input_items"}.get(
            step.returns, "response.echo")
        log.apply(check)
        if not _subset(exp["body"], judged.body):
            log.fail(check, f"body {str(judged.body)[:200]} does not contain {exp['body']!r}",
                     path="$", expected=exp["body"])
    if "output_json" in exp:
        log.apply("state.context")
        text = output_text(response or {})
        try:
            got = json.loads(text)
        except ValueError:
            got = _MISSING
        if got != exp["output_json"]:
            log.fail("state.context", f"the upstream saw {text[:300]}", path="$.output",
                     expected=exp["output_json"], actual=text[:500])
    if "output_items" in exp:
        _expect_output_items(exp["output_items"], response, log)
    if "fields_absent" in exp:
        _expect_fields_absent(exp["fields_absent"], response, log)
    if "listed_tools" in exp:
        _expect_listed_tools(exp["listed_tools"], response, log)
    ref = exp.get("equivalent_to")
    if ref is not None:
        log.apply("response.stream_equivalent")
        other = earlier[ref].response
        for problem in _differences(other, response):
            log.fail("response.stream_equivalent", f"differs from step {ref!r}: {problem}")


def _expect_tool_calls(want: dict[str, Any], response: dict[str, Any] | None,
                       log: FindingLog) -> None:
    log.apply("tools.choice")
    names = [it.get("name") for _, it in function_calls(response)]
    lo, hi = want.get("min", 0), want.get("max")
    if len(names) < lo or (hi is not None and len(names) > hi):
        log.fail("tools.choice", f"{len(names)} function calls {names}, expected between {lo} "
                 f"and {hi if hi is not None else 'any number'}", path="$.output",
                 expected={"min": lo, "max": hi}, actual=names)
    allowed = want.get("names")
    if allowed is not None and any(n not in allowed for n in names):
        log.fail("tools.choice", f"calls {names}, only {allowed} allowed", path="$.output",
                 expected=allowed, actual=names)


ANY = "*"  # in an output_items pattern: any present, non-null value


def _matches(pattern: Any, got: Any) -> bool:
    """``output_items`` patterns: objects are deep subsets, ``"*"`` is any non-null value, and a
    list pattern holds when each of its patterns matches some element of the list."""
    if pattern == ANY:
        return got is not None and got is not _MISSING
    if isinstance(pattern, dict):
        return isinstance(got, dict) and all(_matches(v, got.get(k, _MISSING)) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(got, list) and all(any(_matches(p, g) for g in got) for p in pattern)
    return _subset(pattern, got)


def _expect_output_items(patterns: list[dict], response: dict[str, Any] | None, log: FindingLog) -> None:
    """Each pattern matches an output item after the one the previous pattern matched."""
    log.apply("builtin.output.items")
    items = (response or {}).get("output") or []
    at = 0
    for n, pattern in enumerate(patterns):
        found = next((i for i in range(at, len(items)) if _matches(pattern, items[i])), None)
        if found is None:
            kinds = [it.get("type") for it in items if isinstance(it, dict)]
            same = [it for it in items[at:] if isinstance(it, dict) and it.get("type") == pattern.get("type")]
            seen = f"; the nearest {pattern.get('type')} is {str(same[0])[:300]}" if same else ""
            log.fail("builtin.output.items", f"no output item matches {pattern} after item {at} "
                     f"(output types: {kinds}){seen}", path=f"$.output[{at}:]", expected=pattern,
                     actual=kinds)
            return
        at = found + 1


def _field(item: dict, dotted: str) -> Any:
    node: Any = item
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _expect_fields_absent(spec: dict[str, list[str]], response: dict[str, Any] | None,
                          log: FindingLog) -> None:
    for index, item in enumerate((response or {}).get("output") or []):
        for dotted in spec.get(item.get("type"), []) if isinstance(item, dict) else []:
            log.apply("builtin.include.omitted")
            value = _field(item, dotted)
            if value not in (None, [], "", {}):
                log.fail("builtin.include.omitted", f"{item['type']}.{dotted} is present although "
                         "`include` did not ask for it", path=f"$.output[{index}].{dotted}",
                         actual=str(value)[:200])


def _expect_listed_tools(want: dict[str, Any], response: dict[str, Any] | None, log: FindingLog) -> None:
    log.apply("builtin.mcp.listed_tools")
    lists = [(i, it) for i, it in enumerate((response or {}).get("output") or [])
             if isinstance(it, dict) and it.get("type") == "mcp_list_tools"
             and it.get("server_label") == want.get("server_label")]
    if not lists:
        log.fail("builtin.mcp.listed_tools", f"no mcp_list_tools item for server_label "
                 f"{want.get('server_label')!r}", path="$.output", expected=want)
        return
    index, item = lists[-1]
    names = sorted(t.get("name") for t in item.get("tools") or [] if isinstance(t, dict))
    if names != sorted(want.get("names") or []):
        log.fail("builtin.mcp.listed_tools", f"lists {names}, allowed_tools permits "
                 f"{sorted(want.get('names') or [])}", path=f"$.output[{index}].tools",
                 expected=sorted(want.get("names") or []), actual=names)


def _brief_items(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    return [{k: v for k, v in it.items() if k in ("type", "role", "call_id", "id")}
            if isinstance(it, dict) else it for it in items]


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
        return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (want, got)) \
            and abs(want - got) < 1e-9
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
