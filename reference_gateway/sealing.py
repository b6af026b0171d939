"""Opaque blobs the gateway hands a client and takes back: the ``encrypted_content`` of a
``compaction`` item (compaction.py) and of a ``reasoning`` item (``include:
["reasoning.encrypted_content"]``, reasoning.py).

Both carry context the client sends back on a later turn (typically with ``store: false``, so the
gateway keeps nothing), and the gateway must be able to trust what comes back: a blob is sealed
with AES-256-GCM (authenticated encryption, from the ``cryptography`` package) under a key
derived from the gateway's seal key *and the tenant* (the API key's owner, auth.py):

    key(owner)  = HMAC-SHA256(seal_key, "rg-seal-v1\\0" + owner)
    blob        = "rgs1." + base64url(nonce[12] || AES-GCM(key(owner), nonce, zlib(JSON), aad=purpose))

- a blob altered by one bit, made by another gateway (another seal key), given to another
  tenant, or of another purpose (a reasoning blob as a compaction item) does not open: 400
  ``invalid_encrypted_content`` naming ``input[i].encrypted_content``;
- what a blob holds is the client's own context; sealing it keeps it from being forged or moved
  between tenants, and keeps its wire form private to the gateway (clients must not parse it);
- the seal key is 32 random bytes made when the config is made, so every ``--workers`` process
  of one gateway shares it (worker.py hands the config over), but a restart makes a new one and
  older blobs stop opening. ``--seal-key-file FILE`` (at least 32 bytes; the file's bytes, or
  the 64 hex digits it holds) keeps them valid across restarts and across gateways that share
  a store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import zlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reference_gateway.errors import invalid

PREFIX = "rgs1."
NONCE_BYTES = 12  # AES-GCM's standard nonce (NIST SP 800-38D, 8.2)
KEY_BYTES = 32
# A sealed blob's largest decompressed size: the request body cap (config.py) is 1 MiB by
# default, and zlib inflates at most ~1000x; 64 MiB bounds what a hostile blob can expand to.
MAX_OPENED_BYTES = 64 * 1024 * 1024
DOMAIN = b"rg-seal-v1\0"


class SealKeyError(ValueError):
    """A seal key file that cannot be used (one line: which file, what is wrong)."""


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def read_key_file(path: str) -> bytes:
    """The seal key in ``path``: 64 hex digits (a line of ``openssl rand -hex 32``) or at least
    32 raw bytes (``head -c 32 /dev/urandom``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SealKeyError(f"{path}: cannot read the seal key file: {exc.strerror or exc}") from None
    text = data.strip()
    try:
        if len(text) >= 2 * KEY_BYTES and all(c in b"0123456789abcdefABCDEF" for c in text):
            return bytes.fromhex(text.decode())
    except ValueError:
        pass
    if len(data) < KEY_BYTES:
        raise SealKeyError(f"{path}: a seal key needs at least {KEY_BYTES} bytes (e.g. `openssl rand -hex 32 > "
                           f"{path}`), the file has {len(data)}")
    return data


class Sealer:
    """Seals and opens blobs for one gateway (one seal key)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < KEY_BYTES:
            raise ValueError(f"a seal key needs at least {KEY_BYTES} bytes")
        self._key = key

    def _cipher(self, owner: str) -> AESGCM:
        derived = hmac.new(self._key, DOMAIN + owner.encode(), hashlib.sha256).digest()
        return AESGCM(derived)

    def seal(self, value: Any, *, owner: str, purpose: str) -> str:
        """``value`` (JSON) sealed for ``owner``; opens only with the same owner and purpose."""
        plain = zlib.compress(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(owner).encrypt(nonce, plain, purpose.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, blob: Any, *, owner: str, purpose: str, param: str) -> Any:
        """What ``blob`` sealed, or 400 ``invalid_encrypted_content`` naming ``param``."""
        bad = invalid(f"Invalid '{param}': not {purpose} content sealed by this gateway for this API key "
                      "(altered, from another gateway or key, or made before the gateway's seal key changed).",
                      param=param, code="invalid_encrypted_content")
        if not isinstance(blob, str) or not blob.startswith(PREFIX):
            raise bad
        text = blob[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise bad from None
        if len(raw) <= NONCE_BYTES:
            raise bad
        try:
            plain = self._cipher(owner).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode())
        except InvalidTag:
            raise bad from None
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(plain, MAX_OPENED_BYTES)
            if inflater.unconsumed_tail:
                raise bad
            return json.loads(data)
        except (zlib.error, ValueError, UnicodeDecodeError):
            raise bad from None
