"""The chat template, rendered exactly as transformers' ``apply_chat_template`` (and so vLLM)
renders it: a sandboxed jinja2 environment with ``trim_blocks``/``lstrip_blocks`` and a
``tojson`` that neither sorts keys nor escapes HTML. The template is the one the tiny
random-weight model already uses (ChatML, Hermes tool calls): model_dir.CHAT_TEMPLATE.

Training renders its conversations here, so what the model sees while it learns is byte for byte
what vLLM feeds it when it serves (tests/targets/test_tool_model.py compares with transformers
where it is installed)."""

from __future__ import annotations

import json
from functools import lru_cache

from harness.targets.model_dir import CHAT_TEMPLATE


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


@lru_cache(maxsize=1)
def _template():
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    return env.from_string(CHAT_TEMPLATE)


def render(messages: list[dict], tools: list[dict] | None = None,
           add_generation_prompt: bool = True) -> str:
    """The prompt text for ``messages`` (chat-completions shape) and ``tools`` (chat-completions
    shape: ``{"type": "function", "function": {...}}``)."""
    return _template().render(messages=messages, tools=tools or None,
                              add_generation_prompt=add_generation_prompt)
