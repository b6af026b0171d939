"""background: true: queued at once, polled to a terminal status, cancellable while pending."""

from __future__ import annotations

import time

POLL_DEADLINE_S = 5.0


def poll(client, response_id: str) -> dict:
    deadline = time.monotonic() + POLL_DEADLINE_S
    while True:
        body = client.get(f"/responses/{response_id}").json()
        if body["status"] not in ("queued", "in_progress") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_background_returns_queued_then_completes(client, validate):
    r = client.post("/responses", json={"model": "mock-1", "input": "later", "background": True})
    assert r.status_code == 200, r.text
    queued = validate(r.json())
    assert queued["status"] == "queued" and queued["background"] is True and queued["output"] == []
    final = validate(poll(client, queued["id"]))
    assert final["status"] == "completed" and final["background"] is True
    assert final["output"][0]["type"] == "message" and final["usage"]["output_tokens"] == 24


def test_background_failure_is_stored_as_failed(client, validate):
    queued = client.post("/responses", json={"model": "mock-error", "input": "x", "background": True}).json()
    final = validate(poll(client, queued["id"]))
    # The same code as the envelope the same request gets in the foreground (one fault, one
    # code, as a stream's error event and response.failed carry one).
    foreground = client.post("/responses", json={"model": "mock-error", "input": "x"})
    assert foreground.status_code >= 400
    assert final["status"] == "failed" and final["error"]["code"] == foreground.json()["error"]["code"]
    assert final["error"]["code"] != "server_error"


def test_cancel_a_pending_background_response(client, validate):
    queued = client.post("/responses", json={"model": "mock-slow", "input": "slow", "background": True}).json()
    r = client.post(f"/responses/{queued['id']}/cancel")
    assert r.status_code == 200, r.text
    cancelled = validate(r.json())
    assert cancelled["status"] == "cancelled" and cancelled["id"] == queued["id"]
    time.sleep(1.3)  # past mock-slow's delay: the generation must not overwrite the cancel
    assert client.get(f"/responses/{queued['id']}").json() == cancelled
    again = client.post(f"/responses/{queued['id']}/cancel")
    assert again.status_code == 400 and again.json()["error"]["code"] == "response_not_cancellable"


def test_cancel_refusals(client):
    done = client.post("/responses", json={"model": "mock-1", "input": "x", "background": True}).json()
    poll(client, done["id"])
    for response_id in (done["id"], client.post("/responses", json={"model": "mock-1", "input": "x"}).json()["id"]):
        r = client.post(f"/responses/{response_id}/cancel")
        assert r.status_code == 400
        assert (r.json()["error"]["type"], r.json()["error"]["code"]) == ("invalid_request_error",
                                                                          "response_not_cancellable")
    r = client.post("/responses/resp_unknown/cancel")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_continuing_a_pending_background_response_is_refused(client):
    queued = client.post("/responses", json={"model": "mock-slow", "input": "slow", "background": True}).json()
    r = client.post("/responses", json={"model": "mock-1", "input": "x", "previous_response_id": queued["id"]})
    assert r.status_code == 400
    assert (r.json()["error"]["param"], r.json()["error"]["code"]) == ("previous_response_id",
                                                                       "previous_response_in_progress")
    assert poll(client, queued["id"])["status"] == "completed"
