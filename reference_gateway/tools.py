"""Function tools: validation of ``tools`` / ``tool_choice`` and their chat-completions form.

Only ``{"type": "function"}`` tools exist here (built-in tools such as web_search need a
service behind them; they are refused with ``unsupported_parameter``). ``tool_choice``:

    "auto" | "none" | "required"                 passed through to chat
    {"type": "function", "name": N}              chat {"type": "function", "function": {"name": N}}
    {"type": "allowed_tools", "mode": M,         only those tools are sent upstream, with
     "tools": [{"type": "function", "name"}]}    chat tool_choice M; a call to any other tool
                                                 fails the response (see ``disallowed_calls``)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reference_gateway.errors import invalid, unsupported
from reference_gateway.input_items import type_error

# OpenAI's rule for function names (API reference, FunctionTool.name).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
FUNCTION_KEYS = ("type", "name", "description", "parameters", "strict")
# OpenAI's documented cap on the number of tools in one request.
MAX_TOOLS = 128


@dataclass(frozen=True)
class ToolSetup:
    tools: tuple[dict, ...]  # as echoed in the Response (SDK FunctionTool shape)
    tool_choice: Any  # as echoed: a string or the requested object
    allowed: frozenset[str]  # names the upstream may call

    def chat_fields(self, parallel_tool_calls: bool) -> dict:
        if not self.tools:
            return {}
        sent = [t for t in self.tools if t["name"] in self.allowed]
        fields: dict = {"tools": [_chat_tool(t) for t in sent], "parallel_tool_calls": parallel_tool_calls}
        choice = self.tool_choice
        if isinstance(choice, str):
            fields["tool_choice"] = choice
        elif choice["type"] == "function":
            fields["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:  # allowed_tools
            fields["tool_choice"] = choice["mode"]
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


def _function_tool(tool: Any, where: str) -> dict:
    if not isinstance(tool, dict):
        raise type_error(where, "an object", tool)
    if tool.get("type") != "function":
        # param stays "tools": the whole feature, not one field, is what is refused.
        raise unsupported("tools", f"tools of type {tool.get('type')!r}")
    for key, value in tool.items():
        if key not in FUNCTION_KEYS and value is not None:
            raise unsupported(f"{where}.{key}", f"function tool field {key!r}")
    name = tool.get("name")
    if name is None:
        raise invalid(f"Missing required parameter: '{where}.name'.", param=f"{where}.name",
                      code="missing_required_parameter")
    if not isinstance(name, str):
        raise type_error(f"{where}.name", "a string", name)
    if not NAME_PATTERN.match(name):
        raise invalid(f"Invalid '{where}.name': must match {NAME_PATTERN.pattern}.", param=f"{where}.name")
    for key, kind, expected in (("description", str, "a string"), ("parameters", dict, "an object"),
                                ("strict", bool, "a boolean")):
        if tool.get(key) is not None and not isinstance(tool[key], kind):
            raise type_error(f"{where}.{key}", expected, tool[key])
    return {"type": "function", "name": name, "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


def _choice(choice: Any, names: list[str]) -> tuple[Any, frozenset[str]]:
    everything = frozenset(names)
    if choice is None:
        return "auto", everything
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise invalid("Invalid value for 'tool_choice': expected 'auto', 'none' or 'required'.",
                          param="tool_choice")
        if choice == "required" and not names:
            raise invalid("'tool_choice' is 'required' but no tools were given.", param="tool_choice")
        return choice, everything
    if not isinstance(choice, dict):
        raise type_error("tool_choice", "a string or an object", choice)
    kind = choice.get("type")
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
    names = [t["name"] for t in parsed]
    if len(set(names)) != len(names):
        raise invalid("Invalid 'tools': function names must be unique.", param="tools")
    choice, allowed = _choice(body.get("tool_choice"), names)
    return ToolSetup(tools=tuple(parsed), tool_choice=choice, allowed=allowed)
