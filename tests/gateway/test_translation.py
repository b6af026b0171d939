"""What the gateway sends upstream for a Responses request."""

from __future__ import annotations


def last_upstream_request(target) -> dict:
    return target.upstream.app.state.requests[-1]


def test_instructions_become_leading_system_message(client, target):
    body = {
        "model": "mock-1",
        "instructions": "Answer in Latin.",
        "input": [
            {"role": "developer", "content": "dev note"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "earlier"}]},
        ],
        "temperature": 0.5,
        "top_p": 0.9,
        "max_output_tokens": 20,
    }
    r = client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    sent = last_upstream_request(target)
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in Latin."},
        {"role": "developer", "content": "dev note"},
        {"role": "user", "content": "ab"},
        {"role": "assistant", "content": "earlier"},
    ]
    assert sent["temperature"] == 0.5 and sent["top_p"] == 0.9
    assert sent["max_tokens"] == sent["max_completion_tokens"] == 20
    assert sent["stream"] is False
    out = r.json()
    assert out["instructions"] == "Answer in Latin." and out["temperature"] == 0.5 and out["top_p"] == 0.9


def test_string_input_and_stream_options(client, target):
    with client.stream("POST", "/responses", json={"model": "mock-1", "input": "hi", "stream": True}) as r:
        r.read()
    sent = last_upstream_request(target)
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert "max_tokens" not in sent and "temperature" not in sent
