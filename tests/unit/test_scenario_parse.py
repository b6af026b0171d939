"""harness/run/scenario.py: parsing of multi-step scenario keys and ``Step.render``."""

from __future__ import annotations

import json

import pytest

from harness.run import expect, scenario
from harness.run.scenario import ScenarioError, Step, parse_scenario
from harness.run.template import UnresolvedReference


def parse(raw):
    return parse_scenario(raw, default_id="state/example", source="example.yaml")


def two_steps(**second) -> dict:
    step2 = {"name": "get", "request": {"method": "get",
                                        "path": "/responses/{{steps.create.response.id}}"}}
    step2.update(second)
    return {"steps": [{"name": "create", "request": {"json": {"model": "{{model}}",
                                                             "input": "hi"}}}, step2]}


# -- accepted --------------------------------------------------------------------------------
def test_defaults():
    sc = parse({"steps": [{"request": {"json": {"model": "m", "input": "x"}}}]})
    (step,) = sc.steps
    assert (sc.id, sc.feature, sc.level, sc.refusable) == ("state/example", "state", "MUST", False)
    assert sc.targets == () and sc.model_for == {}
    assert (step.name, step.method, step.path, step.returns, step.poll) == (
        "step0", "POST", "/responses", "response", None)
    assert sc.transcript_name == "state__example.jsonl"


@pytest.mark.parametrize("returns", ["response", "item_list", "deleted", "error"])
def test_returns_values(returns):
    sc = parse(two_steps(returns=returns))
    assert sc.steps[1].returns == returns
    assert sc.steps[1].method == "GET"


def test_poll_targets_model_for():
    raw = two_steps(poll={"until_status": ["completed", "failed"], "interval_s": 0.1,
                          "deadline_s": 5})
    raw.update(targets=["reference"], model_for={"reference": "mock-slow"})
    sc = parse(raw)
    assert sc.steps[1].poll == {"until_status": ["completed", "failed"], "interval_s": 0.1,
                                "deadline_s": 5}
    assert sc.targets == ("reference",)
    assert sc.model_for == {"reference": "mock-slow"}


def test_new_expectation_keys_are_accepted():
    expect = {"same_as": "create", "tool_calls": {"min": 1, "max": 1, "names": ["f"]},
              "items": [{"type": "message", "role": "user"}], "body": {"deleted": True},
              "output_json": [{"role": "user", "content": "hi"}],
              "error_code": "previous_response_not_found",
              "response_status": ["completed", "incomplete"]}
    sc = parse(two_steps(expect=expect))
    assert sc.steps[1].expect == expect


def test_every_expectation_key_has_one_handler_and_is_documented():
    """The key list lives in harness/run/expect.py's tables; the scenario format's docstring
    documents each key, and the loader accepts exactly those."""
    assert not set(expect.WHEN_REFUSED) & set(expect.WHEN_ACCEPTED)
    assert expect.EXPECT_KEYS == {"status", *expect.WHEN_REFUSED, *expect.WHEN_ACCEPTED}
    documented = scenario.__doc__.split("expect:", 1)[1].split("returns:", 1)[0]
    assert [k for k in sorted(expect.EXPECT_KEYS) if f"{k}:" not in documented] == []
    for key in expect.EXPECT_KEYS:  # each is accepted on its own
        parse(two_steps(expect={key: "create" if key in ("same_as", "equivalent_to", "replays") else 1}))


def test_replays_names_an_earlier_step():
    assert parse(two_steps(expect={"replays": "create"})).steps[1].expect["replays"] == "create"
    with pytest.raises(scenario.ScenarioError, match="replays 'later' is not an earlier step"):
        parse(two_steps(expect={"replays": "later"}))


def test_same_as_and_equivalent_to_an_earlier_step():
    raw = two_steps(expect={"same_as": "create", "equivalent_to": "create"})
    assert parse(raw).steps[1].expect["same_as"] == "create"


# -- rejected --------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,fragment", [
    (two_steps(returns="json"), "returns 'json' is not one of"),
    (two_steps(returns=None), "returns None is not one of"),
    (two_steps(poll={"interval_s": 0.1}), "poll needs until_status"),
    (two_steps(poll={"until_status": []}), "poll needs until_status"),
    (two_steps(poll={"until_status": ["completed"], "every": 1}), "poll needs until_status"),
    (two_steps(poll="completed"), "poll needs until_status"),
    ({**two_steps(), "targets": "reference"}, "`targets` must be a list"),
    ({**two_steps(), "targets": ["reference", 3]}, "`targets` must be a list"),
    ({**two_steps(), "model_for": ["mock-slow"]}, "`model_for` must map"),
    ({**two_steps(), "target": ["reference"]}, "unknown keys ['target']"),
    (two_steps(expect={"same_ass": "create"}), "unknown expect keys ['same_ass']"),
    (two_steps(expect={"same_as": "nope"}), "same_as 'nope' is not an earlier step"),
    (two_steps(expect={"equivalent_to": "get"}), "equivalent_to 'get' is not an earlier step"),
    (two_steps(name="create"), "step name 'create' is used twice"),
    (two_steps(request={"json": {}, "body": "x"}), "either request.json or request.body"),
    (two_steps(request={"url": "/x"}), "unknown request keys ['url']"),
    (two_steps(wait=1), "step 1: must be a mapping"),
])
def test_rejected(raw, fragment):
    with pytest.raises(ScenarioError) as info:
        parse(raw)
    assert str(info.value).startswith("example.yaml: ")
    assert fragment in str(info.value)


def test_same_as_a_later_step_is_rejected():
    raw = two_steps()
    raw["steps"][0]["expect"] = {"same_as": "get"}
    with pytest.raises(ScenarioError, match="step create: same_as 'get' is not an earlier step"):
        parse(raw)


def test_same_as_itself_is_rejected():
    with pytest.raises(ScenarioError):
        parse(two_steps(expect={"same_as": "get"}))


# -- Step.render -----------------------------------------------------------------------------
CONTEXT = {"model": "gpt-test", "steps": {"create": {"response": {
    "id": "resp_1", "output": [{"type": "function_call", "call_id": "call_A"}]}}}}


def test_render_json_body():
    raw = two_steps()
    raw["steps"][1] = {"name": "next", "request": {
        "headers": {"X-Trace": "abc"},
        "json": {"model": "{{model}}", "previous_response_id": "{{steps.create.response.id}}",
                 "input": ["{{...steps.create.response.output}}",
                           {"type": "function_call_output", "output": "ok",
                            "call_id": "{{steps.create.response.output[0].call_id}}"}]}}}
    step = parse(raw).steps[1]
    path, body, headers, request = step.render(CONTEXT)
    assert path == "/responses"
    assert headers == {"x-trace": "abc", "content-type": "application/json"}
    assert request == {"model": "gpt-test", "previous_response_id": "resp_1",
                       "input": [{"type": "function_call", "call_id": "call_A"},
                                 {"type": "function_call_output", "output": "ok",
                                  "call_id": "call_A"}]}
    assert json.loads(body) == request
    assert step.json_body["model"] == "{{model}}"  # the step itself is not modified


def test_render_get_path_without_body():
    step = parse(two_steps()).steps[1]
    assert step.render(CONTEXT) == ("/responses/resp_1", b"", {}, None)
    assert not step.stream


def test_render_raw_body_keeps_content_type():
    step = Step("raw", "POST", "/responses", raw_body='{"model": "{{model}}"',
                headers={"Content-Type": "text/plain"})
    assert step.render(CONTEXT) == ("/responses", b'{"model": "gpt-test"',
                                    {"content-type": "text/plain"}, None)


def test_render_explicit_content_type_is_kept():
    step = Step("j", "POST", "/responses", json_body={"model": "{{model}}", "stream": True},
                headers={"Content-Type": "application/json; charset=utf-8"})
    path, body, headers, request = step.render(CONTEXT)
    assert headers == {"content-type": "application/json; charset=utf-8"}
    assert request == {"model": "gpt-test", "stream": True} and step.stream


def test_render_unresolved_reference_raises():
    step = parse(two_steps()).steps[1]
    with pytest.raises(UnresolvedReference, match="no 'create'"):
        step.render({"model": "m", "steps": {}})
