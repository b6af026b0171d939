"""API keys and tenants: 401 envelopes, one key never sees another key's responses; and the
gateway never fetches a URL a client sends."""

from __future__ import annotations

import sqlite3

import httpx
import openai
import pytest

from reference_gateway.__main__ import parser
from reference_gateway.auth import Keyring, read_keys_file, tenant_of
from reference_gateway.config import GatewayConfig
from reference_gateway.errors import APIError
from reference_gateway.store_contract import ANONYMOUS_OWNER

KEY_A = "sk-test-alice-0123456789abcdef0123456789abcdef"
KEY_B = "sk-test-bob-fedcba9876543210fedcba9876543210"
OK = {"model": "mock-1", "input": "hello"}


def as_key(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_gateway):
    """A gateway requiring KEY_A or KEY_B; the client sends no key of its own."""
    return make_gateway(api_keys=(KEY_A, KEY_B))


def assert_401(r: httpx.Response) -> dict:
    assert r.status_code == 401, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["param"], body["error"]["code"]) == (
        "invalid_request_error", None, "invalid_api_key")
    assert r.headers["www-authenticate"].startswith("Bearer")
    return body["error"]


def test_missing_key_is_401_on_every_route(keyed):
    for method, path in [("POST", "/responses"), ("GET", "/responses/resp_x"), ("DELETE", "/responses/resp_x"),
                         ("GET", "/responses/resp_x/input_items"), ("POST", "/responses/resp_x/cancel"),
                         ("GET", "/models"), ("GET", "/no-such-route")]:
        error = assert_401(keyed.request(method, path, json=OK if method == "POST" else None))
        assert "didn't provide an API key" in error["message"], (method, path)


def test_wrong_key_is_401_and_not_echoed(keyed):
    wrong = "sk-test-mallory-00000000000000000000000000000"
    for key in (wrong, KEY_A + "x", KEY_A[:-1], KEY_A.upper()):
        error = assert_401(keyed.post("/responses", json=OK, headers=as_key(key)))
        assert error["message"] == "Incorrect API key provided."
        assert key not in error["message"] and key[-4:] not in error["message"]


@pytest.mark.parametrize("header", [
    b"Basic " + KEY_A.encode(),      # another scheme
    KEY_A.encode(),                  # no scheme
    b"Bearer",                       # no credentials
    b"Bearer:" + KEY_A.encode(),
    b"Token " + KEY_A.encode(),
    b"Bearer " + KEY_A.encode() + b" extra",  # not one token: not the key
    "Bearer sk-caf\u00e9".encode("latin-1"),  # not visible ASCII
])
def test_malformed_authorization_is_401(keyed, header):
    assert_401(keyed.post("/responses", json=OK, headers=[(b"authorization", header)]))


def test_right_key_passes_scheme_case_insensitive(keyed):
    for header in (f"Bearer {KEY_A}", f"bearer {KEY_A}", f"BEARER  {KEY_B}"):
        r = keyed.post("/responses", json=OK, headers={"authorization": header})
        assert r.status_code == 200, (header, r.text)


def test_health_is_open_without_key(keyed):
    r = keyed.get(str(keyed.base_url).removesuffix("/v1/") + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def not_found_envelope(r: httpx.Response, response_id: str) -> dict:
    """The 404 body with the id blanked, so a foreign id's answer compares with an unknown one's."""
    assert r.status_code == 404, r.text
    body = r.json()
    body["error"]["message"] = body["error"]["message"].replace(response_id, "ID")
    return body


def test_another_key_cannot_read_list_delete_or_continue(keyed):
    mine = keyed.post("/responses", json=OK, headers=as_key(KEY_A)).json()
    unknown = "resp_" + "0" * 48
    theirs = as_key(KEY_B)
    for method, suffix in [("GET", ""), ("GET", "/input_items"), ("DELETE", "")]:
        foreign = keyed.request(method, f"/responses/{mine['id']}{suffix}", headers=theirs)
        missing = keyed.request(method, f"/responses/{unknown}{suffix}", headers=theirs)
        assert not_found_envelope(foreign, mine["id"]) == not_found_envelope(missing, unknown), (method, suffix)
    # Continuing: exactly what an unknown id gets (400 previous_response_not_found, app.py).
    foreign = keyed.post("/responses", json={**OK, "previous_response_id": mine["id"]}, headers=theirs)
    missing = keyed.post("/responses", json={**OK, "previous_response_id": unknown}, headers=theirs)
    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["error"]["code"] == "previous_response_not_found"
    assert foreign.json()["error"]["message"].replace(mine["id"], "ID") == \
        missing.json()["error"]["message"].replace(unknown, "ID")
    # The owner still has all of it, untouched by the other key's DELETE.
    assert keyed.get(f"/responses/{mine['id']}", headers=as_key(KEY_A)).json() == mine
    assert keyed.get(f"/responses/{mine['id']}/input_items", headers=as_key(KEY_A)).status_code == 200
    cont = keyed.post("/responses", json={**OK, "previous_response_id": mine["id"]}, headers=as_key(KEY_A))
    assert cont.status_code == 200 and cont.json()["previous_response_id"] == mine["id"]
    assert keyed.delete(f"/responses/{mine['id']}", headers=as_key(KEY_A)).status_code == 200


def test_another_key_cannot_cancel(keyed):
    queued = keyed.post("/responses", json={"model": "mock-slow", "input": "x", "background": True},
                        headers=as_key(KEY_A)).json()
    r = keyed.post(f"/responses/{queued['id']}/cancel", headers=as_key(KEY_B))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert keyed.get(f"/responses/{queued['id']}", headers=as_key(KEY_A)).json()["status"] in ("queued",
                                                                                                "in_progress")
    r = keyed.post(f"/responses/{queued['id']}/cancel", headers=as_key(KEY_A))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


def test_open_gateway_is_one_anonymous_tenant(client):
    """No keys configured: any Authorization header (or none) sees the same responses."""
    created = client.post("/responses", json=OK, headers=as_key("sk-anything")).json()
    for headers in ({}, as_key("sk-something-else"), {"authorization": "Basic Zm9vOmJhcg=="}):
        assert client.get(f"/responses/{created['id']}", headers=headers).json() == created


def test_store_holds_tenant_hash_never_the_key(make_gateway, tmp_path):
    db = tmp_path / "gw.sqlite3"
    with make_gateway(api_keys=(KEY_A,), store=str(db)) as c:
        created = c.post("/responses", json=OK, headers=as_key(KEY_A)).json()
    with sqlite3.connect(db) as conn:
        (owner,) = conn.execute("SELECT owner FROM stored_responses WHERE id = ?", (created["id"],)).fetchone()
    assert owner == tenant_of(KEY_A) and owner.startswith("sha256:") and KEY_A not in owner
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the file and its WAL
    assert created["id"].encode() in raw and KEY_A.encode() not in raw
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {
        "gw.sqlite3": 0o600, "gw.sqlite3-wal": 0o600, "gw.sqlite3-shm": 0o600}  # private, umask or not


def test_responses_from_before_keys_stay_anonymous(make_gateway, tmp_path):
    """A store written by an open gateway: a keyed gateway on it hands those rows to no key."""
    db = str(tmp_path / "gw.sqlite3")
    with make_gateway(store=db) as c:
        created = c.post("/responses", json=OK).json()
    with make_gateway(store=db, api_keys=(KEY_A,)) as c:
        assert c.get(f"/responses/{created['id']}", headers=as_key(KEY_A)).status_code == 404
    with make_gateway(store=db) as c:
        assert c.get(f"/responses/{created['id']}").json() == created


def test_keys_file(make_gateway, tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"# the gateway's keys\n\n  {KEY_A}  \n# sk-commented-out\n\t{KEY_B}\n", encoding="utf-8")
    assert read_keys_file(path) == (KEY_A, KEY_B)
    c = make_gateway(api_keys=read_keys_file(path))
    for key in (KEY_A, KEY_B):
        assert c.post("/responses", json=OK, headers=as_key(key)).status_code == 200
    assert_401(c.post("/responses", json=OK, headers=as_key("sk-commented-out")))
    assert_401(c.post("/responses", json=OK, headers=as_key("#")))


def test_keys_file_errors_are_one_line_and_never_show_a_key(tmp_path):
    cases = {
        "missing": (None, "cannot read"),
        "empty": ("# only a comment\n\n", "holds no key"),
        "spaces": (f"{KEY_A}\nsk bad key\n", "line 2"),
        "binary": (b"\xff\xfe", "not UTF-8"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
        with pytest.raises(ValueError) as info:
            read_keys_file(path)
        message = str(info.value)
        assert expected in message and "\n" not in message, name
        assert "sk bad key" not in message and KEY_A not in message


def test_config_refuses_bad_keys_and_hides_good_ones():
    for bad in ("", "has space", "tab\tkey", "caf\u00e9", "x" * 513):
        with pytest.raises(ValueError, match="not a valid API key"):
            GatewayConfig(upstream_url="http://127.0.0.1:9/v1", api_keys=(bad,))
    config = GatewayConfig(upstream_url="http://127.0.0.1:9/v1", api_keys=(KEY_A,),
                           store="postgresql://u:hunter2@db/x")
    assert KEY_A not in repr(config) and "hunter2" not in repr(config)


def test_keyring_decisions():
    ring = Keyring([KEY_A])
    assert ring.tenant(f"Bearer {KEY_A}") == tenant_of(KEY_A) != tenant_of(KEY_B)
    for header in (None, "", "Bearer", f"Bearer {KEY_B}"):
        with pytest.raises(APIError) as info:
            ring.tenant(header)
        assert info.value.status == 401
    assert Keyring([]).tenant(None) == Keyring([]).tenant(f"Bearer {KEY_A}") == ANONYMOUS_OWNER


def test_cli_flags():
    args = parser().parse_args(["--api-key", KEY_A, "--api-key", KEY_B, "--api-keys-file", "k.txt",
                                "--store", "postgresql://u@h/db", "--orphan-after", "5"])
    assert (args.api_key, args.api_keys_file, args.db, args.orphan_after) == (
        [KEY_A, KEY_B], "k.txt", "postgresql://u@h/db", 5.0)
    assert parser().parse_args(["--db", "x.sqlite3"]).db == "x.sqlite3"  # the old name still works
    assert parser().parse_args([]).api_key == []


def test_openai_sdk_with_keys(make_gateway, target):
    server_client = make_gateway(api_keys=(KEY_A,))
    base_url = str(server_client.base_url)
    with openai.OpenAI(base_url=base_url, api_key=KEY_A, max_retries=0, timeout=10) as sdk:
        created = sdk.responses.create(model="mock-1", input="hi")
        assert sdk.responses.retrieve(created.id).id == created.id
    with openai.OpenAI(base_url=base_url, api_key=KEY_B, max_retries=0, timeout=10) as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            sdk.responses.create(model="mock-1", input="hi")
        assert info.value.code == "invalid_api_key"


def test_harness_transport_against_a_keyed_gateway(make_gateway):
    """respcheck's own transport (``respcheck run --api-key``) sends the key as the gateway wants."""
    from harness.run.client import Transport

    base_url = str(make_gateway(api_keys=(KEY_A,)).base_url).rstrip("/")
    with Transport(base_url, api_key=KEY_A) as transport:
        assert transport.request("models", "GET", "/models").status == 200
    with Transport(base_url) as transport:
        assert transport.request("models", "GET", "/models").status == 401


def test_input_urls_are_never_fetched(client, target):
    """content_parts.py: an image URL is passed upstream untouched and a file URL refused with 400
    before any upstream call; the gateway itself never requests either (a canary server counts
    every hit)."""
    from reference_gateway.launch import RunningServer

    hits = []

    async def canary(scope, receive, send):
        if scope["type"] == "http":
            hits.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})

    with RunningServer(canary, name="canary") as server:
        url = f"{server.origin}/secret"
        refused = [({"type": "input_file", "file_url": url}, "input[0].content[1].file_url", "unsupported_parameter"),
                   ({"type": "input_image", "image_url": {"url": url}}, "input[0].content[1].image_url",
                    "invalid_type")]
        for part, param, code in refused:
            body = {"model": "mock-1", "input": [{"role": "user", "content": [
                {"type": "input_text", "text": "look"}, part]}]}
            r = client.post("/responses", json=body, headers=as_key(KEY_A))
            assert r.status_code == 400, r.text
            assert (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, code)
        body = {"model": "mock-1", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": url, "detail": "auto"}]}]}
        assert client.post("/responses", json=body, headers=as_key(KEY_A)).status_code == 200
        sent = target.upstream.app.state.requests[-1]["messages"][-1]["content"]
        assert sent[1] == {"type": "image_url", "image_url": {"url": url, "detail": "auto"}}  # passed on, as sent
        assert client.get(url).status_code == 200  # the canary itself works
    assert hits == ["/secret"]  # ... and only the test's own request ever reached it
