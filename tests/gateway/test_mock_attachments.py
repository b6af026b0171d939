"""Images and files sent to the embedded model (reference_gateway/mock_attachments.py,
image_header.py), and its text-only model's refusal of them."""

from __future__ import annotations

import base64
import io
import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.testclient import TestClient

from reference_gateway.image_header import image_size
from reference_gateway.mock_attachments import VLLM_PART_TYPES, attachments, describe
from reference_gateway.mock_upstream import create_app

# (Pillow format, save options, what image_size names it)
FORMATS = [
    ("PNG", {}, "PNG"),
    ("JPEG", {}, "JPEG"),
    ("JPEG", {"progressive": True}, "JPEG"),
    ("GIF", {}, "GIF"),
    ("WEBP", {"lossless": False}, "WebP"),
    ("WEBP", {"lossless": True}, "WebP"),
    ("BMP", {}, "BMP"),
]


def encode(fmt: str, options: dict, width: int, height: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30) if mode == "RGB" else (200, 30, 30, 128)).save(buf, fmt, **options)
    return buf.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


@pytest.fixture(scope="module")
def mock():
    with TestClient(create_app()) as c:
        yield c


def chat(mock, parts, model="mock-1", **fields):
    return mock.post("/v1/chat/completions",
                     json={"model": model, "messages": [{"role": "user", "content": parts}], **fields})


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(FORMATS), width=st.integers(1, 400), height=st.integers(1, 400))
def test_header_sizes_agree_with_pillow(fmt, width, height):
    data = encode(fmt[0], fmt[1], width, height)
    assert image_size(data) == (fmt[2], width, height)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (width, height)


def test_webp_extended_header_and_the_largest_sizes():
    # RGBA lossy WebP is written with a VP8X header (the alpha chunk needs it)
    data = encode("WEBP", {"lossless": False}, 37, 5, mode="RGBA")
    assert data[12:16] == b"VP8X" and image_size(data) == ("WebP", 37, 5)
    assert image_size(encode("PNG", {}, 5000, 1)) == ("PNG", 5000, 1)
    assert image_size(encode("WEBP", {"lossless": True}, 16383, 1)) == ("WebP", 16383, 1)


@pytest.mark.parametrize("fmt", [(*f, "RGB") for f in FORMATS] + [("WEBP", {}, "WebP", "RGBA")],
                         ids=lambda f: f"{f[0]}-{f[3]}{'-' + '-'.join(f[1]) if f[1] else ''}")
def test_a_cut_header_or_other_bytes_never_give_a_wrong_size(fmt):
    data = encode(fmt[0], fmt[1], 23, 17, mode=fmt[3])
    whole = image_size(data)
    assert whole == (fmt[2], 23, 17)
    for cut in range(len(data)):
        assert image_size(data[:cut]) in (None, whole)
    assert image_size(b"%PDF-1.7\n" + data) is None
    assert image_size(b"") is None and image_size(b"just some text") is None


def test_a_data_url_image_is_described_by_format_pixels_and_bytes(mock):
    png = encode("PNG", {}, 64, 32)
    parts = [{"type": "text", "text": "What is this?"},
             {"type": "image_url", "image_url": {"url": data_url(png), "detail": "low"}},
             {"type": "image_url", "image_url": {"url": data_url(encode("GIF", {}, 3, 4), "image/gif")}}]
    answer = chat(mock, parts).json()["choices"][0]
    assert answer["message"]["content"] == (
        f"Image 1 is a PNG image of 64x32 pixels ({len(png)} bytes), detail low. "
        f"Image 2 is a GIF image of 3x4 pixels ({len(encode('GIF', {}, 3, 4))} bytes).")
    assert answer["finish_reason"] == "stop"
    assert chat(mock, parts).json()["choices"][0] == answer  # deterministic


def test_an_http_image_is_named_and_never_fetched(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the mock opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert describe([part]) == "Image 1 is at https://example.com/cat.jpg (not fetched)."


def test_bytes_that_are_no_image_and_data_that_does_not_decode():
    assert describe([{"type": "image_url", "image_url": {"url": data_url(b"hello", "image/png")}}]) == \
        "Image 1 is 5 bytes of image/png data in no format I can read (PNG, JPEG, GIF, WebP, BMP)."
    assert describe([{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]) == \
        "Image 1 is a image/png data URL whose base64 data does not decode."
    assert describe([{"type": "image_url", "image_url": "data:,hi%20there"}]) == \
        "Image 1 is 8 bytes of text/plain data in no format I can read (PNG, JPEG, GIF, WebP, BMP)."


def test_files_are_described_by_name_size_and_first_line():
    text = "\n  first line — here  \nsecond\n".encode()  # bytes, not characters, are counted
    files = [
        {"type": "file", "file": {"filename": "notes.txt",
                                  "file_data": data_url(text, "text/plain")}},
        {"type": "file", "file": {"filename": "raw.txt", "file_data": base64.b64encode(b"plain base64").decode()}},
        {"type": "file", "file": {"filename": "doc.pdf", "file_data": data_url(b"%PDF-1.7\n...", "application/pdf")}},
        {"type": "file", "file": {"filename": "blob.bin", "file_data": data_url(b"\x00\x01\xff", "application/x")}},
        {"type": "file", "file": {"filename": "pic.webp", "file_data": data_url(encode("WEBP", {}, 9, 9))}},
        {"type": "file", "file": {"file_id": "file-abc123"}},
        {"type": "file", "file": {"filename": "bad.txt", "file_data": "not base64!"}},
    ]
    webp = len(encode("WEBP", {}, 9, 9))
    assert describe(files) == " ".join([
        f"File 1, notes.txt, holds {len(text)} bytes of text; its first line is \"first line — here\".",
        "File 2, raw.txt, holds 12 bytes of text; its first line is \"plain base64\".",
        "File 3, doc.pdf, is a PDF document of 12 bytes.",
        "File 4, blob.bin, holds 3 bytes of binary data.",
        f"File 5, pic.webp, is a WebP image of 9x9 pixels ({webp} bytes).",
        "File 6 is the uploaded file file-abc123, which I cannot open.",
        "File 7, bad.txt, is base64 data that does not decode.",
    ])


def test_only_the_last_user_message_is_described(mock):
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    messages = [{"role": "user", "content": [image]}, {"role": "assistant", "content": "An image."},
                {"role": "user", "content": "And now?"}]
    assert attachments(messages) == [] and attachments(messages[:1]) == [image]
    answer = mock.post("/v1/chat/completions", json={"model": "mock-1", "messages": messages}).json()
    assert "example.com" not in answer["choices"][0]["message"]["content"]


def test_streamed_answer_equals_the_non_streamed_one_and_max_tokens_cuts_it(mock):
    parts = [{"type": "image_url", "image_url": {"url": data_url(encode("JPEG", {}, 640, 480), "image/jpeg")}}]
    whole = chat(mock, parts).json()["choices"][0]["message"]["content"]
    raw = chat(mock, parts, stream=True).text
    chunks = [json.loads(line[6:]) for line in raw.split("\n") if line.startswith("data: {")]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(p for p in pieces if p) == whole and "640x480" in whole
    assert len([p for p in pieces if p]) == len(whole.split())  # one word a token
    cut = chat(mock, parts, max_tokens=4).json()["choices"][0]
    assert cut["finish_reason"] == "length" and cut["message"]["content"] == " ".join(whole.split()[:4])


# -- the text-only model refuses as vLLM 0.32 does ----------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
def test_text_only_model_refuses_an_image_as_vllm(mock, stream):
    parts = [{"type": "text", "text": "what is it"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    r = chat(mock, parts, model="mock-text-only", stream=stream)
    assert r.status_code == 400
    assert r.json() == {"error": {"message": "mock-text-only is not a multimodal model", "type": "BadRequestError",
                                  "param": None, "code": 400}}


def test_text_only_model_refuses_a_file_part_and_images_anywhere_in_the_history(mock):
    file = {"type": "file", "file": {"filename": "a.txt", "file_data": base64.b64encode(b"hi").decode()}}
    r = chat(mock, [file], model="mock-text-only")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error == {"message": "Unsupported chat content part type: 'file'. Supported types: "
                                f"{', '.join(VLLM_PART_TYPES)}. (parameter=type, value=file)",
                     "type": "BadRequestError", "param": "type", "code": 400}
    assert list(VLLM_PART_TYPES) == sorted(VLLM_PART_TYPES)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    history = [{"role": "user", "content": [image]}, {"role": "assistant", "content": "ok"},
               {"role": "user", "content": "and?"}]
    r = mock.post("/v1/chat/completions", json={"model": "mock-text-only", "messages": history})
    assert r.status_code == 400 and "not a multimodal model" in r.json()["error"]["message"]


def test_text_only_model_answers_text(mock):
    r = chat(mock, [{"type": "text", "text": "hello there"}], model="mock-text-only")
    assert r.status_code == 200 and len(r.json()["choices"][0]["message"]["content"].split()) == 24
    # the default model takes the same image the text-only one refuses
    parts = [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]
    assert chat(mock, parts).status_code == 200


# -- through the gateway: input_image / input_file as a Responses client sends them --------------

@pytest.mark.parametrize("streamed", [False, True])
def test_the_gateway_answer_describes_an_image_and_a_file(client, stream, check_events, validate, streamed):
    png = encode("PNG", {}, 3, 2)
    request = {"model": "mock-1", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What are these?"},
        {"type": "input_image", "image_url": data_url(png)},
        {"type": "input_file", "filename": "a.txt", "file_data": data_url(b"line one\nline two", "text/plain")}]}]}
    if streamed:
        r, _, events = stream(client, request)
        out = check_events(events)
    else:
        r = client.post("/responses", json=request)
        out = validate(r.json())
    assert r.status_code == 200
    assert out["output"][0]["content"][0]["text"] == (
        f"Image 1 is a PNG image of 3x2 pixels ({len(png)} bytes). "
        "File 1, a.txt, holds 17 bytes of text; its first line is \"line one\".")


@pytest.mark.parametrize("streamed", [False, True])
def test_the_gateway_passes_on_the_text_only_models_refusal(client, streamed):
    request = {"model": "mock-text-only", "stream": streamed, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "https://example.invalid/cat.png"}]}]}
    r = client.post("/responses", json=request)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"] == "mock-text-only is not a multimodal model"
    assert set(error) == {"message", "type", "param", "code"}
    assert client.post("/responses", json={"model": "mock-text-only", "input": "hi"}).status_code == 200
