"""An image's format and pixel size, read from its header bytes (PNG, JPEG, GIF, WebP, BMP).

The embedded model describes the images it is given (mock_attachments.py) without a runtime
dependency: these headers are a few fixed offsets each (PNG's IHDR, GIF's logical screen, the
three WebP chunk kinds, BMP's info header; JPEG needs a walk over its segments to the first
start-of-frame). Pillow is used only by the tests, to make images of every size and format and
check these readings against it.
"""

from __future__ import annotations

import struct

# JPEG start-of-frame markers: SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field: TEM, RST0..RST7, SOI, EOI.
JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """``(format, width, height)``, format one of PNG, JPEG, GIF, WebP, BMP; None when the
    bytes are not one of these or their header is cut short."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return "PNG", width, height
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return "GIF", width, height
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"BM" and len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            return "BMP", width, abs(height)
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
    except struct.error:
        return None
    return None


def _webp(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":  # lossy: the key frame's start code
        width, height = struct.unpack("<HH", data[26:30])
        return "WebP", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":  # lossless: 14 bits each, minus one
        bits = struct.unpack("<I", data[21:25])[0]
        return "WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:  # extended: the canvas, 24 bits each, minus one
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return "WebP", width, height
    return None


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_STANDALONE:
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker in JPEG_FRAMES:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return "JPEG", width, height
        if length < 2:
            return None
        at += 2 + length
    return None
