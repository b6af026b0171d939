"""Several upstreams routed by model (reference_gateway/routing.py): two real mock upstreams."""

from __future__ import annotations

import httpx
import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import start_gateway, start_mock_upstream
from reference_gateway.routing import RoutesError, parse_routes

TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def two():
    with start_mock_upstream() as a, start_mock_upstream() as b:
        yield a, b


@pytest.fixture
def routed(two, monkeypatch):
    a, b = two
    monkeypatch.setenv("RESPCHECK_TEST_KEY_B", "key-of-b")
    routes = parse_routes({
        "upstreams": {"a": {"url": a.base_url}, "b": {"url": b.base_url, "api_key_env": "RESPCHECK_TEST_KEY_B"}},
        "routes": [{"model": "mock-1", "upstream": "a"}, {"model": "mock-reasoning", "upstream": "b"},
                   {"prefix": "mock-e", "upstream": "b"}]})
    server = start_gateway(GatewayConfig(upstream_url=a.base_url, routes=routes))
    with httpx.Client(base_url=server.base_url, timeout=TIMEOUT_S) as client:
        yield client, a, b
    server.close()


def sent(upstream) -> list[dict]:
    return list(upstream.app.state.requests)


def test_each_model_goes_to_its_upstream(routed):
    client, a, b = routed
    before_a, before_b = len(sent(a)), len(sent(b))
    assert client.post("/responses", json={"model": "mock-1", "input": "hi"}).status_code == 200
    with client.stream("POST", "/responses", json={"model": "mock-echo", "input": "hi", "stream": True}) as r:
        assert r.status_code == 200 and b"response.completed" in r.read()
    assert [m["model"] for m in sent(a)[before_a:]] == ["mock-1"]
    assert [m["model"] for m in sent(b)[before_b:]] == ["mock-echo"]


def test_an_unknown_model_is_404_before_any_upstream_hears_of_it(routed):
    client, a, b = routed
    before = len(sent(a)) + len(sent(b))
    for stream in (False, True):
        r = client.post("/responses", json={"model": "gpt-nothing", "input": "hi", "stream": stream})
        assert r.status_code == 404, r.text
        assert r.json()["error"] == {"message": "The model 'gpt-nothing' does not exist or you do not have access to it.",
                                     "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
    assert len(sent(a)) + len(sent(b)) == before


def test_models_lists_the_union(routed):
    client, _, _ = routed
    data = client.get("/models").json()["data"]
    ids = [m["id"] for m in data]
    # mock-1: listed by both upstreams, routed to a only; mock-reasoning: an exact route to b
    # (the mock lists only mock-1); prefix routes add what their upstream lists.
    assert ids == ["mock-1", "mock-reasoning"]
    assert data[1]["owned_by"] == "b"


def test_a_previous_response_continues_on_the_model_it_names(routed):
    client, a, b = routed
    first = client.post("/responses", json={"model": "mock-1", "input": "one"}).json()
    before_b = len(sent(b))
    second = client.post("/responses", json={"model": "mock-echo", "input": "two",
                                             "previous_response_id": first["id"]})
    assert second.status_code == 200 and len(sent(b)) == before_b + 1
    assert [m["content"] for m in sent(b)[-1]["messages"]] == ["one", first["output"][0]["content"][0]["text"], "two"]


@pytest.mark.parametrize("data, says", [
    ({"upstreams": {}, "routes": []}, "at least one"),
    ({"upstreams": {"a": {"url": "ftp://x"}}, "routes": [{"model": "m", "upstream": "a"}]}, "url"),
    ({"upstreams": {"a": {"url": "http://x/v1"}}, "routes": [{"model": "m", "upstream": "z"}]}, "upstream"),
    ({"upstreams": {"a": {"url": "http://x/v1"}}, "routes": [{"model": "m", "prefix": "m", "upstream": "a"}]}, "exactly one"),
    ({"upstreams": {"a": {"url": "http://x/v1", "api_key_env": "RESPCHECK_SURELY_UNSET"}},
      "routes": [{"model": "m", "upstream": "a"}]}, "RESPCHECK_SURELY_UNSET"),
    ({"upstreams": {"a": {"url": "http://x/v1", "api_kind": "soap"}}, "routes": [{"model": "m", "upstream": "a"}]}, "api_kind"),
])
def test_routes_file_errors_are_one_line(data, says):
    with pytest.raises(RoutesError) as info:
        parse_routes(data, source="routes.json")
    assert says in str(info.value) and "\n" not in str(info.value)


def test_the_key_never_shows(monkeypatch):
    monkeypatch.setenv("RESPCHECK_TEST_KEY", "sk-secret")
    routes = parse_routes({"upstreams": {"a": {"url": "http://127.0.0.1:1/v1", "api_key_env": "RESPCHECK_TEST_KEY"}},
                           "routes": [{"prefix": "", "upstream": "a"}]})
    assert routes.upstreams["a"].api_key == "sk-secret" and "sk-secret" not in repr(routes)
