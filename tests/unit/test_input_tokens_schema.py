"""schema.input_tokens: the body of POST /v1/responses/input_tokens against the schema generated
from the SDK's InputTokenCountResponse (specs/generate.py), right and broken, in both profiles
(Open Responses has no such type: its profile falls back to openai's)."""

from __future__ import annotations

import json

import pytest

from harness.core.transcript import Exchange
from harness.core.verdict import judge_exchange


def exchange(body: object) -> Exchange:
    ex = Exchange("count", "POST", "http://127.0.0.1:1/v1/responses/input_tokens", {}, b"{}")
    ex.status = 200
    ex.response_headers = {"content-type": "application/json"}
    ex.chunks.append((0.0, json.dumps(body).encode()))
    return ex


@pytest.mark.parametrize("profile", ["openai", "openresponses"])
def test_a_count_validates(profile):
    judged = judge_exchange(exchange({"object": "response.input_tokens", "input_tokens": 12}), profile,
                            returns="input_tokens")
    assert judged.kind == "input_tokens" and "schema.input_tokens" in judged.log.applied
    assert judged.log.findings == []


@pytest.mark.parametrize("body", [
    {"object": "response.input_tokens"},                        # no count
    {"object": "response.input_tokens", "input_tokens": "12"},  # a string
    {"object": "input_tokens", "input_tokens": 12},             # the wrong object
    {"input_tokens": 12},                                       # no object
])
def test_broken_counts_fail(body):
    judged = judge_exchange(exchange(body), "openai", returns="input_tokens")
    assert {f.check for f in judged.log.findings} == {"schema.input_tokens"}
