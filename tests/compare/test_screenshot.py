"""comparison.html renders in a real browser: headless Chromium takes a screenshot from disk.

Skipped only where Chromium is absent and this is not CI; under CI (``$CI`` set) it must run,
and .ci/run installs Chromium first.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from compare_fixtures import write_runs

from harness.report.compare import write_comparison

WIDTH, HEIGHT = 1400, 1000
CHROMIUM_TIMEOUT_S = 60
# The page's own colours, as solid fills (verdict cells, score bars, fail cells).
FAIL_RED, PASS_GREEN = (0xCF, 0x22, 0x2E), (0x1A, 0x7F, 0x37)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) pixels) of an 8-bit non-interlaced RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    width, height, depth, color_type, _, _, interlace = ihdr
    assert depth == 8 and color_type in (2, 6) and interlace == 0, ihdr
    bpp = 3 if color_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), width * bpp
    assert len(raw) == height * (stride + 1)
    rows, prev = [], bytearray(stride)
    for y in range(height):  # PNG filters (RFC 2083, 6.2-6.6)
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r) if bpp == 3 else b"".join(
        r[i:i + 3] for i in range(0, len(r), 4)) for r in rows]


@pytest.mark.skipif(_chromium() is None and not os.environ.get("CI"),
                    reason="chromium is not installed (apt-get install chromium; .ci/run does); "
                    "under CI this test always runs")
def test_comparison_page_renders_in_chromium(tmp_path):
    chromium = _chromium()
    assert chromium, "CI must have chromium: .ci/run installs it (apt-get install chromium)"
    runs = write_runs(tmp_path / "runs")
    _, paths = write_comparison(runs, tmp_path / "cmp")
    png = tmp_path / "comparison.png"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
           f"--window-size={WIDTH},{HEIGHT}", paths["html"].resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    assert png.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    assert png.stat().st_size > 20_000  # a blank 1400x1000 PNG is a few kB

    width, height, rows = read_png(png)
    assert (width, height) == (WIDTH, HEIGHT)
    colors = {row[i:i + 3] for row in rows[::10] for i in range(0, len(row), 3)}
    assert len(colors) > 50, f"the page looks blank ({len(colors)} colours)"
    pixels = {row[i:i + 3] for row in rows for i in range(0, len(row), 3)}
    # The inline CSS applied: solid red (FAIL verdict, fail cells) and green (pass bars).
    assert bytes(FAIL_RED) in pixels and bytes(PASS_GREEN) in pixels
