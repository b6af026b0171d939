"""The lean paced upstream (loadtests/paced_upstream.py) answers as the embedded mock does, on
the same schedule, and refuses what it does not serve with the error envelope."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from loadtests import servers

BODY = {"model": "mock-paced", "messages": [{"role": "user", "content": "what is the weather in Paris"}],
        "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}}


@pytest.fixture(scope="module")
def both():
    with servers.spawn("mock") as app, servers.spawn("paced") as lean:
        yield app.base_url, lean.base_url


def _stream(base_url: str, body: dict) -> tuple[list, list[float]]:
    """The data lines (parsed, ``created`` dropped) and when each arrived (s after sending)."""
    data, times = [], []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        started = time.perf_counter()
        with client.stream("POST", "/chat/completions", json=body) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    times.append(time.perf_counter() - started)
                    chunk = line[6:] if line == "data: [DONE]" else json.loads(line[6:])
                    if isinstance(chunk, dict):
                        chunk.pop("created")
                    data.append(chunk)
    return data, times


@pytest.mark.parametrize("body", [BODY, {**BODY, "stream_options": None, "max_tokens": 3},
                                  {**BODY, "model": "mock-paced:0:1", "max_completion_tokens": 5}])
def test_the_same_chunks_as_the_embedded_mock(both, body):
    app, lean = both
    expected, _ = _stream(app, body)
    got, _ = _stream(lean, body)
    assert got == expected
    asked = body.get("max_completion_tokens") or body["max_tokens"]  # as a chat server reads them
    deltas = [c for c in got if isinstance(c, dict) and c["choices"] and "content" in c["choices"][0]["delta"]]
    assert got[-1] == "[DONE]" and len(deltas) == 1 + asked  # the role chunk, then the tokens


def test_the_same_whole_answer_and_model_list(both):
    answers = []
    for base_url in both:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            whole = client.post("/chat/completions", json={**BODY, "stream": False}).json()
            whole.pop("created")
            answers.append((whole, client.get("/models").json()))
    assert answers[0] == answers[1]


def test_the_schedule_is_kept(both):
    # mock-paced:60:20: the first content token 60 ms after the request, then one every 20 ms;
    # lower bounds only (a late wake-up on a busy machine can only delay)
    _, lean = both
    data, times = _stream(lean, {**BODY, "model": "mock-paced:60:20", "max_tokens": 4})
    content = [t for c, t in zip(data, times, strict=True) if isinstance(c, dict) and c["choices"]
               and c["choices"][0]["delta"].get("content")]
    assert len(content) == 4
    # each on or after its slot (the server's clock starts after ours; 2 ms for a timer's
    # granularity); gaps between arrivals are no bound: a late first token shortens the next gap
    assert all(t >= 0.060 + 0.020 * i - 0.002 for i, t in enumerate(content)), content


def _raw(base_url: str, request: bytes) -> bytes:
    host, port = base_url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize("method, path, body, status, says", [
    ("POST", "/v1/chat/completions", b"{not json", 400, "not valid JSON"),
    ("POST", "/v1/chat/completions", json.dumps({**BODY, "model": "mock-1"}).encode(), 400, "mock-paced"),
    ("POST", "/v1/chat/completions", json.dumps({**BODY, "max_tokens": None}).encode(), 400, "max_tokens"),
    ("POST", "/v1/chat/completions", json.dumps({**BODY, "messages": []}).encode(), 400, "messages"),
    ("GET", "/v1/nowhere", b"", 404, "No route"),
])
def test_what_it_does_not_serve_is_an_envelope(both, method, path, body, status, says):
    _, lean = both
    with httpx.Client(base_url=lean.removesuffix("/v1"), timeout=10) as client:
        r = client.request(method, path, content=body)
    assert r.status_code == status
    error = r.json()["error"]
    assert says in error["message"] and set(error) == {"message", "type", "param", "code"}


def test_an_oversized_body_is_refused_and_the_connection_closed(both):
    _, lean = both
    body = b'{"x": "' + b"y" * (1024 * 1024 + 10) + b'"}'
    out = _raw(lean, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body))
    assert out.startswith(b"HTTP/1.1 413 ") and b"connection: close" in out


def test_bytes_that_are_not_http_and_a_client_gone_mid_stream(both):
    _, lean = both
    assert _raw(lean, b"SSH-2.0-OpenSSH_9.2\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    body = json.dumps({**BODY, "model": "mock-paced:0:50", "max_tokens": 20}).encode()
    host, port = lean.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    # gone with 19 tokens still on its timer: the server serves the next one as before
    data, _ = _stream(lean, {**BODY, "max_tokens": 2})
    assert data[-1] == "[DONE]"
