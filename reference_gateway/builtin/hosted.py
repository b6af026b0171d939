"""A request's built-in tools, checked against what this gateway can run, as upstream functions.

The upstream model sees each hosted tool as a function tool:

    mcp tool T of server L      ``mcp__L__T`` with T's input schema (from ``tools/list``)
    code_interpreter            ``code_interpreter(code: string)``
    web_search                  ``web_search(query: string)``

and the gateway maps a call of one of those names back to the hosted tool (``Hosted.resolve``).
A function tool of the request with one of these names is refused (400), so the mapping is
never ambiguous.

Refusals (400 ``unsupported_parameter`` naming the tool, before anything is sent upstream):
code_interpreter when the gateway runs none (``--code-interpreter disabled`` or no sandbox
installed); web_search forced by ``tool_choice`` without ``--web-search-profile``; an mcp tool
whose ``server_url`` is not on the allowlist, or whose ``server_label`` is not configured and
brings no URL. Decision: a feature the gateway cannot deliver is refused, never silently dropped
(DESIGN principle 5), with one exception, listed in the README's policy table
(reference_gateway/policy.py): a web_search tool that is only *offered* (Codex offers one on
every request) to a gateway without a search profile is accepted and not offered to the model,
which answers from what it knows, as a model that chose not to search would; forcing it is
still refused.

``require_approval`` (OpenAI's default is ``"always"``): ``"always"`` / ``"never"``, or
``{"always": {"tool_names": [...]}, "never": {"tool_names": [...]}}`` (a tool in neither list
needs approval). ``allowed_tools``: a list of names or ``{"tool_names": [...]}``; the others are
not listed and not offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reference_gateway.builtin.config import LABEL_PATTERN, BuiltinConfig, McpServer
from reference_gateway.errors import invalid, unsupported
from reference_gateway.input_items import type_error
from reference_gateway.tools import NAME_PATTERN, WEB_SEARCH_TYPES

CODE_FUNCTION = "code_interpreter"
SEARCH_FUNCTION = "web_search"
MCP_PREFIX = "mcp__"

CODE_PARAMETERS = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "Python 3 source to run. The value of the last "
                                                             "expression and everything printed is returned."}},
    "required": ["code"], "additionalProperties": False,
}
SEARCH_PARAMETERS = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to search the web for."}},
    "required": ["query"], "additionalProperties": False,
}


def mcp_function_name(label: str, tool: str) -> str:
    return f"{MCP_PREFIX}{label}__{tool}"


@dataclass(frozen=True)
class McpTool:
    """One ``{"type": "mcp"}`` entry of the request, resolved to a server."""
    index: int  # in the request's tools
    label: str
    server: McpServer
    allowed: frozenset[str] | None  # None: every listed tool
    always: frozenset[str]
    never: frozenset[str]
    default_approval: bool  # a tool in neither list needs approval

    def needs_approval(self, name: str) -> bool:
        if name in self.never:
            return False
        if name in self.always:
            return True
        return self.default_approval


@dataclass
class Hosted:
    """The request's hosted tools; ``listed`` is filled as each MCP server's tools are known."""
    mcp: list[McpTool] = field(default_factory=list)
    code_interpreter: bool = False
    web_search: bool = False
    listed: dict[str, list[dict]] = field(default_factory=dict)  # label -> tools offered

    def __bool__(self) -> bool:
        return bool(self.mcp or self.code_interpreter or self.web_search)

    def functions(self) -> list[dict]:
        """The chat-completions tools the upstream is offered for the hosted tools."""
        out = []
        for tool in self.mcp:
            for t in self.listed.get(tool.label, []):
                out.append(_chat_function(mcp_function_name(tool.label, t["name"]), t.get("description"),
                                          t.get("input_schema") or {"type": "object"}))
        if self.code_interpreter:
            out.append(_chat_function(CODE_FUNCTION, "Run Python code in a sandbox with no network.",
                                      CODE_PARAMETERS))
        if self.web_search:
            out.append(_chat_function(SEARCH_FUNCTION, "Search the web.", SEARCH_PARAMETERS))
        return out

    def resolve(self, function: str) -> tuple[str, McpTool | None, str | None]:
        """``(kind, mcp tool, tool name)`` for a function the upstream called; kind is
        ``mcp``, ``code_interpreter``, ``web_search`` or ``function`` (not hosted)."""
        if function == CODE_FUNCTION and self.code_interpreter:
            return "code_interpreter", None, None
        if function == SEARCH_FUNCTION and self.web_search:
            return "web_search", None, None
        if function.startswith(MCP_PREFIX):
            for tool in self.mcp:
                prefix = mcp_function_name(tool.label, "")
                if function.startswith(prefix):
                    name = function[len(prefix):]
                    if any(t["name"] == name for t in self.listed.get(tool.label, [])):
                        return "mcp", tool, name
        return "function", None, None

    def forced_choice(self, tool_choice: Any) -> Any:
        """The upstream's ``tool_choice`` for the first turn when a hosted tool is forced."""
        if not isinstance(tool_choice, dict):
            return tool_choice
        kind = tool_choice.get("type")
        if kind == "code_interpreter":
            return {"type": "function", "function": {"name": CODE_FUNCTION}}
        if kind in WEB_SEARCH_TYPES:
            return {"type": "function", "function": {"name": SEARCH_FUNCTION}}
        if kind == "mcp":
            if tool_choice.get("name"):
                return {"type": "function",
                        "function": {"name": mcp_function_name(tool_choice["server_label"], tool_choice["name"])}}
            return "required"
        return None


def _chat_function(name: str, description: str | None, parameters: dict) -> dict:
    function = {"name": name, "parameters": parameters}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def _names(value: Any, where: str) -> frozenset[str]:
    """A list of tool names, or ``{"tool_names": [...]}`` (the SDK's McpToolFilter)."""
    if isinstance(value, dict):
        unknown = set(value) - {"tool_names", "read_only"}
        if unknown:
            raise unsupported(f"{where}.{sorted(unknown)[0]}")
        if value.get("read_only") is not None:
            raise unsupported(f"{where}.read_only", "filtering MCP tools by read_only")
        value = value.get("tool_names") or []
        where = f"{where}.tool_names"
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise type_error(where, "an array of tool names", value)
    return frozenset(value)


def _approval(value: Any, where: str) -> tuple[frozenset[str], frozenset[str], bool]:
    if value is None or value == "always":
        return frozenset(), frozenset(), True
    if value == "never":
        return frozenset(), frozenset(), False
    if not isinstance(value, dict):
        raise invalid(f"Invalid value for '{where}': expected 'always', 'never' or an object.", param=where)
    unknown = set(value) - {"always", "never"}
    if unknown:
        raise invalid(f"Unknown parameter: '{where}.{sorted(unknown)[0]}'.", param=f"{where}.{sorted(unknown)[0]}",
                      code="unknown_parameter")
    always = _names(value["always"], f"{where}.always") if value.get("always") is not None else frozenset()
    never = _names(value["never"], f"{where}.never") if value.get("never") is not None else frozenset()
    return always, never, True


# ``tool_choice`` types that force a web search (the SDK's ToolChoiceTypes).
WEB_SEARCH_CHOICES = ("web_search_preview", "web_search_preview_2025_03_11")


def hosted_tools(tools: tuple[dict, ...], function_names: list[str], *, config: BuiltinConfig,
                 code_interpreter: bool, web_search_profile: str | None,
                 request_headers: dict[int, dict[str, str]], tool_choice: Any = None) -> Hosted:
    """``tools``: the request's tools as parsed (tools.py). ``request_headers``: the ``headers``
    a request gave an mcp tool (index -> headers), which tools.py keeps out of the echo."""
    hosted = Hosted()
    for i, tool in enumerate(tools):
        kind, where = tool["type"], f"tools[{i}]"
        if kind == "function":
            continue
        if kind == "code_interpreter":
            if not code_interpreter:
                raise unsupported("tools", "code_interpreter tools (this gateway runs no code interpreter: "
                                  "--code-interpreter disabled or no sandbox installed)")
            hosted.code_interpreter = True
        elif kind in WEB_SEARCH_TYPES:
            if web_search_profile is None:
                if isinstance(tool_choice, dict) and tool_choice.get("type") in WEB_SEARCH_CHOICES:
                    raise unsupported("tools", "web_search tools (this gateway has no --web-search-profile)")
                continue  # offered only: not offered to the model (the policy table's row)
            hosted.web_search = True
        elif kind == "mcp":
            hosted.mcp.append(_mcp_tool(i, tool, where, config, request_headers.get(i) or {}))
    reserved = [n for n in function_names if n in (CODE_FUNCTION, SEARCH_FUNCTION) or n.startswith(MCP_PREFIX)]
    if hosted and reserved:
        raise invalid(f"Invalid 'tools': the function name {reserved[0]!r} is reserved for built-in tools.",
                      param="tools")
    return hosted


def _mcp_tool(index: int, tool: dict, where: str, config: BuiltinConfig, headers: dict[str, str]) -> McpTool:
    label = tool["server_label"]
    if not LABEL_PATTERN.match(label):
        raise invalid(f"Invalid '{where}.server_label': 1-32 letters, digits, '-' or '_'.",
                      param=f"{where}.server_label")
    url = tool.get("server_url")
    if url is not None:
        if not config.url_allowed(url):
            raise unsupported(f"{where}.server_url", "MCP server URLs that the gateway's allowServerUrls does not "
                              "list (--mcp-config)")
        server = McpServer(label, url, dict(headers))
    elif label in config.servers:
        configured = config.servers[label]
        server = McpServer(label, configured.url, {**configured.headers, **headers})
    else:
        raise invalid(f"Invalid '{where}': no MCP server labelled {label!r} is configured, and no server_url "
                      "was given.", param=f"{where}.server_label")
    allowed = None
    if tool.get("allowed_tools") is not None:
        allowed = _names(tool["allowed_tools"], f"{where}.allowed_tools")
        bad = [n for n in allowed if not NAME_PATTERN.match(n)]
        if bad:
            raise invalid(f"Invalid '{where}.allowed_tools': {bad[0]!r} is not a tool name.",
                          param=f"{where}.allowed_tools")
    always, never, default = _approval(tool.get("require_approval"), f"{where}.require_approval")
    return McpTool(index, label, server, allowed, always, never, default)
