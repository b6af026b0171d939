"""Targets: the server a run judges. ``reference`` (the embedded gateway over its embedded
deterministic upstream, started on free loopback ports) or any base URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from harness.catalogue import load_profile

# How long a preflight GET /models may take before the target is declared unreachable.
PREFLIGHT_TIMEOUT_S = 10.0
EMBEDDED_MODEL = "mock-1"


class TargetError(Exception):
    """The target cannot be used; the message says what to do (exit code 2)."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    base_url: str  # ends in /v1
    model: str
    api_key: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "base_url": self.base_url, "model": self.model}


def normalize_base_url(url: str) -> str:
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise TargetError(f"target {url!r} is not an http(s) URL; pass e.g. "
                          "--target http://127.0.0.1:8000/v1")
    if url.endswith("/responses"):
        url = url[: -len("/responses")]
    if not url.endswith("/v1"):
        url += "/v1"
    return url


def _discover_model(base_url: str, api_key: str | None, model: str | None = None) -> str:
    """The model to send: ``model`` if given, else the first one GET /models lists. The GET is
    made either way: a target that does not answer at all cannot be judged (exit 2), and
    saying so beats a report of every scenario failing transport.reachable."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(base_url + "/models", headers=headers, timeout=PREFLIGHT_TIMEOUT_S,
                         trust_env=False)
    except httpx.HTTPError as exc:
        raise TargetError(f"target {base_url} is unreachable ({type(exc).__name__}: {exc}); "
                          "start the server or fix --target") from None
    if model:
        return model  # any HTTP answer (even 404: /models is optional) proves it is up
    try:
        models = [m["id"] for m in resp.json().get("data", [])]
    except (ValueError, AttributeError, KeyError, TypeError):
        models = []
    if resp.status_code != 200 or not models:
        raise TargetError(f"GET {base_url}/models gave HTTP {resp.status_code} and no model; "
                          "pass --model NAME")
    return models[0]


@contextlib.contextmanager
def open_target(url: str | None = None, *, model: str | None = None,
                api_key: str | None = None, name: str | None = None,
                profile: str = "openai") -> Iterator[Target]:
    """Yield a ready Target; start (and afterwards stop) the embedded one when url is None.

    The embedded gateway is configured for the profile being judged: where the profile
    requires the ``data: [DONE]`` sentinel, the gateway sends it (``--done-sentinel``)."""
    if url is None or url == "reference":
        from reference_gateway.launch import start_embedded

        done = load_profile(profile).done_sentinel == "required"
        try:
            embedded = start_embedded(done_sentinel=done)
        except (RuntimeError, OSError) as exc:
            raise TargetError(f"could not start the embedded reference gateway: {exc}") from None
        try:
            yield Target(name or "reference", embedded.base_url, model or EMBEDDED_MODEL)
        finally:
            embedded.close()
        return
    base = normalize_base_url(url)
    chosen = _discover_model(base, api_key, model)
    yield Target(name or base.split("//", 1)[1].split("/", 1)[0], base, chosen, api_key)
