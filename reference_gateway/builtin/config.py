"""``--mcp-config FILE``: which MCP servers the gateway may call, and its web-search profiles.

The file is JSON, in the shape MCP clients already use for their servers (``mcpServers``)::

    {
      "mcpServers": {
        "calc":   {"url": "http://127.0.0.1:9000/mcp"},
        "search": {"url": "http://127.0.0.1:9001/mcp",
                   "headers": {"Authorization": "Bearer ${SEARCH_TOKEN}"}}
      },
      "allowServerUrls": ["http://127.0.0.1:9002/"],
      "webSearchProfiles": {"default": {"server": "search", "tool": "search"}}
    }

Decisions:

- A request's ``{"type": "mcp", "server_label": L}`` without ``server_url`` uses server ``L``
  of ``mcpServers``. A request that brings its own ``server_url`` is served only when that URL
  starts with one of ``allowServerUrls`` (plain string prefixes, compared after parsing: scheme
  and host are lower-cased); otherwise 400 naming ``tools[i].server_url``. The default list is
  empty: a gateway never calls a URL a client made up unless its operator said so (the gateway
  would otherwise be a request-forgery relay into its own network).
- ``${NAME}`` in a header value is replaced by the environment variable ``NAME`` when the file
  is read (a missing one is an error naming it): secrets stay out of the file.
- A web-search profile names an MCP server of ``mcpServers`` and the tool to call; the tool gets
  ``{"query": Q}`` (plus ``max_results`` when the tool's schema has it) and answers JSON text:
  a list of ``{"title", "url", "snippet"}`` (the shape harness/mcp_servers.py serves). Its urls
  become ``web_search_call.action.sources``.

Errors are one line naming the file and the key (``ConfigError``), never a traceback.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reference_gateway.config_file import load_json

# A server_label as OpenAI accepts it (letters, digits, '-' and '_'); the gateway puts it in a
# function name (``mcp__<label>__<tool>``, at most 64 characters), so it is kept short.
LABEL_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,32}$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The MCP config file is wrong; the message is one line naming the file and the key."""


@dataclass(frozen=True)
class McpServer:
    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class WebSearchProfile:
    name: str
    server: str  # a label of ``BuiltinConfig.servers``
    tool: str = "search"


@dataclass(frozen=True)
class BuiltinConfig:
    servers: dict[str, McpServer] = field(default_factory=dict)
    allow_server_urls: tuple[str, ...] = ()
    web_search_profiles: dict[str, WebSearchProfile] = field(default_factory=dict)

    def url_allowed(self, url: str) -> bool:
        normal = normalize_url(url)
        return normal is not None and any(normal.startswith(normalize_url(p) or p) for p in self.allow_server_urls)


def normalize_url(url: str) -> str | None:
    """``http(s)://host[:port]/path`` with scheme and host lower-cased; None if not http(s)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _expand(value: str, where: str) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV.sub(one, value)


def parse_config(data: Any, *, source: str = "mcp config") -> BuiltinConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object at the top")
    unknown = set(data) - {"mcpServers", "allowServerUrls", "webSearchProfiles"}
    if unknown:
        raise ConfigError(f"{source}: unknown key {sorted(unknown)[0]!r} (expected mcpServers, allowServerUrls, "
                          "webSearchProfiles)")
    servers: dict[str, McpServer] = {}
    raw_servers = data.get("mcpServers") or {}
    if not isinstance(raw_servers, dict):
        raise ConfigError(f"{source}: mcpServers must be an object of label -> {{url, headers}}")
    for label, entry in raw_servers.items():
        where = f"{source}: mcpServers.{label}"
        if not LABEL_PATTERN.match(label):
            raise ConfigError(f"{where}: a label is 1-32 letters, digits, '-' or '_'")
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError(f"{where}: needs a \"url\" string (a Streamable HTTP endpoint)")
        if normalize_url(entry["url"]) is None:
            raise ConfigError(f"{where}.url: must be an http:// or https:// URL")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{where}.headers: must be an object of strings")
        servers[label] = McpServer(label, entry["url"],
                                   {k: _expand(v, f"{where}.headers.{k}") for k, v in headers.items()})
    allow = data.get("allowServerUrls") or []
    if not isinstance(allow, list) or not all(isinstance(u, str) and normalize_url(u) for u in allow):
        raise ConfigError(f"{source}: allowServerUrls must be a list of http(s) URL prefixes")
    profiles: dict[str, WebSearchProfile] = {}
    raw_profiles = data.get("webSearchProfiles") or {}
    if not isinstance(raw_profiles, dict):
        raise ConfigError(f"{source}: webSearchProfiles must be an object of name -> {{server, tool}}")
    for name, entry in raw_profiles.items():
        where = f"{source}: webSearchProfiles.{name}"
        if not isinstance(entry, dict) or entry.get("server") not in servers:
            raise ConfigError(f"{where}: \"server\" must name one of mcpServers ({', '.join(servers) or 'none'})")
        tool = entry.get("tool", "search")
        if not isinstance(tool, str) or not tool:
            raise ConfigError(f"{where}.tool: must be a tool name")
        profiles[name] = WebSearchProfile(name, entry["server"], tool)
    return BuiltinConfig(servers=servers, allow_server_urls=tuple(allow), web_search_profiles=profiles)


def read_config(path: str | Path) -> BuiltinConfig:
    return parse_config(load_json(path, flag="--mcp-config", error=ConfigError), source=str(path))
