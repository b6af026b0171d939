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

String values may use ``{{model}}``; it is replaced by the target's model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harness.findings import LEVELS

PLACEHOLDER_MODEL = "{{model}}"
_STEP_KEYS = {"name", "request", "expect"}
_REQUEST_KEYS = {"method", "path", "json", "body", "headers"}
_EXPECT_KEYS = {"status", "response_status", "incomplete_reason", "terminal_event", "echo",
                "error_param", "equivalent_to"}
_SCENARIO_KEYS = {"id", "title", "feature", "level", "refusable", "steps", "description"}


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

    @property
    def stream(self) -> bool:
        return isinstance(self.json_body, dict) and self.json_body.get("stream") is True

    def render(self, model: str) -> tuple[bytes, dict[str, str]]:
        """The request body and headers, with ``{{model}}`` filled in."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.raw_body is not None:
            return self.raw_body.replace(PLACEHOLDER_MODEL, model).encode("utf-8"), headers
        if self.json_body is None:
            return b"", headers
        headers.setdefault("content-type", "application/json")
        return json.dumps(_fill(self.json_body, model)).encode("utf-8"), headers


@dataclass(frozen=True, slots=True)
class Scenario:
    id: str
    title: str
    feature: str
    level: str
    refusable: bool
    steps: tuple[Step, ...]
    source: str = ""

    @property
    def transcript_name(self) -> str:
        return self.id.replace("/", "__") + ".jsonl"


def _fill(value: Any, model: str) -> Any:
    if isinstance(value, str):
        return value.replace(PLACEHOLDER_MODEL, model)
    if isinstance(value, list):
        return [_fill(v, model) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, model) for k, v in value.items()}
    return value


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
        if set(expect) - _EXPECT_KEYS:
            raise bad(f"step {n}: unknown expect keys {sorted(set(expect) - _EXPECT_KEYS)}")
        if "json" in req and "body" in req:
            raise bad(f"step {n}: give either request.json or request.body, not both")
        name = s.get("name", f"step{n}")
        if name in names:
            raise bad(f"step name {name!r} is used twice")
        ref = expect.get("equivalent_to")
        if ref is not None and ref not in names:
            raise bad(f"step {name}: equivalent_to {ref!r} is not an earlier step")
        names.add(name)
        steps.append(Step(name, req.get("method", "POST").upper(), req.get("path", "/responses"),
                          req.get("json"), req.get("body"), dict(req.get("headers") or {}),
                          dict(expect)))
    return Scenario(sid, raw.get("title", sid), raw.get("feature", sid.split("/")[0]), level,
                    bool(raw.get("refusable", False)), tuple(steps), source)


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
