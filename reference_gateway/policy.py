"""What the gateway does with each field and value a client may send to ``POST /v1/responses``:
the one table behind the README's "What the gateway accepts" (DESIGN principle 9: strict in what
it emits, accepting of what real clients send).

Every parameter of the pinned SDK's ``ResponseCreateParams`` (openai 3.54), every
``ResponseIncludable`` value and every tool type of its ``ToolParam`` has a row here, plus what
real clients send beyond the SDK (Codex's ``client_metadata``); tests/gateway/test_policy.py
fails when one is missing, when the README's table is not ``markdown()`` of this one, or when
the gateway does not do what a row with a ``probe`` says. params.py takes its refusals of
whole parameters and its accepted ``include`` values from here.

The rule for a verdict:

- ``honoured``: the gateway does what the field asks;
- ``ignored``: accepted and not acted on, because ignoring it cannot change the answer (metadata,
  hints, cache and billing options) or the gateway cannot act on it and says so here;
- ``refused``: 400 ``unsupported_parameter`` naming the field, because ignoring it would
  silently change the answer (a template, a conversation, a tool the model would be denied, a
  field of the output that would be missing).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

HONOURED = "honoured"
IGNORED = "ignored"
REFUSED = "refused"
VERDICTS = (HONOURED, IGNORED, REFUSED)


@dataclass(frozen=True)
class Rule:
    field: str  # a request path: "temperature", "reasoning.summary", "tools[].type", "include[]"
    value: str | None  # the value (or values) the row is about; None: any value
    verdict: str
    why: str
    # A request fragment (merged into a small valid request) with which the embedded gateway of
    # the tests (mock upstream, no web-search profile, no code interpreter) does what the row
    # says: 200 for honoured/ignored, 400 unsupported_parameter for refused. None: the behaviour
    # needs more set up than that, and is tested where the feature is.
    probe: dict | None = field(default=None, compare=False)


def _tool(kind: str, **fields) -> dict:
    return {"tools": [{"type": kind, **fields}]}


RULES: tuple[Rule, ...] = (
    # -- the conversation
    Rule("model", None, HONOURED, "routes the request (`--routes`) and is sent upstream", {}),
    Rule("input", None, HONOURED, "text, messages, function calls and outputs, reasoning and compaction items, "
         "built-in tool items", {}),
    Rule("input[].type", "item_reference", HONOURED, "replaced by the item of that id among the output and input "
         "items of the API key's stored responses (the AI SDK's follow-up turns); an unknown id, another key's or "
         "one of a `store: false` response: 404, as OpenAI answers", None),
    Rule("instructions", None, HONOURED, "the system message of this turn (not carried over a chain)",
         {"instructions": "Be brief."}),
    Rule("previous_response_id", None, HONOURED, "continues a stored response of the same API key", None),
    Rule("store", None, HONOURED, "stored by default; `false` keeps nothing", {"store": False}),
    Rule("stream", None, HONOURED, "server-sent events", None),
    Rule("background", None, HONOURED, "queued, polled with GET, cancellable", {"background": True}),
    Rule("conversation", None, REFUSED, "no Conversations API here: ignoring it would answer without its items",
         {"conversation": "conv_1"}),
    Rule("prompt", None, REFUSED, "no stored prompt templates: ignoring it would drop the prompt",
         {"prompt": {"id": "pmpt_1"}}),
    Rule("context_management", None, REFUSED, "server-side compaction is not run; use POST /v1/responses/compact",
         {"context_management": [{"type": "compaction"}]}),
    # -- generation
    Rule("max_output_tokens", None, HONOURED, "sent upstream as `max_tokens` and `max_completion_tokens`",
         {"max_output_tokens": 16}),
    Rule("temperature", None, HONOURED, "sent upstream", {"temperature": 0.5}),
    Rule("top_p", None, HONOURED, "sent upstream", {"top_p": 0.5}),
    Rule("truncation", None, HONOURED, "`auto` drops the oldest messages until the upstream accepts",
         {"truncation": "auto"}),
    Rule("text.format", None, HONOURED, "`json_schema` / `json_object` sent upstream as `response_format`",
         {"text": {"format": {"type": "json_object"}}}),
    Rule("text.verbosity", None, IGNORED, "echoed; chat-completions servers have no such parameter (a hint)",
         {"text": {"verbosity": "low"}}),
    Rule("reasoning.effort", None, HONOURED, "sent upstream as `reasoning_effort` (a native upstream: as given)",
         {"reasoning": {"effort": "low"}}),
    Rule("reasoning.summary", None, HONOURED, "when the upstream reasons, its reasoning item carries a "
         "`summary_text` written from the reasoning (`concise`: the first sentence, at most 200 characters; "
         "`auto`/`detailed`: the whole text), streamed as `reasoning_summary_part`/`_text` events; no "
         "reasoning: `summary: []`", {"reasoning": {"summary": "auto"}}),
    Rule("reasoning.generate_summary", None, HONOURED, "the deprecated name of `reasoning.summary`",
         {"reasoning": {"generate_summary": "concise"}}),
    Rule("top_logprobs", "1 to 20", REFUSED, "upstream logprobs are not passed on: the answer would lack them",
         {"top_logprobs": 2}),
    Rule("moderation", None, REFUSED, "no moderation model here: ignoring it would skip the blocking asked for",
         {"moderation": {"model": "omni-moderation-latest"}}),
    Rule("access_programs", None, REFUSED, "an OpenAI access tier the gateway cannot grant",
         {"access_programs": {"cyber": "standard"}}),
    Rule("image", None, REFUSED, "image context compression is OpenAI's; `enabled` requires support",
         {"image": {"context_compression": "enabled"}}),
    # -- tools
    Rule("tools[].type", "function", HONOURED, "offered upstream as chat functions",
         _tool("function", name="f", parameters={"type": "object"})),
    Rule("tools[].type", "namespace", HONOURED, "its functions offered upstream as `NAMESPACE__NAME`; a call comes "
         "back as `function_call` with `name` and `namespace`",
         _tool("namespace", name="ns", description="d", tools=[{"type": "function", "name": "f"}])),
    Rule("tools[].type", "mcp", HONOURED, "the gateway calls the MCP server (allowlisted `server_url`s or "
         "configured labels only)", None),
    Rule("tools[].type", "code_interpreter", HONOURED, "run in the gateway's sandbox; refused when it has none",
         None),
    Rule("tools[].type", "web_search (and its three aliases)", HONOURED,
         "searched through `--web-search-profile`; without a profile: next row", None),
    Rule("tools[].type", "web_search, no `--web-search-profile`", IGNORED,
         "offered only (Codex offers it on every turn): not offered to the model, which answers without "
         "searching; forced by `tool_choice`: refused", _tool("web_search")),
    Rule("tools[].filters.allowed_domains", None, HONOURED, "search results outside them are dropped",
         _tool("web_search", filters={"allowed_domains": ["example.com"]})),
    Rule("tools[].external_web_access", None, IGNORED, "the profile's search backend is used as it is "
         "(no cache-only mode)", _tool("web_search", external_web_access=False)),
    Rule("tools[].user_location", None, IGNORED, "a hint the search backend does not take",
         _tool("web_search", user_location={"type": "approximate", "country": "FR"})),
    Rule("tools[].search_context_size", None, IGNORED, "a hint: the model is shown at most 5 results",
         _tool("web_search", search_context_size="high")),
    *(Rule("tools[].type", kind, REFUSED, "no such tool here: the model would be denied it silently",
           _tool(kind)) for kind in ("file_search", "computer", "computer_use_preview", "image_generation",
                                     "local_shell", "shell", "custom", "tool_search", "apply_patch",
                                     "programmatic_tool_calling")),
    Rule("tool_choice", None, HONOURED, "`auto`/`none`/`required`, a function, `allowed_tools` (enforced), "
         "a built-in tool", {"tool_choice": "none"}),
    Rule("parallel_tool_calls", None, HONOURED, "sent upstream", {"parallel_tool_calls": False}),
    Rule("max_tool_calls", None, HONOURED, "caps the built-in tool calls of a response", {"max_tool_calls": 2}),
    # -- include
    Rule("include[]", "reasoning.encrypted_content", HONOURED, "reasoning items carry `encrypted_content`, sealed "
         "for the API key, which the gateway expands back when sent as input",
         {"include": ["reasoning.encrypted_content"], "store": False}),
    Rule("include[]", "code_interpreter_call.outputs", HONOURED, "the code's logs in its item",
         {"include": ["code_interpreter_call.outputs"]}),
    Rule("include[]", "web_search_call.action.sources", HONOURED, "the search's URLs in its action",
         {"include": ["web_search_call.action.sources"]}),
    Rule("include[]", "file_search_call.results", IGNORED, "file_search tools are refused: there is never a "
         "result to include", {"include": ["file_search_call.results"]}),
    Rule("include[]", "computer_call_output.output.image_url", IGNORED, "computer tools are refused: there is "
         "never such an output", {"include": ["computer_call_output.output.image_url"]}),
    Rule("include[]", "web_search_call.results", REFUSED, "search results are shown to the model, not kept in "
         "the item: they would be missing", {"include": ["web_search_call.results"]}),
    Rule("include[]", "message.input_image.image_url", REFUSED, "not kept in listed input items",
         {"include": ["message.input_image.image_url"]}),
    Rule("include[]", "message.output_text.logprobs", REFUSED, "upstream logprobs are not passed on",
         {"include": ["message.output_text.logprobs"]}),
    # -- metadata, hints, caching and billing
    Rule("metadata", None, HONOURED, "stored and echoed", {"metadata": {"k": "v"}}),
    Rule("client_metadata", None, IGNORED, "Codex sends it on every request; not in the SDK's params nor in "
         "its Response object, so neither stored nor echoed",
         {"client_metadata": {"x-codex-installation-id": "i"}}),
    Rule("user", None, HONOURED, "echoed and sent upstream", {"user": "u"}),
    Rule("safety_identifier", None, IGNORED, "echoed; a hint for OpenAI's abuse detection",
         {"safety_identifier": "s"}),
    Rule("prompt_cache_key", None, IGNORED, "echoed; a cache hint", {"prompt_cache_key": "k"}),
    Rule("prompt_cache_retention", None, IGNORED, "a cache hint (not echoed: no cache is kept)",
         {"prompt_cache_retention": "24h"}),
    Rule("prompt_cache_options", None, REFUSED, "`prewarm: true` means generate nothing: it cannot be ignored",
         {"prompt_cache_options": {"prewarm": True}}),
    Rule("service_tier", None, IGNORED, "the Response says `default`, the tier that served it (OpenAI: "
         "\"may be different from the value set in the parameter\")", {"service_tier": "flex"}),
    Rule("background_options", None, REFUSED, "no discounted completion windows here",
         {"background": True, "background_options": {"completion_window": "2h"}}),
    Rule("stream_options.include_obfuscation", None, IGNORED, "the gateway sends no `obfuscation` fields", None),
)


def refused_parameters() -> frozenset[str]:
    """Top-level parameters refused whatever their value (when present and not null)."""
    return frozenset(r.field for r in RULES if r.verdict == REFUSED and r.value is None and r.field.isidentifier())


def extra_parameters() -> frozenset[str]:
    """Top-level parameters real clients send that the SDK's params do not name."""
    from openai.types.responses.response_create_params import ResponseCreateParamsBase

    named = set(ResponseCreateParamsBase.__annotations__) | {"stream"}
    return frozenset(r.field for r in RULES if r.field.isidentifier() and r.field not in named)


def accepted_include() -> tuple[str, ...]:
    """The ``include`` values the gateway accepts (honoured or ignored)."""
    return tuple(r.value for r in RULES if r.field == "include[]" and r.verdict != REFUSED)


def markdown() -> str:
    """The README's table."""
    lines = ["| field | value | verdict | why |", "|---|---|---|---|"]
    for rule in RULES:
        value = "any" if rule.value is None else (f"`{rule.value}`" if " " not in rule.value else rule.value)
        lines.append(f"| `{rule.field}` | {value} | {rule.verdict} | {rule.why} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m reference_gateway.policy > table.md
    sys.stdout.write(markdown())
