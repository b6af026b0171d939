"""``GET /v1/responses/{id}?stream=true&starting_after=N`` (replay.py) and ``background`` with
``stream`` (background.py): the events a client saw, again, from N on; a background stream runs
on without its client and is resumed live."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from reference_gateway import replay
from reference_gateway.store import open_store
from reference_gateway.store_contract import ANONYMOUS_OWNER

# A model slow enough to be caught running: 16 tokens, 60 ms apart (mock_upstream.py).
SLOW = {"model": "mock-paced:0:60", "input": "go on", "max_output_tokens": 16}


def events_of(response: httpx.Response, parse_sse) -> list[dict]:
    return [json.loads(data) for _, data in parse_sse(response.read().decode()) if data != "[DONE]"]


def get_stream(client: httpx.Client, response_id: str, parse_sse, **query) -> tuple[int, list[dict]]:
    params = {"stream": "true", **{k: str(v) for k, v in query.items()}}
    with client.stream("GET", f"/responses/{response_id}", params=params) as r:
        if r.status_code != 200:
            r.read()
            return r.status_code, r.json()
        assert r.headers["content-type"].startswith("text/event-stream")
        return 200, events_of(r, parse_sse)


def test_a_stored_stream_replays_whole_and_from_n(client, stream, parse_sse, check_events):
    _, _, events = stream(client, {"model": "mock-1", "input": "hi", "max_output_tokens": 16})
    response_id = events[0]["response"]["id"]
    assert get_stream(client, response_id, parse_sse) == (200, events)
    for n in (0, 3, len(events) - 2, len(events) - 1):
        status, tail = get_stream(client, response_id, parse_sse, starting_after=n)
        assert status == 200 and tail == events[n + 1:], n
    check_events(get_stream(client, response_id, parse_sse)[1])


def test_the_sdk_reads_a_replay(target, client, stream):
    _, _, events = stream(client, {"model": "mock-1", "input": "hi", "max_output_tokens": 16})
    sdk = openai.OpenAI(base_url=target.base_url, api_key="x", max_retries=0)
    replayed = list(sdk.responses.retrieve(events[0]["response"]["id"], stream=True, starting_after=4))
    assert [e.sequence_number for e in replayed] == [e["sequence_number"] for e in events[5:]]
    assert replayed[-1].type == events[-1]["type"] == "response.incomplete"  # mock-1 writes 24 tokens


@pytest.mark.parametrize("query, status, param, code", [
    ({"stream": "true", "starting_after": "-1"}, 400, "starting_after", "invalid_value"),
    ({"stream": "true", "starting_after": "x"}, 400, "starting_after", "invalid_value"),
    ({"stream": "maybe"}, 400, "stream", "invalid_value"),
])
def test_bad_queries_are_envelopes(client, query, status, param, code):
    created = client.post("/responses", json={"model": "mock-1", "input": "x"}).json()
    r = client.get(f"/responses/{created['id']}", params=query)
    assert r.status_code == status and (r.json()["error"]["param"], r.json()["error"]["code"]) == (param, code)


def test_unknown_and_unstreamed_responses_are_refused(client):
    r = client.get("/responses/resp_nope", params={"stream": "true"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    created = client.post("/responses", json={"model": "mock-1", "input": "x"}).json()
    r = client.get(f"/responses/{created['id']}", params={"stream": "true"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "stream_not_available"
    assert client.get(f"/responses/{created['id']}", params={"stream": "false"}).json() == created


def test_deleted_responses_lose_their_events(client, stream):
    _, _, events = stream(client, {"model": "mock-1", "input": "hi", "max_output_tokens": 16})
    response_id = events[0]["response"]["id"]
    assert client.delete(f"/responses/{response_id}").status_code == 200
    assert client.get(f"/responses/{response_id}", params={"stream": "true"}).status_code == 404


def test_background_stream_is_queued_then_runs_and_replays(client, stream, parse_sse, check_events):
    response, _, events = stream(client, {"model": "mock-1", "input": "hi", "max_output_tokens": 16,
                                          "background": True})
    assert response.status_code == 200
    assert events[0]["type"] == "response.created" and events[0]["response"]["status"] == "queued"
    assert events[0]["response"]["background"] is True
    assert events[1]["type"] == "response.in_progress" and events[1]["response"]["status"] == "in_progress"
    check_events(events)
    assert get_stream(client, events[0]["response"]["id"], parse_sse) == (200, events)


def test_a_background_stream_runs_on_without_its_client_and_resumes_live(client, parse_sse, check_events):
    seen = []
    with client.stream("POST", "/responses", json={**SLOW, "stream": True, "background": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: "):]))
            if len(seen) == 5:
                break  # the client goes away mid-stream
    response_id = seen[0]["response"]["id"]
    assert client.get(f"/responses/{response_id}").json()["status"] in ("queued", "in_progress")  # runs on
    status, rest = get_stream(client, response_id, parse_sse, starting_after=seen[-1]["sequence_number"])
    assert status == 200 and rest[0]["sequence_number"] == 5
    assert rest[-1]["type"] == "response.incomplete"  # followed live to the end (16 tokens: the budget)
    check_events(seen + rest)
    assert client.get(f"/responses/{response_id}").json() == rest[-1]["response"]
    assert get_stream(client, response_id, parse_sse)[1] == seen + rest  # and from the store afterwards


def test_cancel_ends_a_background_stream(client, parse_sse):
    with client.stream("POST", "/responses", json={**SLOW, "stream": True, "background": True}) as r:
        seen = []
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: "):]))
                if len(seen) == 4:
                    cancelled = client.post(f"/responses/{seen[0]['response']['id']}/cancel")
                    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert len(seen) < 16 + 6 and not any(e["type"] in replay.TERMINAL_EVENTS for e in seen)
    response_id = seen[0]["response"]["id"]
    assert client.get(f"/responses/{response_id}").json()["status"] == "cancelled"
    status, replayed = get_stream(client, response_id, parse_sse)
    assert status == 200 and replayed == seen[:len(replayed)]
    assert not any(e["type"] in replay.TERMINAL_EVENTS for e in replayed)


def test_background_stream_with_built_in_tools_is_refused(client):
    r = client.post("/responses", json={"model": "mock-1", "input": "x", "stream": True, "background": True,
                                        "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]})
    assert r.status_code == 400 and r.json()["error"]["param"] in ("background", "tools")


async def test_a_swept_stream_replays_to_a_response_failed(tmp_path):
    """A stream whose process died (kill -9) and whose row the orphan sweep failed: the replay
    gives the stored events, then a response.failed made from the stored object."""
    store = open_store(str(tmp_path / "s.sqlite3"))
    body = {"id": "resp_x", "object": "response", "status": "in_progress", "output": []}
    store.put(body, owner=ANONYMOUS_OWNER, input_items=[], context=[])
    sent = [{"type": "response.created", "sequence_number": 0, "response": body},
            {"type": "response.in_progress", "sequence_number": 1, "response": body}]
    store.write_many(store.event_statements("resp_x", ANONYMOUS_OWNER,
                                            [(e["sequence_number"], json.dumps(e)) for e in sent]))
    failed = {**body, "status": "failed", "error": {"code": "server_error", "message": "gone"}}
    assert store.update_pending(failed, owner=ANONYMOUS_OWNER)
    got = [e async for e in replay.from_store(store, "resp_x", ANONYMOUS_OWNER, -1, poll_interval_s=0.01)]
    assert got == [*sent, {"type": "response.failed", "sequence_number": 2, "response": failed}]
    tail = [e async for e in replay.from_store(store, "resp_x", ANONYMOUS_OWNER, 1, poll_interval_s=0.01)]
    assert tail == got[2:]
    store.close()


def test_the_sdk_resumes_a_background_stream(target):
    """The openai SDK's own path (OpenAI's background mode guide): create with background and
    stream, lose the stream, ``retrieve(id, stream=True, starting_after=N)`` to the end."""
    sdk = openai.OpenAI(base_url=target.base_url, api_key="x", max_retries=0)
    stream = sdk.responses.create(**SLOW, background=True, stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if len(seen) == 3:
            break
    stream.close()
    assert seen[0].type == "response.created" and seen[0].response.status == "queued"
    rest = list(sdk.responses.retrieve(seen[0].response.id, stream=True, starting_after=seen[-1].sequence_number))
    assert [e.sequence_number for e in rest] == list(range(3, 3 + len(rest)))
    assert rest[-1].type in ("response.completed", "response.incomplete")
    assert sdk.responses.retrieve(seen[0].response.id).status == rest[-1].response.status
