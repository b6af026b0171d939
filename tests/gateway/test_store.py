"""Stored responses: GET, DELETE, store:false."""

from __future__ import annotations


def test_get_after_post_returns_same_object(client):
    created = client.post("/responses", json={"model": "mock-1", "input": "remember me"}).json()
    got = client.get(f"/responses/{created['id']}")
    assert got.status_code == 200 and got.json() == created


def test_streamed_response_is_stored_before_terminal_event(stream, client):
    _, _, events = stream(client, {"model": "mock-1", "input": "stream me"})
    final = events[-1]["response"]
    assert client.get(f"/responses/{final['id']}").json() == final


def test_store_false_is_not_retrievable(client):
    created = client.post("/responses", json={"model": "mock-1", "input": "forget me", "store": False}).json()
    assert created["store"] is False
    r = client.get(f"/responses/{created['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_delete_then_get_is_404(client):
    created = client.post("/responses", json={"model": "mock-1", "input": "delete me"}).json()
    r = client.delete(f"/responses/{created['id']}")
    assert r.status_code == 200
    assert r.json() == {"id": created["id"], "object": "response", "deleted": True}
    assert client.get(f"/responses/{created['id']}").status_code == 404
    assert client.delete(f"/responses/{created['id']}").status_code == 404


def test_file_store_survives_a_new_gateway(make_gateway, tmp_path):
    db = str(tmp_path / "responses.db")
    with make_gateway(db_path=db) as c:
        created = c.post("/responses", json={"model": "mock-1", "input": "persist"}).json()
    with make_gateway(db_path=db) as c:
        assert c.get(f"/responses/{created['id']}").json() == created
