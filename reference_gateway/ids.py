"""Object ids: a prefix OpenAI uses (``resp``, ``msg``, ``fc``, ``call``, ``rs``) + random hex.

The random part is ``RANDOM_BITS`` bits from ``secrets`` (the OS's CSPRNG, safe across forks
and never seeded by ``random.seed``): 192 bits, 48 hex digits, the length OpenAI's ids have, and
well past the 128 bits that make an id unguessable. An id is therefore not a secret key but
cannot be enumerated: a tenant cannot find another's responses by guessing ids (and could not
read them anyway, auth.py), and ids from any number of processes never collide in a shared store.
"""

from __future__ import annotations

import secrets

RANDOM_BITS = 192


def new_id(prefix: str) -> str:
    """``<prefix>_`` followed by ``RANDOM_BITS // 4`` hex digits."""
    return f"{prefix}_{secrets.token_hex(RANDOM_BITS // 8)}"
