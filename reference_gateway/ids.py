"""Object ids: a prefix OpenAI uses (``resp``, ``msg``, ``fc``, ``call``, ``rs``) + random hex."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """``<prefix>_`` followed by 48 hex digits, the length OpenAI's ids have."""
    return f"{prefix}_{secrets.token_hex(24)}"
