"""The servers a conformance run starts for its scenarios: an MCP tool server and an MCP search
backend (harness/targets/mcp_servers.py), on loopback, for as long as the target is open.

Scenarios reach them through template variables (harness/run/template.py)::

    {{mcp.tools_url}}     the tools server's Streamable HTTP endpoint (add, echo, fail, slow)
    {{mcp.search_url}}    the search backend's endpoint (search)
    {{mcp.tools_label}}   the server_label the scenarios use for the tools server

Any target is sent the tools server's URL in ``{"type": "mcp", "server_url": ...}`` (a server on
the same machine reaches loopback). A reference gateway the harness starts is configured for
them (``gateway_fields``): the tools server's URL is on its ``allowServerUrls``, and its
``web_search`` tools are served by the search backend (profile ``SEARCH_PROFILE``), with the code
interpreter in ``auto`` mode (the Pyodide sandbox when installed: scripts/install-pyodide.sh).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reference_gateway.builtin.config import BuiltinConfig, McpServer, WebSearchProfile

TOOLS_LABEL = "respcheck"
SEARCH_LABEL = "respcheck-search"
SEARCH_PROFILE = "respcheck"


@dataclass(frozen=True)
class SuiteServers:
    tools_url: str
    search_url: str

    @property
    def variables(self) -> dict[str, Any]:
        return {"mcp": {"tools_url": self.tools_url, "search_url": self.search_url, "tools_label": TOOLS_LABEL}}

    def gateway_fields(self) -> dict[str, Any]:
        """GatewayConfig fields of a reference gateway that serves the built-in tool scenarios."""
        builtin = BuiltinConfig(
            servers={SEARCH_LABEL: McpServer(SEARCH_LABEL, self.search_url)},
            allow_server_urls=(self.tools_url,),
            web_search_profiles={SEARCH_PROFILE: WebSearchProfile(SEARCH_PROFILE, SEARCH_LABEL, "search")})
        return {"builtin": builtin, "web_search_profile": SEARCH_PROFILE, "code_interpreter": "auto"}


@contextlib.contextmanager
def open_suite_servers() -> Iterator[SuiteServers]:
    # deferred: the MCP servers bring in mcp, uvicorn and starlette
    from harness.targets.mcp_servers import start_search_server, start_tools_server

    with start_tools_server() as tools, start_search_server() as search:
        yield SuiteServers(tools.url, search.url)
