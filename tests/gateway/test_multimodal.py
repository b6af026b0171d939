"""Image and file content parts (content_parts.py): what reaches the chat upstream, what is
listed back, what is refused, and an upstream's refusal of images reaching the client."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from reference_gateway.config import GatewayConfig
from reference_gateway.launch import RunningServer, start_gateway

PNG_1X1 = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()
DATA_URL = f"data:image/png;base64,{PNG_1X1}"
PDF_DATA = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 hello").decode()


def ask(*parts: dict) -> dict:
    return {"model": "mock-1", "input": [{"role": "user", "content": [{"type": "input_text", "text": "what is it?"},
                                                                      *parts]}]}


def sent_content(target) -> list | str:
    return target.upstream.app.state.requests[-1]["messages"][-1]["content"]


@pytest.mark.parametrize("url", [DATA_URL, "https://example.invalid/cat.png"])
@pytest.mark.parametrize("detail, chat_detail", [(None, "auto"), ("low", "low"), ("high", "high"),
                                                 ("original", "high")])
def test_image_becomes_a_chat_image_url_part(client, target, url, detail, chat_detail):
    part = {"type": "input_image", "image_url": url, **({"detail": detail} if detail else {})}
    r = client.post("/responses", json=ask(part))
    assert r.status_code == 200, r.text
    assert sent_content(target) == [{"type": "text", "text": "what is it?"},
                                    {"type": "image_url", "image_url": {"url": url, "detail": chat_detail}}]
    items = client.get(f"/responses/{r.json()['id']}/input_items").json()["data"]
    assert items[0]["content"][1] == {"type": "input_image", "detail": detail or "auto", "file_id": None,
                                      "image_url": url}


def test_file_becomes_a_chat_file_part(client, target, stream):
    part = {"type": "input_file", "file_data": PDF_DATA, "filename": "a.pdf"}
    response, _, events = stream(client, ask(part))
    assert response.status_code == 200 and events[-1]["type"] == "response.completed"
    assert sent_content(target)[1] == {"type": "file", "file": {"file_data": PDF_DATA, "filename": "a.pdf"}}


def test_text_only_content_stays_a_string(client, target):
    """Every chat server takes string content; a list goes upstream only when it must."""
    assert client.post("/responses", json=ask()).status_code == 200
    assert sent_content(target) == "what is it?"


def test_images_carry_into_the_next_turn(client, target):
    first = client.post("/responses", json=ask({"type": "input_image", "image_url": DATA_URL})).json()
    r = client.post("/responses", json={"model": "mock-1", "input": "and now?", "previous_response_id": first["id"]})
    assert r.status_code == 200, r.text
    first_user = target.upstream.app.state.requests[-1]["messages"][0]
    assert first_user["content"][1]["image_url"]["url"] == DATA_URL


@pytest.mark.parametrize("part, param, code", [
    ({"type": "input_image", "file_id": "file-abc"}, "input[0].content[1].file_id", "unsupported_parameter"),
    ({"type": "input_file", "file_id": "file-abc"}, "input[0].content[1].file_id", "unsupported_parameter"),
    ({"type": "input_file", "file_url": "https://example.invalid/a.pdf"}, "input[0].content[1].file_url",
     "unsupported_parameter"),
    ({"type": "input_image"}, "input[0].content[1].image_url", "missing_required_parameter"),
    ({"type": "input_file", "filename": "a.pdf"}, "input[0].content[1].file_data", "missing_required_parameter"),
    ({"type": "input_image", "image_url": "ftp://example.invalid/a.png"}, "input[0].content[1].image_url",
     "invalid_value"),
    ({"type": "input_image", "image_url": "data:text/plain;base64,aGk="}, "input[0].content[1].image_url",
     "invalid_value"),
    ({"type": "input_image", "image_url": "data:image/png;base64,not base64!"}, "input[0].content[1].image_url",
     "invalid_value"),
    ({"type": "input_image", "image_url": DATA_URL, "detail": "ultra"}, "input[0].content[1].detail",
     "invalid_value"),
    ({"type": "input_image", "image_url": DATA_URL, "colour": "red"}, "input[0].content[1].colour",
     "unknown_parameter"),
    ({"type": "input_file", "file_data": 5}, "input[0].content[1].file_data", "invalid_type"),
])
def test_refused_parts_are_400_before_the_upstream(client, target, part, param, code):
    before = len(target.upstream.app.state.requests)
    r = client.post("/responses", json=ask(part))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert len(target.upstream.app.state.requests) == before


def test_assistant_messages_take_no_images(client):
    body = {"model": "mock-1", "input": [{"role": "assistant", "content": [
        {"type": "input_image", "image_url": DATA_URL}]}, {"role": "user", "content": "hi"}]}
    r = client.post("/responses", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].content[0].type"


# vLLM's answer to an image sent to a text-only model (vllm/entrypoints/openai/serving_engine.py).
TEXT_ONLY = {"error": {"message": "Model does not support multimodal inputs", "type": "BadRequestError",
                       "param": None, "code": 400}}


async def text_only_upstream(scope, receive, send):
    """A chat upstream that refuses every image with vLLM's 400, and answers text."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = orjson.loads(body or b"{}")
    has_image = any(isinstance(m.get("content"), list) for m in request.get("messages", []))
    status, answer = (400, TEXT_ONLY) if has_image else (200, {
        "id": "c", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": orjson.dumps(answer)})


@pytest.mark.parametrize("streamed", [False, True])
def test_an_upstream_refusing_images_is_an_envelope_with_its_status(streamed):
    with RunningServer(text_only_upstream, name="text-only") as upstream, \
            start_gateway(GatewayConfig(upstream_url=upstream.origin + "/v1")) as gateway, \
            httpx.Client(base_url=gateway.base_url, timeout=5) as client:
        assert client.post("/responses", json={"model": "m", "input": "hi"}).status_code == 200
        r = client.post("/responses", json={**ask({"type": "input_image", "image_url": DATA_URL}),
                                            "stream": streamed})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert error["message"] == "Model does not support multimodal inputs"
        assert set(error) == {"message", "type", "param", "code"}
