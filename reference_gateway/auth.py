"""API keys and tenants: who may call the gateway, and whose stored responses a request sees.

Keys come from ``--api-key KEY`` (repeatable) and ``--api-keys-file FILE``. Clients send one as
``Authorization: Bearer KEY``, as OpenAI's SDKs do. Decisions:

- No key configured: the gateway is open and every response belongs to one tenant,
  ``ANONYMOUS_OWNER`` (a client's Authorization header, if any, is ignored: the harness sends
  ``--api-key`` to any target, the embedded gateway included).
- Keys configured: every route but ``GET /health`` and ``GET /metrics`` needs one of them. A
  missing header, a header that is not ``Bearer <key>`` and an unknown key all get 401 with
  OpenAI's envelope (``type`` ``invalid_request_error``, ``code`` ``invalid_api_key``) and
  ``WWW-Authenticate: Bearer`` (RFC 9110, 15.5.2 requires the header on a 401; RFC 6750, 3
  names the scheme). The message never echoes the presented key, not even masked.
  ``/health`` stays open: load balancers and orchestrators probe it without credentials, and it
  tells nothing but "up". ``/metrics`` stays open too (issue 8): Prometheus scrapes with no
  tenant's key, and it shows counts and timings by route, status and error kind: no response
  id, key, tenant, model output or stored data. It does show how busy the gateway is; where
  that matters, keep the port off untrusted networks (or ``--no-metrics``). Authentication
  comes before routing: an unknown route without a key is 401, not 404 (as OpenAI's service
  answers).
- A key's tenant is ``sha256:`` + SHA-256 of a domain prefix and the key: the store holds that,
  never the key, and every process sharing a store computes the same tenant for the same key.
  Each key is its own tenant, by design: keys handed to different clients never share data,
  and rotating a key moves to a new tenant (responses made with the old key stay readable with
  the old key only). Keys should carry 128 bits or more of randomness: a store holding hashes
  of guessable keys leaks them to whoever reads it.
- Keys are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured
  key (no early exit), so the time taken says nothing about how much of a key was right.
- Key syntax: 1 to ``MAX_KEY_LENGTH`` visible ASCII characters (``!`` to ``~``): anything with
  spaces or other characters cannot travel unambiguously in ``Bearer <key>``, and is refused at
  startup naming its position, never its value.

Keys file format: UTF-8 text, one key per line; surrounding whitespace is ignored; empty lines
and lines whose first non-blank character is ``#`` are skipped (no trailing comments: ``#`` is a
valid key character). A file with no key is an error (an empty file silently opening the gateway
would be the worst way to fail). The file is read once at startup.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request

from reference_gateway.errors import APIError
from reference_gateway.store_contract import ANONYMOUS_OWNER

MAX_KEY_LENGTH = 512
TENANT_DOMAIN = b"reference-gateway tenant v1\x00"
OPEN_PATHS = frozenset({"/health", "/metrics"})
CHALLENGE = [(b"www-authenticate", b'Bearer realm="reference-gateway"')]


def tenant_of(key: str) -> str:
    """The owner recorded for responses made with ``key`` (the key itself is never stored)."""
    return "sha256:" + hashlib.sha256(TENANT_DOMAIN + key.encode("ascii")).hexdigest()


def _valid(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all("!" <= ch <= "~" for ch in key)


def check_keys(keys: Iterable[str], *, source: str = "--api-key") -> tuple[str, ...]:
    """The keys, or ValueError naming the first bad one by position (never by value)."""
    keys = tuple(keys)
    for n, key in enumerate(keys, 1):
        if not isinstance(key, str) or not _valid(key):
            raise ValueError(f"{source} #{n} is not a valid API key: use 1 to {MAX_KEY_LENGTH} visible ASCII "
                             "characters, no spaces")
    return keys


def read_keys_file(path: str | Path) -> tuple[str, ...]:
    """Keys from a keys file (format in the module docstring); ValueError with one line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the API keys file {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the API keys file {str(path)!r} is not UTF-8 text") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _valid(line):
            raise ValueError(f"{path}, line {number}: not a valid API key (1 to {MAX_KEY_LENGTH} visible ASCII "
                             "characters, no spaces; comment lines start with '#')")
        keys.append(line)
    if not keys:
        raise ValueError(f"the API keys file {str(path)!r} holds no key (one key per line; '#' starts a comment)")
    return tuple(keys)


def unauthorized(message: str) -> APIError:
    return APIError(401, message, code="invalid_api_key")


MISSING = ("You didn't provide an API key. Send it in an Authorization header using Bearer auth "
           "(Authorization: Bearer YOUR_KEY).")
MALFORMED = "Invalid Authorization header: expected 'Bearer YOUR_KEY'."
INCORRECT = "Incorrect API key provided."


class Keyring:
    """The configured keys, as digests; ``tenant(authorization header)`` or a 401 APIError."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [hashlib.sha256(key.encode("ascii")).digest() for key in check_keys(keys)]

    @property
    def open(self) -> bool:
        return not self._digests

    def tenant(self, authorization: str | None) -> str:
        if self.open:
            return ANONYMOUS_OWNER
        if authorization is None or not authorization.strip():
            raise unauthorized(MISSING)
        scheme, _, key = authorization.strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:  # auth-scheme is case-insensitive (RFC 9110, 11.1)
            raise unauthorized(MALFORMED)
        if not _valid(key):
            raise unauthorized(INCORRECT)
        digest = hashlib.sha256(key.encode("ascii")).digest()
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(digest, known)
        if not found:
            raise unauthorized(INCORRECT)
        return tenant_of(key)


class RequireAPIKey:
    """ASGI middleware: authenticate every HTTP request but ``OPEN_PATHS``, put the tenant in
    ``scope["state"]["tenant"]`` (``request.state.tenant``; read it with ``tenant(request)``)."""

    def __init__(self, app, *, keyring: Keyring) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPEN_PATHS:
            owner = ANONYMOUS_OWNER
        else:
            header = None
            for name, value in scope.get("headers") or ():
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            try:
                owner = self.keyring.tenant(header)
            except APIError as exc:
                response = exc.response()
                response.raw_headers.extend(CHALLENGE)
                await response(scope, receive, send)
                return
        scope.setdefault("state", {})["tenant"] = owner
        await self.app(scope, receive, send)


def tenant(request: Request) -> str:
    """The owner of what this request stores and may see (set by ``RequireAPIKey``)."""
    return request.state.tenant
