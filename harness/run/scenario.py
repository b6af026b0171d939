"""Scenarios: the conformance cases as data (suites/scenarios/<feature>/<name>.yaml).

A scenario is one or more steps; each step is one HTTP request and what the server must
guarantee about the answer. Write scenarios so that a conformant server with ANY model passes:
bound lengths with ``max_output_tokens``, never assert on what the model says.

    id: core/string_input            # defaults to <feature dir>/<file stem>
    title: Plain string input
    feature: core
    level: MUST                      # the requirement level of the scenario's own expectations
    refusable: false                 # true: a clean 4xx envelope means `unsupported`, not `fail`
    steps:
      - name: create
        request:
          json: {model: "{{model}}", input: "Say hello", max_output_tokens: 64}
          # or: body: '<raw text>', headers: {content-type: text/plain}
          # method: POST, path: /responses (defaults)
        expect:
          status: 200                # an int, or "4xx"
          response_status: completed # completed | incomplete | failed
          incomplete_reason: max_output_tokens
          terminal_event: response.completed
          echo: {temperature: 0.5}   # fields the Response object must echo (deep subset)
          error_param: model         # the envelope's `param` must name this field
          equivalent_to: other_step  # same status / output shape / text as that step's response
          error_code: previous_response_not_found   # the envelope's `code`
          same_as: create            # the Response equals that step's final Response (GET)
          replays: create            # this GET ?stream=true[&starting_after=N] replays that
                                     # step's stream: judged as its continuation from N + 1
                                     # (stream.replay.start), its events equal the original's
          tool_calls: {min: 1, max: 1, names: [get_weather]}   # function_call items
          namespaced_calls: {namespace: crm, names: [lookup]}  # calls to a namespace tool's functions
          encrypted_reasoning: true  # every reasoning item carries encrypted_content
          items: [{type: message, role: user}]   # input_items list: data, in order (subset match)
          body: {deleted: true}      # deep subset of the raw JSON body
          output_json: [{role: user, content: "hi"}]   # the output text, parsed as JSON, equals
          output_items: [{type: mcp_list_tools}, {type: mcp_call, status: completed, output: "*"}]
                                     # output items matching these patterns, in this order
                                     # (deep subset; "*" = any non-null value; a list pattern
                                     # = each of its patterns matches some element)
          fields_absent: {code_interpreter_call: [outputs], web_search_call: [action.sources]}
                                     # absent, null or empty in every item of that type
          listed_tools: {server_label: respcheck, names: [add]}   # mcp_list_tools lists exactly
        returns: response            # response (default) | item_list | deleted | error
                                     # | compaction (POST /responses/compact's body)
                                     # | input_tokens (POST /responses/input_tokens's body)
        poll:                        # repeat this (GET) step until the status is final
          until_status: [completed, incomplete, failed, cancelled]
          interval_s: 0.2
          deadline_s: 30

Scenario-level: ``targets: [reference]`` runs it only against the embedded reference (e.g. one
that relies on the mock upstream's ``mock-echo`` model); ``model_for: {reference: mock-slow}``
sends another model to the named target (the embedded upstream's special models) and the
target's own model everywhere else. Expectations may hold references too.

Requests may hold references to the run so far (harness/run/template.py): ``{{model}}``,
``{{steps.create.response.id}}``, ``{{steps.create.response.output[type=function_call].call_id}}``,
and ``{{repeat:N:text}}`` (literal text N times, e.g. an input beyond any context window).

WebSocket mode (harness/run/ws_client.py; ``respcheck run --transport ws``): every step that is a
``POST /responses`` with a JSON body is sent as one ``response.create`` turn on the scenario's
socket (opened on its first turn, closed at the end), with ``stream`` removed (streaming is
implicit); every other step (GET, DELETE, /responses/compact, cancel) goes over HTTP as before.
A scenario that cannot be said over WebSocket (``Scenario.ws_unfit``: a raw body or custom
headers, ``background`` or ``stream_options``, ``equivalent_to``, a poll on a create, a
store:false response expected to be refused on the socket that cached it) is ``skip`` there.

    transport: ws                    # scenario-level: always over WebSocket, whatever --transport
    steps:
      - name: other
        socket: fresh                # step-level: this turn goes on a new socket named `fresh`
                                     # (default: `main`), which has none of main's cache
        keep_stream: true            # step-level: send the body's `stream` (and stream_options,
                                     # background) as written, to test that the server refuses it
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harness.core.findings import LEVELS
from harness.core.transcript import TRANSPORTS
from harness.run.expect import EXPECT_KEYS
from harness.run.template import fill

_STEP_KEYS = {"name", "request", "expect", "returns", "poll", "socket", "keep_stream"}
_REQUEST_KEYS = {"method", "path", "json", "body", "headers"}
_RETURNS = ("response", "item_list", "deleted", "error", "compaction", "input_tokens")
_POLL_KEYS = {"until_status", "interval_s", "deadline_s"}
_SCENARIO_KEYS = {"id", "title", "feature", "level", "refusable", "steps", "description",
                  "targets", "model_for", "transport"}
# The main socket of a scenario in WebSocket mode; a step's `socket: NAME` opens another one.
DEFAULT_SOCKET = "main"
# Body fields that do not exist over WebSocket (protocol rule 3): `stream` is implicit and is
# dropped from a turn; the other two change what the request means, so a scenario using them
# cannot be run there.
_WS_REFUSED_FIELDS = ("stream_options", "background")


class ScenarioError(Exception):
    """A scenario file is malformed; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    method: str
    path: str
    json_body: Any = None
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expect: dict[str, Any] = field(default_factory=dict)
    returns: str = "response"
    poll: dict[str, Any] | None = None
    socket: str = DEFAULT_SOCKET  # WebSocket mode: the scenario socket this turn goes on
    keep_stream: bool = False  # WebSocket mode: send `stream` etc. as written (to be refused)

    @property
    def stream(self) -> bool:
        return isinstance(self.json_body, dict) and self.json_body.get("stream") is True

    @property
    def is_create(self) -> bool:
        """A ``POST /responses`` with a JSON object body: a WebSocket turn in WebSocket mode."""
        return (self.method == "POST" and self.path == "/responses" and self.raw_body is None
                and isinstance(self.json_body, dict))

    def ws_frame(self, request: dict[str, Any]) -> str:
        """The ``response.create`` text frame of this step's rendered request body."""
        body = dict(request)
        if not self.keep_stream:
            body.pop("stream", None)
        return json.dumps({"type": "response.create", **body})

    def render(self, context: dict[str, Any]) -> tuple[str, bytes, dict[str, str], Any]:
        """(path, body, headers, request JSON) with references resolved against ``context``
        (``{"model": ..., "steps": {...}}``); raises template.UnresolvedReference."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = fill(self.path, context)
        if self.raw_body is not None:
            return path, fill(self.raw_body, context).encode("utf-8"), headers, None
        if self.json_body is None:
            return path, b"", headers, None
        headers.setdefault("content-type", "application/json")
        body = fill(self.json_body, context)
        return path, json.dumps(body).encode("utf-8"), headers, body


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    feature: str
    level: str
    refusable: bool
    steps: tuple[Step, ...]
    source: str = ""
    targets: tuple[str, ...] = ()  # empty: any target
    model_for: dict[str, str] = field(default_factory=dict)  # target name -> model
    transport: str | None = None  # "ws": always over WebSocket; None: as the run says

    @property
    def transcript_name(self) -> str:
        return self.id.replace("/", "__") + ".jsonl"

    def ws_unfit(self) -> str | None:
        """Why this scenario cannot be run in WebSocket mode, or None."""
        store_false: dict[str, str] = {}  # step -> its socket, for creates with store: false
        for step in self.steps:
            if step.method == "POST" and step.path == "/responses":
                if step.raw_body is not None:
                    return f"step {step.name!r} sends a raw body: a WebSocket turn is a JSON event"
                extra = {k for k in step.headers if k.lower() != "content-type"}
                ctype = {k.lower(): v for k, v in step.headers.items()}.get("content-type")
                if extra or (ctype and ctype.split(";")[0].strip() != "application/json"):
                    return (f"step {step.name!r} sets request headers: over WebSocket headers "
                            "exist only on the upgrade")
            if not step.is_create:
                continue
            used = [f for f in _WS_REFUSED_FIELDS if f in step.json_body]
            if used and not step.keep_stream:
                return (f"step {step.name!r} sends {used[0]}, which does not exist over "
                        "WebSocket (it is refused there)")
            if step.poll:
                return f"step {step.name!r} polls a create: a WebSocket turn is one answer"
            if "equivalent_to" in step.expect:
                return (f"step {step.name!r} compares a streamed with a non-streamed answer: "
                        "over WebSocket both are the same turn")
            prev = str(step.json_body.get("previous_response_id", ""))
            # (A WebSocket scenario's own expectations already say what the cache does.)
            for name, sock in store_false.items() if self.transport != "ws" else ():
                if f"steps.{name}." in prev and sock == step.socket \
                        and not _expects_success(step.expect.get("status", 200)):
                    return (f"step {step.name!r} expects the store:false response of step "
                            f"{name!r} refused, but over WebSocket the socket that created it "
                            "keeps it in its cache and continues it (protocol rule 8)")
            if step.json_body.get("store") is False:
                store_false[step.name] = step.socket
        return None


def _expects_success(status: Any) -> bool:
    if isinstance(status, list):
        return any(_expects_success(s) for s in status)
    return status == 200 or status == "2xx"


def parse_scenario(raw: Any, *, default_id: str, source: str) -> Scenario:
    def bad(msg: str) -> ScenarioError:
        return ScenarioError(f"{source}: {msg}")

    if not isinstance(raw, dict):
        raise bad("top level must be a mapping")
    unknown = set(raw) - _SCENARIO_KEYS
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}; allowed: {sorted(_SCENARIO_KEYS)}")
    sid = raw.get("id", default_id)
    level = raw.get("level", "MUST")
    if level not in LEVELS:
        raise bad(f"level {level!r} is not one of {LEVELS}")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise bad("`steps` must be a non-empty list")
    steps = []
    names = set()
    for n, s in enumerate(steps_raw):
        if not isinstance(s, dict) or set(s) - _STEP_KEYS:
            raise bad(f"step {n}: must be a mapping with keys {sorted(_STEP_KEYS)}")
        req = s.get("request") or {}
        expect = s.get("expect") or {}
        if set(req) - _REQUEST_KEYS:
            raise bad(f"step {n}: unknown request keys {sorted(set(req) - _REQUEST_KEYS)}")
        if set(expect) - EXPECT_KEYS:
            raise bad(f"step {n}: unknown expect keys {sorted(set(expect) - EXPECT_KEYS)}")
        if "json" in req and "body" in req:
            raise bad(f"step {n}: give either request.json or request.body, not both")
        name = s.get("name", f"step{n}")
        if name in names:
            raise bad(f"step name {name!r} is used twice")
        ref = expect.get("equivalent_to")
        if ref is not None and ref not in names:
            raise bad(f"step {name}: equivalent_to {ref!r} is not an earlier step")
        for key in ("same_as", "replays"):
            if key in expect and expect[key] not in names:
                raise bad(f"step {name}: {key} {expect[key]!r} is not an earlier step")
        names.add(name)
        returns = s.get("returns", "response")
        if returns not in _RETURNS:
            raise bad(f"step {name}: returns {returns!r} is not one of {_RETURNS}")
        poll = s.get("poll")
        if poll is not None and (not isinstance(poll, dict) or set(poll) - _POLL_KEYS
                                 or not poll.get("until_status")):
            raise bad(f"step {name}: poll needs until_status (keys {sorted(_POLL_KEYS)})")
        sock = s.get("socket", DEFAULT_SOCKET)
        if not isinstance(sock, str) or not sock:
            raise bad(f"step {name}: socket must be a non-empty name")
        keep_stream = s.get("keep_stream", False)
        if not isinstance(keep_stream, bool):
            raise bad(f"step {name}: keep_stream must be true or false")
        steps.append(Step(name, req.get("method", "POST").upper(), req.get("path", "/responses"),
                          req.get("json"), req.get("body"), dict(req.get("headers") or {}),
                          dict(expect), returns, poll, sock, keep_stream))
    targets = raw.get("targets") or ()
    if not isinstance(targets, list | tuple) or not all(isinstance(t, str) for t in targets):
        raise bad("`targets` must be a list of target names")
    model_for = raw.get("model_for") or {}
    if not isinstance(model_for, dict):
        raise bad("`model_for` must map target names to model names")
    transport = raw.get("transport")
    if transport is not None and transport not in TRANSPORTS:
        raise bad(f"transport {transport!r} is not one of {TRANSPORTS}")
    if transport == "http":
        transport = None  # the default: as the run says
    sc = Scenario(sid, raw.get("title", sid), raw.get("feature", sid.split("/")[0]), level,
                  bool(raw.get("refusable", False)), tuple(steps), source, tuple(targets),
                  dict(model_for), transport)
    if transport == "ws" and (why := sc.ws_unfit()):
        raise bad(f"transport ws, but {why}")
    return sc


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's messages span several lines (with a source excerpt); a reason is one line."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def default_suite_dir() -> Path:
    return Path(str(resources.files("suites").joinpath("scenarios")))


def load_scenarios(root: Path | None = None, *, only: set[str] | None = None) -> list[Scenario]:
    """Every scenario under ``root`` (default: the bundled suite), sorted by id."""
    root = root or default_suite_dir()
    if not root.is_dir():
        raise ScenarioError(f"scenario directory {root} does not exist")
    out: list[Scenario] = []
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root).with_suffix("")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: invalid YAML: {_one_line(exc)}") from None
        sc = parse_scenario(raw, default_id=rel.as_posix(), source=str(path))
        if sc.id in seen:
            raise ScenarioError(f"{path}: scenario id {sc.id!r} also used by {seen[sc.id]}")
        seen[sc.id] = str(path)
        out.append(sc)
    out.sort(key=lambda s: s.id)
    return out
