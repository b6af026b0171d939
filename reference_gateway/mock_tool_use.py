"""How the embedded model uses tools: which function tools it calls, and what it answers once
their outputs come back.

Which tools (``chosen_tools``), for a request with function ``tools``:

- The last message is a ``tool`` message: none; the model answers in text that uses the
  outputs (``after_tools``), so a round trip always ends.
- ``tool_choice`` names a function: that one. ``"none"``: none.
- Otherwise each tool is scored by the words it shares with the last user message: a word of
  its name counts ``NAME_WEIGHT``, of a parameter's name ``PARAMETER_WEIGHT``, of its
  description, a parameter's description or an enum value 1 (each prompt word counted once,
  at its best weight; words are lower-cased, split at ``_``/``-``/camelCase, a plural ``s``
  dropped, ``STOPWORDS`` ignored). The calls are the best-scoring tool plus every other tool
  scoring at least half as much, best first (offer order between equals), at most
  ``MAX_PARALLEL_CALLS``; only the best one when ``parallel_tool_calls`` is false.
- ``"auto"`` (or absent) calls only when the last message is a user message and some tool
  scores above zero, or the user asks for a tool in so many words ("call", "tool", "function":
  then the best, or the first offered). ``"required"`` always calls, at least the first offered.

The arguments are mock_arguments.tool_arguments, anchored at the first prompt word that made
the tool relevant.
"""

from __future__ import annotations

import json
import re

from reference_gateway.mock_arguments import tool_arguments

NAME_WEIGHT = 3
PARAMETER_WEIGHT = 2
MAX_PARALLEL_CALLS = 4
# The longest part of one tool output quoted in the answer that follows it.
QUOTE_CHARS = 300
ASKS_FOR_A_TOOL = re.compile(r"\b(tools?|call|function)\b", re.IGNORECASE)
STOPWORDS = frozenset({
    "a", "an", "the", "and", "or", "but", "if", "then", "else", "of", "in", "on", "at", "to", "for",
    "from", "by", "with", "about", "into", "over", "under", "as", "is", "are", "was", "were", "be",
    "been", "being", "am", "do", "does", "did", "doing", "have", "has", "had", "i", "me", "my", "we",
    "our", "you", "your", "he", "she", "it", "its", "they", "them", "their", "this", "that", "these",
    "those", "what", "whats", "which", "who", "whom", "whose", "when", "where", "why", "how", "can",
    "could", "would", "should", "will", "shall", "may", "might", "must", "please", "tell", "give",
    "show", "let", "lets", "s", "t", "get", "set", "use", "using", "call", "tool", "tools", "function",
    "functions", "make", "want", "need", "like", "just", "also", "some", "any", "all", "there",
    "here", "now"
})


def words(text: str) -> list[tuple[int, str]]:
    """(position, normalised word) of each word of ``text`` that is not a stopword."""
    found = []
    for match in re.finditer(r"[A-Za-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)):
        word = match.group().lower()
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if len(word) > 1 and word not in STOPWORDS:
            found.append((match.start(), word))
    return found


def _vocabulary(tool: dict) -> dict[str, int]:
    """Each word of the tool with its weight (module docstring)."""
    weights: dict[str, int] = {}

    def add(text, weight: int) -> None:
        if isinstance(text, str):
            for _, word in words(text):
                weights[word] = max(weights.get(word, 0), weight)

    add(tool.get("name"), NAME_WEIGHT)
    add(tool.get("description"), 1)
    parameters = tool.get("parameters") if isinstance(tool.get("parameters"), dict) else {}
    properties = parameters.get("properties") if isinstance(parameters.get("properties"), dict) else {}
    for name, schema in properties.items():
        add(name, PARAMETER_WEIGHT)
        if isinstance(schema, dict):
            add(schema.get("description"), 1)
            for value in schema.get("enum") or []:
                add(value, 1)
    return weights


def relevance(tool: dict, text: str) -> tuple[int, int]:
    """(score, position of the first prompt word that scored) of ``tool`` for the prompt ``text``."""
    vocabulary = _vocabulary(tool)
    score, first, seen = 0, len(text), set()
    for position, word in words(text):
        if word in vocabulary and word not in seen:
            seen.add(word)
            score += vocabulary[word]
            first = min(first, position)
    return score, first if score else 0


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def chosen_tools(body: dict) -> list[tuple[dict, int]]:
    """(``function`` object, anchor) of each tool to call, in order (module docstring)."""
    tools = [t.get("function") for t in body.get("tools") or [] if isinstance(t, dict)]
    tools = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    messages = body.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if not tools or last.get("role") == "tool":
        return []
    choice = body.get("tool_choice", "auto")
    text = last_user_text(messages)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return [(t, relevance(t, text)[1]) for t in tools if t["name"] == name][:1]
    if choice not in (None, "auto", "required"):
        return []
    if choice != "required" and last.get("role") != "user":
        return []
    scored = [(relevance(tool, text), index, tool) for index, tool in enumerate(tools)]
    scored.sort(key=lambda entry: (-entry[0][0], entry[1]))
    best = scored[0][0][0]
    if best == 0:
        if choice == "required" or ASKS_FOR_A_TOOL.search(text):
            return [(tools[0], 0)]
        return []
    calls = [(tool, anchor) for (score, anchor), _, tool in scored if 2 * score >= best]
    if body.get("parallel_tool_calls") is False:
        return calls[:1]
    return calls[:MAX_PARALLEL_CALLS]


# What a malformed schema (a $ref to nowhere, a bound that is not a number) raises on the way.
BROKEN_SCHEMA = (KeyError, IndexError, TypeError, ValueError, OverflowError, ZeroDivisionError, RecursionError)


def call_arguments(tool: dict, anchor: int, messages: list):
    """The call's arguments (mock_arguments.py); ``{}`` for a schema too broken to follow, as
    a model still answers when offered one."""
    try:
        return tool_arguments(tool.get("parameters"), last_user_text(messages), anchor)
    except BROKEN_SCHEMA:
        return {}


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS] + "…"


def after_tools(messages: list) -> str | None:
    """The answer to the tool outputs that end ``messages`` (None when the last message is not a
    ``tool`` message): each output quoted, under the name of the function that produced it."""
    outputs = []
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "tool":
            break
        outputs.append(message)
    if not outputs:
        return None
    names = {}
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    names[call.get("id")] = (call.get("function") or {}).get("name")
    sentences = []
    for message in reversed(outputs):
        content = message.get("content")
        text = message_text(message) if isinstance(content, list) else content if isinstance(content, str) else json.dumps(content)
        name = names.get(message.get("tool_call_id")) or "the tool"
        sentences.append(f"{name} returned: \"{_quote(text)}\".")
    lead = "Here is what the tool said." if len(sentences) == 1 else f"Here is what the {len(sentences)} tools said."
    return " ".join([lead, *sentences])
