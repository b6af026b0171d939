"""Image and file content parts of an input message: checked (``media_part``) into the form
``GET .../input_items`` lists, and turned into the chat upstream's parts (``chat_content``).

    input_image  ``image_url``: an ``http(s)://`` URL or a ``data:image/...;base64,`` URL;
                 ``detail``: auto (default), low, high or original. Sent upstream as the chat
                 part ``{"type": "image_url", "image_url": {"url", "detail"}}`` (``original``,
                 which chat completions has no word for, as ``high``: the most detail it offers).
    input_file   ``file_data`` (the file's content, base64, usually a ``data:...;base64,`` URL)
                 with an optional ``filename``. Sent upstream as the chat part
                 ``{"type": "file", "file": {"file_data", "filename"}}``.

Refused with 400 ``unsupported_parameter`` naming the field, before anything is sent upstream:

- ``file_id`` (either part): it names a file of OpenAI's Files API, which this gateway does not
  have; nothing could resolve it. Send the bytes (``image_url`` as a data URL, ``file_data``).
- ``input_file.file_url``: chat completions' file part has no URL form, and the gateway never
  fetches a URL a client sends (no SSRF through the gateway). Send ``file_data``.

An image URL is passed to the upstream untouched and never fetched by the gateway; whether the
upstream fetches it (vLLM does, within its own ``--allowed-media-domains``) is the upstream's
policy. An upstream that cannot take images or files answers 4xx, and that answer reaches the
client as an error envelope with the upstream's status and message (upstream.py).
``prompt_cache_breakpoint`` (a caching hint) is accepted and not passed on.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

from reference_gateway.errors import invalid, unsupported

MEDIA_PART_TYPES = ("input_image", "input_file")
# ImageDetail of the pinned SDK; chat completions knows the first three.
IMAGE_DETAILS = ("auto", "low", "high", "original")
FILE_DETAILS = ("auto", "low", "high")
CHAT_DETAIL = {"original": "high"}
IMAGE_URL_SCHEMES = ("http://", "https://", "data:")
DATA_IMAGE_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.ASCII)
KNOWN_KEYS = {
    "input_image": frozenset({"type", "image_url", "file_id", "detail", "prompt_cache_breakpoint"}),
    "input_file": frozenset({"type", "file_data", "file_id", "file_url", "filename", "detail",
                             "prompt_cache_breakpoint"}),
}


def _string(part: dict, key: str, where: str, *, required: bool = False) -> str | None:
    value = part.get(key)
    if value is None:
        if required:
            raise invalid(f"Missing required parameter: '{where}.{key}'.", param=f"{where}.{key}",
                          code="missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid type for '{where}.{key}': expected a string.", param=f"{where}.{key}",
                      code="invalid_type")
    return value


def _one_of(part: dict, key: str, where: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = _string(part, key, where)
    if value is None:
        return default
    if value not in allowed:
        raise invalid(f"Invalid value for '{where}.{key}': expected one of {', '.join(allowed)}.",
                      param=f"{where}.{key}")
    return value


def _refuse_file_id(part: dict, where: str) -> None:
    if part.get("file_id") is not None:
        raise unsupported(f"{where}.file_id", "'file_id' (this gateway has no Files API: send the content "
                                              "itself, as a data URL or file_data)")


def _check_base64(url: str, where: str) -> None:
    try:
        binascii.a2b_base64(url.split(",", 1)[1].encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise invalid(f"Invalid '{where}.image_url': the data URL's content is not valid base64.",
                      param=f"{where}.image_url") from None


def media_part(part: dict, where: str) -> dict:
    """An ``input_image`` or ``input_file`` part, checked and normalized (module docstring)."""
    kind = part["type"]
    for key in part:
        if key not in KNOWN_KEYS[kind]:
            raise invalid(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}", code="unknown_parameter")
    _refuse_file_id(part, where)
    if kind == "input_image":
        url = _string(part, "image_url", where, required=True)
        if not url.startswith(IMAGE_URL_SCHEMES):
            raise invalid(f"Invalid '{where}.image_url': expected an http(s) URL or a data URL.",
                          param=f"{where}.image_url")
        if url.startswith("data:"):
            if not DATA_IMAGE_URL.match(url):
                raise invalid(f"Invalid '{where}.image_url': a data URL must be 'data:image/<type>;base64,<data>'.",
                              param=f"{where}.image_url")
            _check_base64(url, where)
        return {"type": "input_image", "detail": _one_of(part, "detail", where, IMAGE_DETAILS, "auto"),
                "file_id": None, "image_url": url}
    if part.get("file_url") is not None:
        raise unsupported(f"{where}.file_url", "'file_url' (the gateway fetches no URL, and chat upstreams "
                                               "take no file URL: send the content as file_data)")
    normalized = {"type": "input_file", "file_data": _string(part, "file_data", where, required=True)}
    filename = _string(part, "filename", where)
    if filename is not None:
        normalized["filename"] = filename
    detail = _one_of(part, "detail", where, FILE_DETAILS, None)
    if detail is not None:
        normalized["detail"] = detail
    return normalized


def chat_part(part: dict) -> dict:
    """One normalized input part -> the chat-completions content part."""
    if part["type"] == "input_image":
        return {"type": "image_url", "image_url": {"url": part["image_url"],
                                                   "detail": CHAT_DETAIL.get(part["detail"], part["detail"])}}
    if part["type"] == "input_file":
        file = {"file_data": part["file_data"]}
        if part.get("filename") is not None:
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    return {"type": "text", "text": part.get("text", "")}


def chat_content(content: Any) -> str | list[dict]:
    """A message's content for the chat upstream: its text when it is all text (what every chat
    server takes), else the list of chat parts (text, image_url, file) in the client's order."""
    if isinstance(content, str):
        return content
    if any(part.get("type") in MEDIA_PART_TYPES for part in content):
        return [chat_part(part) for part in content]
    return "".join(part.get("text", "") for part in content)
