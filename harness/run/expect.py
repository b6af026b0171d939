"""Scenario expectations: what the server must guarantee for one step's request.

These complement the protocol checks (stream grammar, schemas): they compare the answer with
what the request forces, never with what a model chose to say.

An expectation is a key of a step's ``expect`` mapping (the list is in harness/run/scenario.py's
docstring) and a handler here, one per key, in two tables: ``WHEN_REFUSED`` for a step that
expects an HTTP error (judged only when one came), ``WHEN_ACCEPTED`` for a step that expects
2xx. ``status`` decides which table applies and is judged by ``check_step`` itself.
``EXPECT_KEYS`` is the one list of keys; the scenario loader refuses any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.core.findings import FindingLog
from harness.core.structured import output_text
from harness.core.tools import function_calls
from harness.core.transcript import Exchange
from harness.core.verdict import Judged

# Fields compared by response.stream_equivalent: what the same request must yield whether
# streamed or not. Never the text: a sampled model may say something else each time.
_EQUIVALENT_FIELDS = ("status", "incomplete_details", "model", "instructions", "temperature",
                      "top_p", "max_output_tokens", "metadata", "tool_choice", "store")

ANY = "*"  # in an output_items pattern: any present, non-null value


class StepShape(Protocol):
    """What the expectations read of a scenario step (harness/run/scenario.py ``Step``)."""

    stream: bool
    returns: str


@dataclass(frozen=True, slots=True)
class Answer:
    """One step's answer, as every expectation handler sees it."""

    step: StepShape
    exchange: Exchange
    judged: Judged
    log: FindingLog
    earlier: dict[str, Judged]  # the judged answers of the steps before, by name

    @property
    def response(self) -> dict[str, Any] | None:
        """The Response object, when the step returns one (not a list, a deletion, ...)."""
        return self.judged.response if self.step.returns == "response" else None

    def error_field(self, name: str) -> Any:
        """``message``, ``code`` or ``param`` of the error envelope's ``error`` object, or None."""
        error = self.judged.error.get("error") if isinstance(self.judged.error, dict) else None
        return error.get(name) if isinstance(error, dict) else None


Handler = Callable[[Any, Answer], None]  # (the expectation's value, the answer)


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


# -- a step that expects an HTTP error -------------------------------------------------------


def _envelope_field(name: str, check: str) -> Handler:
    """The handler of an expectation on one field of the error envelope (``code``, ``param``)."""

    def expect(want: Any, a: Answer) -> None:
        a.log.apply(check)
        got = a.error_field(name)
        if got != want:
            a.log.fail(check, f"error.{name} is {got!r}, expected {want!r}", path=f"$.error.{name}",
                       expected=want, actual=got)

    return expect


# -- a step that expects 2xx -----------------------------------------------------------------


def _response_status(want: Any, a: Answer) -> None:
    a.log.apply("response.status.expected")
    status = (a.response or {}).get("status")
    if status not in (want if isinstance(want, list) else [want]):
        a.log.fail("response.status.expected", f"response status is {status!r}",
                   path="$.status", expected=want, actual=status)


def _incomplete_reason(want: Any, a: Answer) -> None:
    a.log.apply("response.status.expected")
    reason = ((a.response or {}).get("incomplete_details") or {}).get("reason")
    if reason != want:
        a.log.fail("response.status.expected", f"incomplete_details.reason is {reason!r}",
                   path="$.incomplete_details.reason", expected=want, actual=reason)


def _terminal_event(want: Any, a: Answer) -> None:
    a.log.apply("response.status.expected")
    if a.judged.kind == "stream" and a.judged.terminal_type != want:
        a.log.fail("response.status.expected", f"terminal event is {a.judged.terminal_type!r}",
                   expected=want, actual=a.judged.terminal_type)


def _echo(fields: dict[str, Any], a: Answer) -> None:
    a.log.apply("response.echo")
    for key, value in fields.items():
        got = (a.response or {}).get(key, _MISSING)
        if not _subset(value, got):
            a.log.fail("response.echo", f"{key} is {_show(got)}, the request sent {value!r}",
                       path=f"$.{key}", expected=value, actual=None if got is _MISSING else got)


def _same_as(name: str, a: Answer) -> None:
    a.log.apply("state.retrieve.same")
    response, other = a.response, a.earlier[name].response
    if response != other:
        keys = sorted(k for k in set(response or {}) | set(other or {})
                      if (response or {}).get(k, _MISSING) != (other or {}).get(k, _MISSING))
        a.log.fail("state.retrieve.same", f"differs from step {name!r} in {keys}",
                   path=f"$.{keys[0]}" if keys else "$", expected=None, actual=keys)


def _replays(name: str, a: Answer) -> None:
    """A replay (``GET ?stream=true[&starting_after=N]``) repeats the stream of step ``name``:
    each replayed event equals the original event with its sequence_number, and a replay of a
    finished stream goes on to its last event. Where it starts is stream.replay.start's."""
    a.log.apply("stream.replay.matches")
    earlier = a.earlier.get(name)
    original = {e.get("sequence_number"): e for e in (earlier.events or [])} if earlier else {}
    replayed = a.judged.events or []
    if a.judged.kind != "stream":
        a.log.fail("stream.replay.matches", f"the replay of step {name!r} is not an event stream "
                   f"({a.judged.kind})", expected="text/event-stream")
        return
    for index, event in enumerate(replayed):
        seq = event.get("sequence_number")
        if seq not in original:
            if earlier is not None and earlier.terminal_type is not None:
                a.log.fail("stream.replay.matches", f"replayed event {index} has sequence_number {seq!r}, "
                           f"which step {name!r}'s stream does not have", frame=index, actual=seq)
                return
            continue  # the original was cut before it: nothing to compare with
        if event != original[seq]:
            keys = sorted(k for k in set(event) | set(original[seq]) if event.get(k) != original[seq].get(k))
            a.log.fail("stream.replay.matches", f"replayed event {seq} ({event.get('type')}) differs from the "
                       f"original in {keys}", frame=index, sequence_number=seq, path=f"$.{keys[0]}" if keys else "$")
            return
    if earlier is not None and earlier.terminal_type is not None and earlier.events:
        last = earlier.events[-1].get("sequence_number")
        got = replayed[-1].get("sequence_number") if replayed else None
        if replayed and got != last:
            a.log.fail("stream.replay.matches", f"the replay stops at sequence_number {got!r}; the original "
                       f"went on to {last!r}", expected=last, actual=got)


def _tool_calls(want: dict[str, Any], a: Answer) -> None:
    a.log.apply("tools.choice")
    names = [it.get("name") for _, it in function_calls(a.response)]
    lo, hi = want.get("min", 0), want.get("max")
    if len(names) < lo or (hi is not None and len(names) > hi):
        a.log.fail("tools.choice", f"{len(names)} function calls {names}, expected between {lo} "
                   f"and {hi if hi is not None else 'any number'}", path="$.output",
                   expected={"min": lo, "max": hi}, actual=names)
    allowed = want.get("names")
    if allowed is not None and any(n not in allowed for n in names):
        a.log.fail("tools.choice", f"calls {names}, only {allowed} allowed", path="$.output",
                   expected=allowed, actual=names)


def _namespaced_calls(want: dict[str, Any], a: Answer) -> None:
    """Every function_call is to a function of namespace ``want["namespace"]`` (one of
    ``want["names"]``), named as OpenAI returns it: ``name`` the function's own, ``namespace``
    set (the SDK's ResponseFunctionToolCall.namespace); at least one call."""
    a.log.apply("tools.namespace.call")
    calls = function_calls(a.response)
    if not calls:
        a.log.fail("tools.namespace.call", "no function_call in the output", path="$.output", expected=want)
    for index, item in calls:
        got = {"namespace": item.get("namespace"), "name": item.get("name")}
        if got["namespace"] != want["namespace"] or got["name"] not in want["names"]:
            a.log.fail("tools.namespace.call", f"function_call {got} is not a call to one of {want['names']} "
                       f"in namespace {want['namespace']!r}", path=f"$.output[{index}]", expected=want, actual=got)


def _encrypted_reasoning(want: bool, a: Answer) -> None:
    """With ``include: ["reasoning.encrypted_content"]``, every reasoning item carries an opaque
    ``encrypted_content`` string (none made: nothing to judge)."""
    if not want:
        return
    a.log.apply("state.reasoning.encrypted_content")
    for index, item in enumerate((a.response or {}).get("output") or []):
        if isinstance(item, dict) and item.get("type") == "reasoning":
            blob = item.get("encrypted_content")
            if not isinstance(blob, str) or not blob:
                a.log.fail("state.reasoning.encrypted_content", "a reasoning item has no encrypted_content although "
                           "include asked for it", path=f"$.output[{index}].encrypted_content", actual=blob)


def _items(want: list[Any], a: Answer) -> None:
    a.log.apply("state.input_items")
    data = a.judged.body.get("data") if isinstance(a.judged.body, dict) else None
    if not isinstance(data, list) or len(data) != len(want) \
            or not all(_subset(w, d) for w, d in zip(want, data)):
        a.log.fail("state.input_items", f"input_items data is {_brief_items(data)}, expected "
                   f"{_brief_items(want)}", path="$.data", expected=want, actual=_brief_items(data))


def _body(want: Any, a: Answer) -> None:
    check = {"deleted": "state.delete", "item_list": "state.input_items"}.get(a.step.returns, "response.echo")
    a.log.apply(check)
    if not _subset(want, a.judged.body):
        a.log.fail(check, f"body {str(a.judged.body)[:200]} does not contain {want!r}", path="$", expected=want)


def _output_json(want: Any, a: Answer) -> None:
    a.log.apply("state.context")
    text = output_text(a.response or {})
    try:
        got = json.loads(text)
    except ValueError:
        got = _MISSING
    if got != want:
        a.log.fail("state.context", f"the upstream saw {text[:300]}", path="$.output", expected=want,
                   actual=text[:500])


def _output_items(patterns: list[dict], a: Answer) -> None:
    """Each pattern matches an output item after the one the previous pattern matched."""
    a.log.apply("builtin.output.items")
    items = (a.response or {}).get("output") or []
    at = 0
    for pattern in patterns:
        found = next((i for i in range(at, len(items)) if _matches(pattern, items[i])), None)
        if found is None:
            kinds = [it.get("type") for it in items if isinstance(it, dict)]
            same = [it for it in items[at:] if isinstance(it, dict) and it.get("type") == pattern.get("type")]
            seen = f"; the nearest {pattern.get('type')} is {str(same[0])[:300]}" if same else ""
            a.log.fail("builtin.output.items", f"no output item matches {pattern} after item {at} "
                       f"(output types: {kinds}){seen}", path=f"$.output[{at}:]", expected=pattern,
                       actual=kinds)
            return
        at = found + 1


def _fields_absent(spec: dict[str, list[str]], a: Answer) -> None:
    for index, item in enumerate((a.response or {}).get("output") or []):
        for dotted in spec.get(item.get("type"), []) if isinstance(item, dict) else []:
            a.log.apply("builtin.include.omitted")
            value = _field(item, dotted)
            if value not in (None, [], "", {}):
                a.log.fail("builtin.include.omitted", f"{item['type']}.{dotted} is present although "
                           "`include` did not ask for it", path=f"$.output[{index}].{dotted}",
                           actual=str(value)[:200])


def _listed_tools(want: dict[str, Any], a: Answer) -> None:
    a.log.apply("builtin.mcp.listed_tools")
    lists = [(i, it) for i, it in enumerate((a.response or {}).get("output") or [])
             if isinstance(it, dict) and it.get("type") == "mcp_list_tools"
             and it.get("server_label") == want.get("server_label")]
    if not lists:
        a.log.fail("builtin.mcp.listed_tools", f"no mcp_list_tools item for server_label "
                   f"{want.get('server_label')!r}", path="$.output", expected=want)
        return
    index, item = lists[-1]
    names = sorted(t.get("name") for t in item.get("tools") or [] if isinstance(t, dict))
    allowed = sorted(want.get("names") or [])
    if names != allowed:
        a.log.fail("builtin.mcp.listed_tools", f"lists {names}, allowed_tools permits {allowed}",
                   path=f"$.output[{index}].tools", expected=allowed, actual=names)


def _equivalent_to(name: str | None, a: Answer) -> None:
    if name is None:
        return
    a.log.apply("response.stream_equivalent")
    for problem in _differences(a.earlier[name].response, a.response):
        a.log.fail("response.stream_equivalent", f"differs from step {name!r}: {problem}")


# The expectations of a step whose ``status`` is an error, judged when the answer is >= 400.
WHEN_REFUSED: dict[str, Handler] = {
    "error_code": _envelope_field("code", "errors.code"),     # the envelope's ``code``
    "error_param": _envelope_field("param", "errors.param"),  # ``param`` names this field
}
# The expectations of a step that expects 2xx, judged in this order.
WHEN_ACCEPTED: dict[str, Handler] = {
    "response_status": _response_status,      # completed | incomplete | failed (or a list)
    "incomplete_reason": _incomplete_reason,  # incomplete_details.reason
    "terminal_event": _terminal_event,        # the stream's terminal event type
    "echo": _echo,                            # fields the Response must echo (deep subset)
    "same_as": _same_as,                      # equals that earlier step's Response (GET)
    "replays": _replays,                      # a GET ?stream=true replays that step's stream
    "tool_calls": _tool_calls,                # {min, max, names} of function_call items
    "namespaced_calls": _namespaced_calls,    # {namespace, names}: every call is to one of them
    "encrypted_reasoning": _encrypted_reasoning,  # every reasoning item has encrypted_content
    "items": _items,                          # the input_items list's data, in order
    "body": _body,                            # deep subset of the raw JSON body
    "output_json": _output_json,              # the output text, parsed as JSON, equals
    "output_items": _output_items,            # output items matching patterns, in order
    "fields_absent": _fields_absent,          # absent/null/empty in every item of a type
    "listed_tools": _listed_tools,            # an mcp_list_tools lists exactly these
    "equivalent_to": _equivalent_to,          # same status / shape as that step's Response
}
# Every key a step's ``expect`` may hold: ``status`` (an int, "4xx", or a list of them) and
# the two tables' keys. The scenario loader refuses any other.
EXPECT_KEYS = frozenset({"status", *WHEN_REFUSED, *WHEN_ACCEPTED})


def check_step(step: StepShape, exp: dict[str, Any], ex: Exchange, judged: Judged,
               log: FindingLog, earlier: dict[str, Judged]) -> None:
    """Judge one step against its expectations ``exp`` (references already resolved)."""
    if ex.status is None:
        return  # transport.reachable already failed; nothing else can be judged
    answer = Answer(step, ex, judged, log, earlier)
    want = exp.get("status", 200)
    if status_matches(want, 200):
        log.apply("response.accepted")
        if not 200 <= ex.status < 300:
            message = answer.error_field("message")
            log.fail("response.accepted", f"a valid request got HTTP {ex.status}"
                     + (f": {message}" if message else ""), expected=want, actual=ex.status)
            return
        for key, handler in WHEN_ACCEPTED.items():
            if key in exp:
                handler(exp[key], answer)
        return
    log.apply("errors.status")
    if step.stream:
        log.apply("errors.not_streamed")
        if judged.kind == "stream":
            log.fail("errors.not_streamed", "an invalid request was answered with an "
                     f"HTTP {ex.status} event stream instead of an HTTP error", expected=want, actual=ex.status)
    if not status_matches(want, ex.status):
        log.fail("errors.status", f"expected HTTP {want}, got {ex.status}", expected=want, actual=ex.status)
    if ex.status >= 400:
        for key, handler in WHEN_REFUSED.items():
            if key in exp:
                handler(exp[key], answer)


# -- matching ----------------------------------------------------------------------------------


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


def _field(item: dict, dotted: str) -> Any:
    node: Any = item
    for key in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
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
