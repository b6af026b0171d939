"""Tools: validation of ``tools`` / ``tool_choice`` and the function tools' chat-completions form.

Function tools (``{"type": "function"}``) go to the upstream model as they are. ``namespace``
tools (Codex sends them: ``{"type": "namespace", "name": NS, "description", "tools": [functions]}``)
offer their functions to a chat upstream as ``NS__NAME`` (``namespaced_name``; chat has no
namespaces); a call the upstream makes to one comes back as OpenAI returns it, a
``function_call`` with ``name: NAME`` and ``namespace: NS`` (the SDK's
ResponseFunctionToolCall.namespace), and a ``function_call`` item fed back with its namespace is
shown to the upstream under the same joined name, so its ``function_call_output`` (matched by
``call_id``) answers it. Built-in tools
(``HOSTED_TYPES``: ``mcp``, ``code_interpreter``, ``web_search``) are validated here for their
shape only; whether this gateway can run them, and how the upstream sees them, is
reference_gateway/builtin/hosted.py's business. Any other type is refused with
``unsupported_parameter``. ``tool_choice``:

    "auto" | "none" | "required"                 passed through to chat
    {"type": "function", "name": N}              chat {"type": "function", "function": {"name": N}}
    {"type": "allowed_tools", "mode": M,         only those tools are sent upstream, with
     "tools": [{"type": "function", "name"}]}    chat tool_choice M; a call to any other tool
                                                 fails the response (see below)
    {"type": "mcp", "server_label": L[, "name": N]}   a hosted tool of the request, forced on
    {"type": "code_interpreter"} | {"type": "web_search"}   the first upstream turn (hosted.py)

``allowed_tools`` is a hard constraint (Open Responses: "any tool call to a tool not listed MUST
be rejected or suppressed by the server"), and so is ``tools`` itself: a chat model may still
call a tool it was not offered. Of the spec's options the gateway takes "treating it as a model
error": such a call (``disallowed_calls``) fails the whole response, and never reaches the
client as a function_call. Streamed, calls are buffered until the upstream ends (emitter.py), so
nothing of it was sent: the stream ends ``error`` (code ``tool_not_allowed``) then
``response.failed``; non-streamed, the Response is ``failed`` with no output (the built-in tool
loop, builtin/loop.py: a 502 ``tool_not_allowed`` envelope); a native upstream's calls are held
to it too (native.py, N8). Dropping the call and
keeping the rest was not chosen: the client would get a turn the model did not make (with
``mode: required``, perhaps no call at all) and no sign that anything was removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reference_gateway.errors import invalid, unsupported
from reference_gateway.input_items import shown, type_error

# OpenAI's rule for function names (API reference, FunctionTool.name).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
FUNCTION_KEYS = ("type", "name", "description", "parameters", "strict")
# OpenAI's documented cap on the number of tools in one request.
MAX_TOOLS = 128
# Built-in tool types this gateway knows (the web_search aliases are the SDK's WebSearchTool and
# WebSearchPreviewTool type names) and the fields each may carry.
WEB_SEARCH_TYPES = ("web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11")
HOSTED_FIELDS = {
    "mcp": ("type", "server_label", "server_url", "server_description", "allowed_tools", "require_approval",
            "headers", "authorization", "connector_id", "defer_loading"),
    "code_interpreter": ("type", "container"),
    **{t: ("type", "search_context_size", "user_location", "filters", "external_web_access")
       for t in WEB_SEARCH_TYPES},
}
HOSTED_TYPES = frozenset(HOSTED_FIELDS)
NAMESPACE_KEYS = ("type", "name", "description", "tools")
# How a namespaced function is named to a chat upstream (chat completions has no namespaces).
NAMESPACE_SEPARATOR = "__"


def namespaced_name(namespace: str | None, name: str) -> str:
    """The chat upstream's name of function ``name`` of ``namespace`` (``name`` without one)."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name
# ``tool_choice`` types that force a built-in tool (the SDK's ToolChoiceMcp and ToolChoiceTypes:
# web search is forced as web_search_preview, whichever web search tool type was given).
HOSTED_CHOICES = ("mcp", "code_interpreter", "web_search_preview", "web_search_preview_2025_03_11")


@dataclass(frozen=True)
class ToolSetup:
    tools: tuple[dict, ...]  # as echoed in the Response (SDK FunctionTool / hosted tool shapes)
    tool_choice: Any  # as echoed: a string or the requested object
    allowed: frozenset[str]  # function names the upstream may call
    # Credentials a request gave its mcp tools (index in tools -> headers), never echoed/stored.
    mcp_headers: tuple[tuple[int, dict], ...] = ()

    @property
    def functions(self) -> tuple[dict, ...]:
        return tuple(t for t in self.tools if t["type"] == "function")

    @property
    def namespaced(self) -> dict[str, tuple[str, dict]]:
        """Chat name -> (namespace, function tool) of every function of a namespace tool."""
        return {namespaced_name(t["name"], f["name"]): (t["name"], f)
                for t in self.tools if t["type"] == "namespace" for f in t["tools"]}

    def split(self, chat_name: str) -> tuple[str | None, str]:
        """(namespace or None, name) of a function the chat upstream called by ``chat_name``."""
        found = self.namespaced.get(chat_name)
        return (found[0], found[1]["name"]) if found else (None, chat_name)

    def _offered(self) -> list[dict]:
        """The functions a chat upstream is offered, namespaced ones under their chat name."""
        plain = list(self.functions)
        joined = [{**f, "name": chat} for chat, (_, f) in self.namespaced.items()]
        return plain + joined

    @property
    def hosted(self) -> tuple[tuple[int, dict], ...]:
        """``(index in tools, tool)`` of the built-in tools."""
        return tuple((i, t) for i, t in enumerate(self.tools) if t["type"] in HOSTED_TYPES)

    def chat_fields(self, parallel_tool_calls: bool) -> dict:
        sent = [t for t in self._offered() if t["name"] in self.allowed]
        if not sent:
            return {}
        fields: dict = {"tools": [_chat_tool(t) for t in sent], "parallel_tool_calls": parallel_tool_calls}
        choice = self.tool_choice
        if isinstance(choice, str):
            fields["tool_choice"] = choice
        elif choice["type"] == "function":
            fields["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif choice["type"] == "allowed_tools":
            fields["tool_choice"] = choice["mode"]
        else:  # a hosted tool forced: hosted.py sets the upstream's choice
            fields["tool_choice"] = "auto"
        return fields

    def disallowed_calls(self, names: list[str]) -> list[str]:
        """Names of calls the upstream made to tools it was not offered."""
        return [n for n in names if n not in self.allowed]


def _chat_tool(tool: dict) -> dict:
    function = {"name": tool["name"]}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _hosted_tool(tool: dict, where: str) -> dict:
    """A built-in tool's shape (what it means is hosted.py's). Echoed as sent, except that
    ``headers``/``authorization`` (credentials for an MCP server) are never echoed or stored."""
    kind = tool["type"]
    for key, value in tool.items():
        if key not in HOSTED_FIELDS[kind] and value is not None:
            raise unsupported(f"{where}.{key}", f"{kind} tool field {key!r}")
    echoed = dict(tool)
    if kind == "mcp":
        for key in ("server_label", "server_url", "server_description"):
            if tool.get(key) is not None and not isinstance(tool[key], str):
                raise type_error(f"{where}.{key}", "a string", tool[key])
        if tool.get("server_label") is None:
            raise invalid(f"Missing required parameter: '{where}.server_label'.", param=f"{where}.server_label",
                          code="missing_required_parameter")
        for key in ("connector_id", "defer_loading"):
            if tool.get(key) is not None:
                raise unsupported(f"{where}.{key}", f"mcp tool field {key!r}")
        headers = tool.get("headers")
        if headers is not None and (not isinstance(headers, dict)
                                    or not all(isinstance(v, str) for v in headers.values())):
            raise type_error(f"{where}.headers", "an object of strings", headers)
        if tool.get("authorization") is not None and not isinstance(tool["authorization"], str):
            raise type_error(f"{where}.authorization", "a string", tool["authorization"])
        echoed["headers"] = None
        echoed.pop("authorization", None)
        echoed.setdefault("server_url", None)
        echoed.setdefault("allowed_tools", None)
        echoed.setdefault("require_approval", "always")
    elif kind in WEB_SEARCH_TYPES:
        _web_search_fields(tool, where)
    elif kind == "code_interpreter":
        container = tool.get("container")
        if container is None:
            raise invalid(f"Missing required parameter: '{where}.container'.", param=f"{where}.container",
                          code="missing_required_parameter")
        if not isinstance(container, (str, dict)):
            raise type_error(f"{where}.container", "a string or an object", container)
        if isinstance(container, dict) and container.get("type") != "auto":
            raise invalid(f"Invalid value for '{where}.container.type': expected 'auto'.",
                          param=f"{where}.container.type")
    return echoed


# The web_search tool's fields (the SDK's WebSearchToolParam): shapes checked here; what the
# gateway does with each is the README's policy table (policy.py): filters.allowed_domains
# honoured by the built-in search, the others accepted as hints.
SEARCH_CONTEXT_SIZES = ("low", "medium", "high")
USER_LOCATION_KEYS = ("type", "city", "country", "region", "timezone")


def _web_search_fields(tool: dict, where: str) -> None:
    size = tool.get("search_context_size")
    if size is not None and size not in SEARCH_CONTEXT_SIZES:
        raise invalid(f"Invalid value for '{where}.search_context_size': expected one of "
                      f"{', '.join(SEARCH_CONTEXT_SIZES)}.", param=f"{where}.search_context_size")
    access = tool.get("external_web_access")
    if access is not None and not isinstance(access, bool):
        raise type_error(f"{where}.external_web_access", "a boolean", access)
    location = tool.get("user_location")
    if location is not None:
        if not isinstance(location, dict):
            raise type_error(f"{where}.user_location", "an object", location)
        for key, value in location.items():
            if key not in USER_LOCATION_KEYS:
                raise invalid(f"Unknown parameter: '{where}.user_location.{key}'.",
                              param=f"{where}.user_location.{key}", code="unknown_parameter")
            if value is not None and not isinstance(value, str):
                raise type_error(f"{where}.user_location.{key}", "a string", value)
    filters = tool.get("filters")
    if filters is not None:
        if not isinstance(filters, dict):
            raise type_error(f"{where}.filters", "an object", filters)
        for key in filters:
            if key != "allowed_domains":
                raise invalid(f"Unknown parameter: '{where}.filters.{key}'.", param=f"{where}.filters.{key}",
                              code="unknown_parameter")
        domains = filters.get("allowed_domains")
        if domains is not None and (not isinstance(domains, list) or not all(isinstance(d, str) for d in domains)):
            raise type_error(f"{where}.filters.allowed_domains", "an array of strings", domains)


def _tool_name(tool: dict, where: str) -> str:
    """A function's or a namespace's ``name``: present, a string, and a name chat upstreams take."""
    name = tool.get("name")
    if name is None:
        raise invalid(f"Missing required parameter: '{where}.name'.", param=f"{where}.name",
                      code="missing_required_parameter")
    if not isinstance(name, str):
        raise type_error(f"{where}.name", "a string", name)
    if not NAME_PATTERN.match(name):
        raise invalid(f"Invalid '{where}.name': must match {NAME_PATTERN.pattern}.", param=f"{where}.name")
    return name


def _namespace_tool(tool: dict, where: str) -> dict:
    """A ``namespace`` tool (the SDK's NamespaceToolParam): a name, a description, functions."""
    for key, value in tool.items():
        if key not in NAMESPACE_KEYS and value is not None:
            raise unsupported(f"{where}.{key}", f"namespace tool field {key!r}")
    name = _tool_name(tool, where)
    if tool.get("description") is not None and not isinstance(tool["description"], str):
        raise type_error(f"{where}.description", "a string", tool["description"])
    inner = tool.get("tools")
    if not isinstance(inner, list) or not inner:
        raise type_error(f"{where}.tools", "a non-empty array of function tools", inner)
    functions = []
    for j, function in enumerate(inner):
        inner_where = f"{where}.tools[{j}]"
        if not isinstance(function, dict) or function.get("type") != "function":
            raise unsupported(f"{inner_where}.type", "namespace tools holding anything but functions")
        parsed = _function_tool(function, inner_where)
        chat = namespaced_name(name, parsed["name"])
        if not NAME_PATTERN.match(chat):
            raise invalid(f"Invalid '{inner_where}.name': '{chat}' (namespace, '{NAMESPACE_SEPARATOR}', name: how a "
                          f"chat upstream is offered it) must match {NAME_PATTERN.pattern}.",
                          param=f"{inner_where}.name")
        functions.append(parsed)
    return {"type": "namespace", "name": name, "description": tool.get("description"), "tools": functions}


def _function_tool(tool: Any, where: str) -> dict:
    if not isinstance(tool, dict):
        raise type_error(where, "an object", tool)
    if tool.get("type") in HOSTED_TYPES:
        return _hosted_tool(tool, where)
    if tool.get("type") == "namespace":
        return _namespace_tool(tool, where)
    if tool.get("type") != "function":
        # param stays "tools": the whole feature, not one field, is what is refused.
        raise unsupported("tools", f"tools of type {tool.get('type')!r}")
    for key, value in tool.items():
        if key not in FUNCTION_KEYS and value is not None:
            raise unsupported(f"{where}.{key}", f"function tool field {key!r}")
    name = _tool_name(tool, where)
    for key, kind, expected in (("description", str, "a string"), ("parameters", dict, "an object"),
                                ("strict", bool, "a boolean")):
        if tool.get(key) is not None and not isinstance(tool[key], kind):
            raise type_error(f"{where}.{key}", expected, tool[key])
    return {"type": "function", "name": name, "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


def _hosted_choice(choice: dict, hosted: list[dict]) -> dict:
    kind = choice["type"]
    if kind == "mcp":
        label = choice.get("server_label")
        if not any(t["type"] == "mcp" and t["server_label"] == label for t in hosted):
            raise invalid(f"Invalid 'tool_choice': no mcp tool with server_label {shown(label)} in 'tools'.",
                          param="tool_choice.server_label")
        name = choice.get("name")
        if name is not None and not isinstance(name, str):
            raise type_error("tool_choice.name", "a string", name)
        return {"type": "mcp", "server_label": label, "name": name}
    wanted = WEB_SEARCH_TYPES if kind in WEB_SEARCH_TYPES else (kind,)
    if not any(t["type"] in wanted for t in hosted):
        raise invalid(f"Invalid 'tool_choice': no {kind} tool in 'tools'.", param="tool_choice.type")
    return {"type": kind}


def _choice(choice: Any, names: list[str], hosted: list[dict] = (),
            namespaced: list[str] = ()) -> tuple[Any, frozenset[str]]:
    everything = frozenset(names) | frozenset(namespaced)
    if choice is None:
        return "auto", everything
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise invalid("Invalid value for 'tool_choice': expected 'auto', 'none' or 'required'.",
                          param="tool_choice")
        if choice == "required" and not everything and not hosted:
            raise invalid("'tool_choice' is 'required' but no tools were given.", param="tool_choice")
        return choice, everything
    if not isinstance(choice, dict):
        raise type_error("tool_choice", "a string or an object", choice)
    kind = choice.get("type")
    if kind in HOSTED_CHOICES:
        return _hosted_choice(choice, list(hosted)), everything
    if kind == "function":
        name = choice.get("name")
        if name not in everything:
            raise invalid(f"Invalid 'tool_choice': no function tool named {name!r} in 'tools'.",
                          param="tool_choice.name")
        return {"type": "function", "name": name}, everything
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise invalid("Invalid value for 'tool_choice.mode': expected 'auto' or 'required'.",
                          param="tool_choice.mode")
        listed = choice.get("tools")
        if not isinstance(listed, list) or not listed:
            raise type_error("tool_choice.tools", "a non-empty array", listed)
        allowed = []
        for i, ref in enumerate(listed):
            if not isinstance(ref, dict) or ref.get("type") != "function":
                raise unsupported(f"tool_choice.tools[{i}]", "allowed tools other than functions")
            if ref.get("name") not in everything:
                raise invalid(f"Invalid 'tool_choice.tools[{i}]': no function tool named {ref.get('name')!r}.",
                              param=f"tool_choice.tools[{i}].name")
            allowed.append(ref["name"])
        echoed = {"type": "allowed_tools", "mode": mode, "tools": [{"type": "function", "name": n} for n in allowed]}
        return echoed, frozenset(allowed)
    raise unsupported("tool_choice", f"tool_choice of type {kind!r}")


def parse_tools(body: dict) -> ToolSetup:
    tools = body.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise type_error("tools", "an array", tools)
    if len(tools) > MAX_TOOLS:
        raise invalid(f"Invalid 'tools': at most {MAX_TOOLS} tools.", param="tools", code="array_above_max_length")
    parsed = [_function_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    names = [t["name"] for t in parsed if t["type"] == "function"]
    joined = [namespaced_name(t["name"], f["name"]) for t in parsed if t["type"] == "namespace" for f in t["tools"]]
    if len(set(names + joined)) != len(names) + len(joined):
        raise invalid("Invalid 'tools': function names must be unique (a namespace's function NAME counts as "
                      f"NAMESPACE{NAMESPACE_SEPARATOR}NAME).", param="tools")
    hosted = [t for t in parsed if t["type"] in HOSTED_TYPES]
    labels = [t["server_label"] for t in hosted if t["type"] == "mcp"]
    if len(set(labels)) != len(labels):
        raise invalid("Invalid 'tools': mcp server_label values must be unique.", param="tools")
    choice, allowed = _choice(body.get("tool_choice"), names, hosted, joined)
    secrets = []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") == "mcp":
            headers = dict(tool.get("headers") or {})
            if tool.get("authorization"):
                headers["Authorization"] = f"Bearer {tool['authorization']}"
            if headers:
                secrets.append((i, headers))
    return ToolSetup(tools=tuple(parsed), tool_choice=choice, allowed=allowed, mcp_headers=tuple(secrets))
