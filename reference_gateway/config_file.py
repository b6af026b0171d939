"""Reading a JSON configuration file named by a flag (``--mcp-config``, ``--routes``): one line
naming the flag, the file and what is wrong, as the error type the caller gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_json(path: str | Path, *, flag: str, error: type[Exception]) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise error(f"{flag} {path}: not JSON ({exc})") from None
