"""Several upstreams, routed by model (``--routes FILE``).

The file is JSON::

    {
      "upstreams": {
        "gpu-a": {"url": "http://10.0.0.5:8000/v1", "api_key_env": "GPU_A_KEY"},
        "cloud": {"url": "https://api.example.com/v1", "api_key_env": "CLOUD_KEY",
                  "api_kind": "responses"}
      },
      "routes": [
        {"model": "llama-3.1-8b", "upstream": "gpu-a"},
        {"prefix": "gpt-", "upstream": "cloud"}
      ]
    }

Decisions:

- A request's ``model`` is matched against the routes in order: ``model`` is an exact name,
  ``prefix`` a string prefix; the first match wins. No match: 404 ``model_not_found`` (OpenAI's
  answer for a model that does not exist), before anything is sent anywhere. Without
  ``--routes`` the gateway has one upstream (``--upstream``) and sends every model there.
- An upstream's key comes from the environment variable ``api_key_env`` names (read when the
  file is read; a variable that is not set is an error naming it), never from the file, so the
  file can be committed and shared.
- ``api_kind`` per upstream: ``chat_completions`` (default) or ``responses`` (its native
  ``/v1/responses``; native.py).
- ``GET /v1/models`` lists the union of every upstream's ``/models`` that route to it: a model
  an exact route names is listed (owned by its upstream), and so is each model an upstream lists
  that a prefix route sends to it. An upstream that cannot be reached is left out of the list
  (the list is still an answer), and logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_gateway.builtin.config import normalize_url
from reference_gateway.config_file import load_json

API_KINDS = ("chat_completions", "responses")


class RoutesError(ValueError):
    """The routes file is wrong; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    url: str
    api_key: str | None = None
    api_kind: str = "chat_completions"

    def __repr__(self) -> str:  # never the key
        return f"UpstreamSpec({self.name!r}, {self.url!r}, api_kind={self.api_kind!r})"


@dataclass(frozen=True)
class Route:
    upstream: str
    model: str | None = None
    prefix: str | None = None

    def matches(self, model: str) -> bool:
        return model == self.model if self.model is not None else model.startswith(self.prefix or "")


@dataclass(frozen=True)
class Routes:
    upstreams: dict[str, UpstreamSpec]
    routes: tuple[Route, ...]

    def upstream_for(self, model: str) -> UpstreamSpec | None:
        for route in self.routes:
            if route.matches(model):
                return self.upstreams[route.upstream]
        return None

    def routes_to(self, model: str, upstream: str) -> bool:
        spec = self.upstream_for(model)
        return spec is not None and spec.name == upstream


def parse_routes(data: Any, *, source: str = "routes") -> Routes:
    if not isinstance(data, dict) or set(data) - {"upstreams", "routes"}:
        raise RoutesError(f"{source}: expected an object with \"upstreams\" and \"routes\"")
    raw = data.get("upstreams")
    if not isinstance(raw, dict) or not raw:
        raise RoutesError(f"{source}: \"upstreams\" must name at least one upstream")
    upstreams = {}
    for name, entry in raw.items():
        where = f"{source}: upstreams.{name}"
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or normalize_url(entry["url"]) is None:
            raise RoutesError(f"{where}: needs a \"url\" (http:// or https://, e.g. http://127.0.0.1:8000/v1)")
        unknown = set(entry) - {"url", "api_key_env", "api_kind"}
        if unknown:
            raise RoutesError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        kind = entry.get("api_kind", "chat_completions")
        if kind not in API_KINDS:
            raise RoutesError(f"{where}.api_kind: one of {', '.join(API_KINDS)}")
        key = None
        if entry.get("api_key_env") is not None:
            variable = entry["api_key_env"]
            if not isinstance(variable, str) or variable not in os.environ:
                raise RoutesError(f"{where}.api_key_env: environment variable {variable} is not set")
            key = os.environ[variable]
        upstreams[name] = UpstreamSpec(name, entry["url"], key, kind)
    rules = data.get("routes")
    if not isinstance(rules, list) or not rules:
        raise RoutesError(f"{source}: \"routes\" must be a non-empty list of {{model|prefix, upstream}}")
    routes = []
    for i, rule in enumerate(rules):
        where = f"{source}: routes[{i}]"
        if not isinstance(rule, dict) or rule.get("upstream") not in upstreams:
            raise RoutesError(f"{where}: \"upstream\" must name one of {', '.join(upstreams)}")
        model, prefix = rule.get("model"), rule.get("prefix")
        if (model is None) == (prefix is None) or not isinstance(model if model is not None else prefix, str):
            raise RoutesError(f"{where}: give exactly one of \"model\" (a name) or \"prefix\" (a string)")
        if set(rule) - {"model", "prefix", "upstream"}:
            raise RoutesError(f"{where}: unknown key {sorted(set(rule) - {'model', 'prefix', 'upstream'})[0]!r}")
        routes.append(Route(rule["upstream"], model, prefix))
    return Routes(upstreams, tuple(routes))


def read_routes(path: str | Path) -> Routes:
    return parse_routes(load_json(path, flag="--routes", error=RoutesError), source=str(path))
