"""The acceptance policy (reference_gateway/policy.py): complete against the pinned SDK, the
README's table generated from it, and the gateway doing what each row says."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from openai.types.responses.response_create_params import ResponseCreateParamsBase
from openai.types.responses.response_includable import ResponseIncludable
from openai.types.responses.tool_param import ToolParam

from reference_gateway import policy
from reference_gateway.tools import WEB_SEARCH_TYPES

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- policy-table:start -->", "<!-- policy-table:end -->"
BASE = {"model": "mock-1", "input": "hello", "max_output_tokens": 32}


def sdk_tool_types() -> set[str]:
    kinds = set()
    for param in typing.get_args(ToolParam):
        hint = typing.get_type_hints(param, include_extras=True)["type"]
        while typing.get_origin(hint) is not typing.Literal:
            hint = typing.get_args(hint)[0]
        kinds |= set(typing.get_args(hint))
    return kinds


def test_every_sdk_parameter_include_value_and_tool_type_has_a_row():
    top = {r.field.split(".")[0].split("[")[0] for r in policy.RULES}
    missing = set(ResponseCreateParamsBase.__annotations__) - top
    assert not missing, f"parameters with no row in policy.RULES: {sorted(missing)}"
    included = {r.value for r in policy.RULES if r.field == "include[]"}
    assert included == set(typing.get_args(ResponseIncludable))
    kinds = {r.value.split(",")[0].split(" ")[0] for r in policy.RULES if r.field == "tools[].type"}
    if "web_search" in kinds:
        kinds |= set(WEB_SEARCH_TYPES)
    assert sdk_tool_types() <= kinds, sorted(sdk_tool_types() - kinds)
    assert all(r.verdict in policy.VERDICTS and r.why for r in policy.RULES)


def test_the_readme_table_is_the_policy_table():
    text = README.read_text()
    assert START in text and END in text, "README lacks the policy table markers"
    table = text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert table == policy.markdown(), ("README's policy table differs from reference_gateway/policy.py: "
                                        "regenerate it with `python -m reference_gateway.policy`")


def test_the_readme_check_fails_on_a_changed_row(monkeypatch):
    changed = (policy.Rule("client_metadata", None, policy.REFUSED, "x"),) + policy.RULES[1:]
    monkeypatch.setattr(policy, "RULES", changed)
    table = README.read_text().split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert table != policy.markdown()


def test_params_takes_its_refusals_from_the_table():
    from reference_gateway import params

    assert params.UNSUPPORTED_PARAMS == policy.refused_parameters() >= {"conversation", "prompt"}
    assert "client_metadata" in params.KNOWN_PARAMS and "client_metadata" not in ResponseCreateParamsBase.__annotations__
    assert set(params.INCLUDABLE) == {r.value for r in policy.RULES if r.field == "include[]" and r.verdict != "refused"}


PROBED = [r for r in policy.RULES if r.probe is not None]


def row_id(rule: policy.Rule) -> str:
    return re.sub(r"\W+", "_", f"{rule.field}_{rule.value or ''}").strip("_")


@pytest.mark.parametrize("rule", PROBED, ids=row_id)
def test_the_gateway_does_what_the_row_says(client, rule):
    r = client.post("/responses", json={**BASE, **rule.probe})
    if rule.verdict == policy.REFUSED:
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "unsupported_parameter", r.text
    else:
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("completed", "queued", "incomplete"), r.text


def test_every_verdict_is_probed():
    assert {r.verdict for r in PROBED} == set(policy.VERDICTS)


def test_honoured_and_ignored_hints_are_echoed_as_openai_echoes_them(client):
    r = client.post("/responses", json={**BASE, "reasoning": {"effort": "low", "summary": "detailed"},
                                        "service_tier": "priority", "client_metadata": {"a": "b"},
                                        "prompt_cache_key": "k", "safety_identifier": "s"})
    body = r.json()
    assert body["reasoning"] == {"effort": "low", "summary": "detailed"}
    assert body["service_tier"] == "default" and "client_metadata" not in body
    assert (body["prompt_cache_key"], body["safety_identifier"]) == ("k", "s")
