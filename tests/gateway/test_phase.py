"""Assistant message ``phase`` (commentary / final_answer) in input: kept, listed, refused elsewhere."""

from __future__ import annotations

import pytest


def test_phase_is_kept_in_the_stored_input(client):
    body = {"model": "mock-1", "input": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "thinking aloud", "phase": "commentary"},
        {"role": "assistant", "content": "the answer", "phase": "final_answer"},
        {"role": "user", "content": "more"}]}
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    items = client.get(f"/responses/{r.json()['id']}/input_items", params={"order": "asc"}).json()["data"]
    assert [i.get("phase") for i in items] == [None, "commentary", "final_answer", None]


@pytest.mark.parametrize("item", [
    {"role": "assistant", "content": "x", "phase": "draft"},
    {"role": "user", "content": "x", "phase": "commentary"},
])
def test_a_phase_out_of_place_is_400(client, item):
    r = client.post("/responses", json={"model": "mock-1", "input": [item]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].phase", r.text
