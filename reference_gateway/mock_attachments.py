"""Images and files in the chat messages the embedded model receives: what it answers about
them, and how its text-only model refuses them.

The default model answers a last user message that holds ``image_url`` or ``file`` content
parts with one sentence per part, in order (``describe``), from the bytes alone and never from
the network:

- ``image_url`` with a data URL: its format and pixel size read from the header bytes
  (image_header.py: PNG, JPEG, GIF, WebP, BMP) and its size in bytes, e.g. ``Image 1 is a PNG
  image of 64x32 pixels (1234 bytes).``; bytes in no such format give their media type and
  size; a ``detail`` other than ``auto`` is named.
- ``image_url`` with any other URL (``http(s)://``): just the URL. Nothing is fetched.
- ``file`` with ``file_data`` (base64, or a data URL as OpenAI's SDK examples send it): its
  ``filename``, its size in bytes, and what it is: an image (as above), a PDF, text (with its
  first line, up to ``FIRST_LINE_CHARS`` characters) or binary data. With only a ``file_id``:
  the id.

``TEXT_ONLY_MODEL`` is the default model without vision, refusing as vLLM refuses media for a
text-only model (vLLM 0.32, read in vllm/renderers/chat_utils.py and
vllm/multimodal/registry.py): the first media part of any message (``image_url``,
``input_image``, ``audio_url``, ``input_audio``, ``video_url``) gets HTTP 400
``{"error": {"message": "<model> is not a multimodal model", "type": "BadRequestError",
"param": null, "code": 400}}``; a part of a type vLLM does not know (``file``) gets HTTP 400
``Unsupported chat content part type: 'file'. Supported types: ... (parameter=type,
value=file)`` with ``param: "type"`` (every vLLM model refuses that one).
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from reference_gateway.image_header import image_size

TEXT_ONLY_MODEL = "mock-text-only"
FIRST_LINE_CHARS = 200
# vLLM 0.32's content part types (the keys of MM_PARSER_MAP plus text and refusal), sorted as
# its error message lists them.
VLLM_PART_TYPES = ("audio_embeds", "audio_url", "image_embeds", "image_pil", "image_url", "input_audio",
                   "input_image", "input_text", "output_text", "prompt_embeds", "refusal", "text", "thinking",
                   "tool_reference", "video_embeds", "video_url")
VLLM_MEDIA_TYPES = frozenset({"image_url", "input_image", "audio_url", "input_audio", "video_url"})


def _parts(message) -> list[dict]:
    content = message.get("content") if isinstance(message, dict) else None
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def attachments(messages: list) -> list[dict]:
    """The ``image_url`` and ``file`` parts of the last message, when it is a user message."""
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if last.get("role") != "user":
        return []
    return [p for p in _parts(last) if p.get("type") in ("image_url", "file")]


def decode_data_url(url: str) -> tuple[str, bytes | None]:
    """(media type, bytes or None when the data does not decode) of a ``data:`` URL."""
    header, _, payload = url[len("data:"):].partition(",")
    is_base64 = header.lower().endswith(";base64")
    media_type = (header[: -len(";base64")] if is_base64 else header).split(";")[0] or "text/plain"
    if not is_base64:
        return media_type, urllib.parse.unquote_to_bytes(payload)
    return media_type, _base64(payload)


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _bytes_phrase(size: int) -> str:
    return "1 byte" if size == 1 else f"{size} bytes"


def _image_phrase(data: bytes, media_type: str) -> str:
    found = image_size(data)
    if found is None:
        return (f"{_bytes_phrase(len(data))} of {media_type} data in no format I can read "
                "(PNG, JPEG, GIF, WebP, BMP)")
    kind, width, height = found
    return f"a {kind} image of {width}x{height} pixels ({_bytes_phrase(len(data))})"


def _describe_image(number: int, part: dict) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    detail = image.get("detail") if isinstance(image, dict) else None
    tail = f", detail {detail}" if isinstance(detail, str) and detail != "auto" else ""
    if not isinstance(url, str) or not url:
        return f"Image {number} has no URL."
    if url.startswith("data:"):
        media_type, data = decode_data_url(url)
        if data is None:
            return f"Image {number} is a {media_type} data URL whose base64 data does not decode{tail}."
        return f"Image {number} is {_image_phrase(data, media_type)}{tail}."
    return f"Image {number} is at {url} (not fetched){tail}."


def _describe_file(number: int, part: dict) -> str:
    file = part.get("file") if isinstance(part.get("file"), dict) else {}
    name = file.get("filename")
    label = f"File {number}, {name}," if isinstance(name, str) and name else f"File {number}"
    data_field = file.get("file_data")
    if not isinstance(data_field, str):
        file_id = file.get("file_id")
        if isinstance(file_id, str):
            return f"{label} is the uploaded file {file_id}, which I cannot open."
        return f"{label} has no data."
    if data_field.startswith("data:"):
        media_type, data = decode_data_url(data_field)
    else:
        media_type, data = "application/octet-stream", _base64(data_field)
    if data is None:
        return f"{label} is base64 data that does not decode."
    if image_size(data) is not None:
        return f"{label} is {_image_phrase(data, media_type)}."
    if data.startswith(b"%PDF-"):
        return f"{label} is a PDF document of {_bytes_phrase(len(data))}."
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return f"{label} holds {_bytes_phrase(len(data))} of binary data."
    if not text.strip():
        return f"{label} holds {_bytes_phrase(len(data))} of text, all blank."
    first = next(line for line in text.splitlines() if line.strip()).strip()
    if len(first) > FIRST_LINE_CHARS:
        first = first[:FIRST_LINE_CHARS] + "…"
    return f"{label} holds {_bytes_phrase(len(data))} of text; its first line is \"{first}\"."


def describe(parts: list[dict]) -> str:
    """The answer about ``parts`` (``attachments``): one sentence each (module docstring)."""
    sentences, images, files = [], 0, 0
    for part in parts:
        if part.get("type") == "image_url":
            images += 1
            sentences.append(_describe_image(images, part))
        else:
            files += 1
            sentences.append(_describe_file(files, part))
    return " ".join(sentences)


def text_only_refusal(model: str, messages: list) -> tuple[int, dict] | None:
    """vLLM's answer to media sent to a text-only model (module docstring), or None."""
    for message in messages:
        for part in _parts(message):
            kind = part.get("type")
            if kind in VLLM_MEDIA_TYPES:
                error = {"message": f"{model} is not a multimodal model", "type": "BadRequestError",
                         "param": None, "code": 400}
                return 400, {"error": error}
            if isinstance(kind, str) and kind not in VLLM_PART_TYPES:
                message_text = (f"Unsupported chat content part type: {kind!r}. Supported types: "
                                f"{', '.join(VLLM_PART_TYPES)}. (parameter=type, value={kind})")
                return 400, {"error": {"message": message_text, "type": "BadRequestError", "param": "type",
                                       "code": 400}}
    return None
