"""The sans-IO observer: timings read off timed chunks, verdicts from the shared checker."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from loadtests.observe import ExchangeObserver
from reference_gateway.launch import start_embedded


@pytest.fixture(scope="module")
def gateway_stream() -> bytes:
    """A real streamed answer of the reference gateway (24 text deltas)."""
    with start_embedded() as target:
        r = httpx.post(target.base_url + "/responses", timeout=10,
                       json={"model": "mock-1", "input": "hello there", "stream": True})
        assert r.status_code == 200
        return r.content


def _frames(body: bytes) -> list[bytes]:
    return [f + b"\n\n" for f in body.split(b"\n\n") if f.strip()]


def _observe(frames: list[bytes], *, api="responses", check="full", gap=0.010, first=0.050):
    obs = ExchangeObserver(api=api, stream=True, t_send=100.0, t_send_wall=5.0, stage="x", check=check)
    obs.response_started(200, "text/event-stream; charset=utf-8", 100.001)
    t = 100.0 + first
    deltas = 0
    for frame in frames:
        is_delta = b"output_text.delta" in frame or re.search(rb'"content": ?"[^"]', frame) is not None
        obs.feed(frame, t)
        if is_delta:
            deltas += 1
            t += gap
    return obs, obs.close(t + 0.001)


@pytest.mark.parametrize("check", ["full", "grammar", "off"])
def test_timings_from_a_real_stream(gateway_stream, check):
    obs, s = _observe(_frames(gateway_stream), check=check)
    assert s.ok and s.error is None, s
    assert s.terminal == "response.completed"
    assert s.deltas == 24 and s.output_tokens == 24
    assert s.ttft == pytest.approx(0.050)
    assert len(s.itls) == 23 and all(g == pytest.approx(0.010) for g in s.itls)
    assert s.e2el == pytest.approx(0.050 + 24 * 0.010)  # the terminal frame comes after the last gap
    assert s.tpot == pytest.approx((s.e2el - s.ttft) / 23)
    assert s.violations == {} and obs.findings == []
    assert s.t_send == 5.0 and s.stage == "x"


def test_chunking_does_not_change_the_verdict(gateway_stream):
    """One byte at a time, all at the same instant: same verdict, all deltas at that instant."""
    obs = ExchangeObserver(api="responses", stream=True, t_send=0.0, t_send_wall=0.0)
    obs.response_started(200, "text/event-stream", 0.0)
    for i in range(len(gateway_stream)):
        obs.feed(gateway_stream[i:i + 1], 1.0)
    s = obs.close(1.0)
    assert s.ok and s.violations == {} and s.ttft == 1.0 and s.itls == [0.0] * 23


def test_broken_stream_counts_violations_by_check_id(gateway_stream):
    frames = _frames(gateway_stream)
    # drop one delta: sequence numbers skip and the deltas no longer spell the .done text
    delta_at = next(i for i, f in enumerate(frames) if b"output_text.delta" in f)
    broken = frames[:delta_at + 2] + frames[delta_at + 3:]
    obs, s = _observe(broken, check="full")
    assert s.ok  # the request itself succeeded: the findings are conformance violations
    assert s.violations.get("stream.sequence.contiguous", 0) >= 1
    assert s.violations.get("stream.delta.accumulates", 0) >= 1
    assert {f.check for f in obs.findings} >= {"stream.sequence.contiguous"}


def test_missing_terminal_is_a_failed_request(gateway_stream):
    frames = [f for f in _frames(gateway_stream) if b"response.completed" not in f]
    obs, s = _observe(frames, check="off")
    assert not s.ok and s.error == "no_terminal"
    obs, s = _observe(frames, check="full")
    assert s.violations.get("stream.terminal.present") == 1


def test_http_error_and_transport_error():
    obs = ExchangeObserver(api="responses", stream=True, t_send=0.0, t_send_wall=0.0)
    obs.response_started(503, "application/json", 0.01)
    obs.feed(b'{"error": {"message": "busy"}}', 0.02)
    assert obs.close(0.02).error == "http_503"
    obs = ExchangeObserver(api="chat", stream=True, t_send=0.0, t_send_wall=0.0)
    assert obs.close(1.0, error="connect: ConnectionRefusedError").error == "connect: ConnectionRefusedError"


def _chat_frames(tokens: list[str], usage: int | None) -> list[bytes]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in tokens]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    if usage is not None:
        out.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": usage, "total_tokens": 3 + usage}})
    return [b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in out] + [b"data: [DONE]\n\n"]


def test_chat_stream_timings_and_usage():
    obs, s = _observe(_chat_frames(["a", " b", " c", " d"], usage=7), api="chat", gap=0.02, first=0.03)
    assert s.ok and s.terminal == "[DONE]"
    assert s.deltas == 4 and s.output_tokens == 7  # usage wins over the count of deltas
    assert s.ttft == pytest.approx(0.03)  # the empty role chunk is not the first token
    assert s.itls == pytest.approx([0.02] * 3)
    obs, s = _observe(_chat_frames(["a", " b"], usage=None), api="chat")
    assert s.output_tokens == 2  # no usage: the number of deltas


def test_non_streamed_response_is_judged():
    with start_embedded() as target:
        r = httpx.post(target.base_url + "/responses", timeout=10, json={"model": "mock-1", "input": "hi"})
    obs = ExchangeObserver(api="responses", stream=False, t_send=0.0, t_send_wall=0.0)
    obs.response_started(200, r.headers["content-type"], 0.01)
    obs.feed(r.content, 0.02)
    s = obs.close(0.02)
    assert s.ok and s.terminal == "json" and s.output_tokens == 24 and s.ttft is None
    assert s.e2el == pytest.approx(0.02) and s.violations == {}
