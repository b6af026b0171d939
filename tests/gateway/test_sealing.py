"""Sealed blobs (reference_gateway/sealing.py): reasoning ``encrypted_content`` round trips,
compaction items, tampering, other tenants and other gateways, and ``--seal-key-file``."""

from __future__ import annotations

import json

import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.errors import APIError
from reference_gateway.gateway import Gateway
from reference_gateway.params import parse_create
from reference_gateway.sealing import (
    PREFIX,
    Sealer,
    SealKeyError,
    new_key,
    read_key_file,
)
from reference_gateway.store_contract import ANONYMOUS_OWNER

ENCRYPTED = ["reasoning.encrypted_content"]


def tampered(blob: str) -> str:
    """``blob`` with one character of its sealed part changed (still valid base64url)."""
    i = len(PREFIX) + 20
    return blob[:i] + ("A" if blob[i] != "A" else "B") + blob[i + 1:]


def test_a_sealed_value_opens_only_with_its_key_owner_and_purpose():
    sealer = Sealer(new_key())
    blob = sealer.seal({"a": [1, "é"]}, owner="t1", purpose="reasoning")
    assert blob.startswith(PREFIX) and "é" not in blob
    assert sealer.open(blob, owner="t1", purpose="reasoning", param="p") == {"a": [1, "é"]}
    for bad, owner, purpose, other in [(tampered(blob), "t1", "reasoning", sealer), (blob, "t2", "reasoning", sealer),
                                       (blob, "t1", "compaction", sealer), (blob, "t1", "reasoning", Sealer(new_key())),
                                       ("rgs1.", "t1", "reasoning", sealer), ("gAAAAAB-openai", "t1", "reasoning", sealer),
                                       (None, "t1", "reasoning", sealer)]:
        with pytest.raises(APIError) as caught:
            other.open(bad, owner=owner, purpose=purpose, param="input[3].encrypted_content")
        assert caught.value.status == 400 and caught.value.code == "invalid_encrypted_content"
        assert caught.value.param == "input[3].encrypted_content"


def test_seal_key_files(tmp_path):
    hexed = tmp_path / "hex"
    hexed.write_text("ab" * 32 + "\n")
    assert read_key_file(str(hexed)) == bytes.fromhex("ab" * 32)
    raw = tmp_path / "raw"
    raw.write_bytes(bytes(range(40)))
    assert read_key_file(str(raw)) == bytes(range(40))
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(SealKeyError, match="at least 32 bytes"):
        read_key_file(str(short))
    with pytest.raises(SealKeyError, match="cannot read"):
        read_key_file(str(tmp_path / "missing"))


def reasoning_turn(client, **extra) -> dict:
    r = client.post("/responses", json={"model": "mock-reasoning", "input": "think", "store": False,
                                        "include": ENCRYPTED, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_reasoning_items_carry_encrypted_content_only_when_asked(client):
    body = reasoning_turn(client)
    reasoning = body["output"][0]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"].startswith(PREFIX)
    plain = client.post("/responses", json={"model": "mock-reasoning", "input": "think", "store": False}).json()
    assert "encrypted_content" not in plain["output"][0]


def test_encrypted_reasoning_streams_on_its_done_item(client, stream):
    _, _, events = stream(client, {"model": "mock-reasoning", "input": "think", "store": False, "include": ENCRYPTED})
    done = [e["item"] for e in events if e["type"] == "response.output_item.done" and e["item"]["type"] == "reasoning"]
    final = events[-1]["response"]["output"][0]
    assert done[0]["encrypted_content"].startswith(PREFIX) and final == done[0]


def test_encrypted_reasoning_round_trip_expands_to_the_stored_context(client, target):
    """store: false, the reasoning item sent back as Codex does (content dropped): the gateway
    restores it, so the next turn's context equals the one a stored chain would give."""
    first = reasoning_turn(client)
    sent_back = [{"type": "reasoning", "summary": [], "encrypted_content": first["output"][0]["encrypted_content"]},
                 *first["output"][1:], {"role": "user", "content": "again"}]
    # The context the gateway builds from it (a Gateway with the running one's seal key): the
    # reasoning item the first turn produced, whole, as a stored chain holds it.
    gateway = Gateway(GatewayConfig(upstream_url=target.upstream.base_url, seal_key=target.config.seal_key))
    try:
        context = gateway.conversation(parse_create({"model": "mock-1", "input": sent_back}), ANONYMOUS_OWNER)
    finally:
        gateway.store.close()
    produced = first["output"][0]
    assert context[0] == {k: v for k, v in produced.items() if k != "encrypted_content"} | {"id": context[0]["id"]}
    assert context[0]["content"][0]["text"]
    r = client.post("/responses", json={"model": "mock-1", "input": sent_back, "store": False})
    assert r.status_code == 200, r.text


def test_tampered_or_foreign_reasoning_content_is_a_400(client):
    first = reasoning_turn(client)
    blob = first["output"][0]["encrypted_content"]
    for bad in (tampered(blob), "gAAAAABopenai-blob"):
        r = client.post("/responses", json={"model": "mock-1", "input": [
            {"role": "user", "content": "x"}, {"type": "reasoning", "summary": [], "encrypted_content": bad},
            {"role": "user", "content": "y"}]})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_encrypted_content" and error["param"] == "input[1].encrypted_content"


def test_a_blob_opens_only_for_the_api_key_that_got_it(make_gateway):
    gateway = make_gateway(api_keys=("key-one", "key-two"))
    one, two = ({"Authorization": f"Bearer {k}"} for k in ("key-one", "key-two"))
    first = gateway.post("/responses", headers=one, json={"model": "mock-reasoning", "input": "think",
                                                          "store": False, "include": ENCRYPTED}).json()
    item = {"type": "reasoning", "summary": [], "encrypted_content": first["output"][0]["encrypted_content"]}
    body = {"model": "mock-1", "input": [item, {"role": "user", "content": "y"}], "store": False}
    assert gateway.post("/responses", headers=one, json=body).status_code == 200
    refused = gateway.post("/responses", headers=two, json=body)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_encrypted_content"
    compacted = gateway.post("/responses/compact", headers=one, json={"model": "mock-1", "input": "a"}).json()
    assert gateway.post("/responses", headers=one, json={"model": "mock-1", "input": compacted["output"]}).status_code == 200
    other = gateway.post("/responses", headers=two, json={"model": "mock-1", "input": compacted["output"]})
    assert other.status_code == 400 and other.json()["error"]["code"] == "invalid_encrypted_content"


def test_gateways_sharing_a_seal_key_accept_each_others_blobs(make_gateway):
    key = new_key()
    maker, taker, stranger = make_gateway(seal_key=key), make_gateway(seal_key=key), make_gateway()
    compacted = maker.post("/responses/compact", json={"model": "mock-1", "input": "a"}).json()
    body = {"model": "mock-echo", "input": compacted["output"] + [{"role": "user", "content": "b"}]}
    r = taker.post("/responses", json=body)
    assert r.status_code == 200, r.text
    assert [m["content"] for m in json.loads(r.json()["output"][0]["content"][0]["text"])] == ["a", "b"]
    assert stranger.post("/responses", json=body).json()["error"]["code"] == "invalid_encrypted_content"


def test_a_tampered_compaction_item_is_a_400(client):
    compacted = client.post("/responses/compact", json={"model": "mock-1", "input": "a"}).json()
    item = {**compacted["output"][-1], "encrypted_content": tampered(compacted["output"][-1]["encrypted_content"])}
    r = client.post("/responses", json={"model": "mock-1", "input": [*compacted["output"][:-1], item]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_encrypted_content"
    assert r.json()["error"]["param"] == "input[1].encrypted_content"


def test_workers_share_the_seal_key_of_the_config_they_are_handed(tmp_path):
    """--workers N: worker.py pickles the config for its workers; the random key travels in it."""
    import os

    from reference_gateway.worker import read_handoff, write_handoff

    config = GatewayConfig(upstream_url="http://127.0.0.1:1/v1")
    path = write_handoff(config, tmp_path, parent_pid=os.getpid())
    assert read_handoff(path)["config"].seal_key == config.seal_key
    assert GatewayConfig(upstream_url="http://127.0.0.1:1/v1").seal_key != config.seal_key
    with pytest.raises(ValueError, match="seal_key"):
        GatewayConfig(upstream_url="http://127.0.0.1:1/v1", seal_key=b"short")


def test_a_background_response_seals_its_reasoning_too(client):
    import time

    made = client.post("/responses", json={"model": "mock-reasoning", "input": "think", "background": True,
                                           "include": ENCRYPTED}).json()
    deadline = time.monotonic() + 10
    body = made
    while body["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        body = client.get(f"/responses/{made['id']}").json()
    assert body["status"] == "completed", body
    assert body["output"][0]["encrypted_content"].startswith(PREFIX)
