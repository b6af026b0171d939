"""The arguments the embedded model writes for a tool call: JSON valid against the tool's
``parameters`` schema (schema_example.py), with values taken from the user's words where a
property asks for them, as a model fills them in.

Where a value comes from, for a property NAME (first that applies and is valid for its schema;
else the schema's own example):

- ``code`` (a string): the last fenced code block of the prompt, else ``DEFAULT_CODE`` (the
  built-in code interpreter runs it); ``query``, ``q``, ``question``, ``prompt``,
  ``search_query`` (a string): the prompt's text, up to ``QUERY_CHARS`` characters.
- An enum: the first of its values that the prompt holds as a word (case-insensitive).
- NAME said in the prompt and followed by a value: ``reason 'testing'``, ``name: Bob``,
  ``count = 3``, ``limit of 10`` (a quoted string, a number, or the next word).
- A place-like NAME (``location``, ``city``, ``timezone``, ...; PLACE_NAMES): the capitalised
  words after ``in``/``at``/``for``/``from``/``to``/``near`` ("San Francisco" in "What's the
  weather in San Francisco?"), the first such place after the word that made this tool
  relevant (so "the weather in Oslo and the time in Tokyo" gives get_weather Oslo and get_time
  Tokyo), else the first place of the prompt.
- A number: the prompt's numbers in order, one per numeric property ("Add 2 and 3" gives
  ``{"a": 2, "b": 3}``), when within the property's bounds.
- A string: the prompt's quoted strings in order, one per string property; for a command-like
  NAME (``cmd``, ``command``, ``shell``, ``script``) without one, the rest of the sentence after
  "run" or "execute" ("Run echo hello." gives ``{"cmd": "echo hello"}``).

Optional properties are written only when such a value exists for them (see
schema_example.example's ``hint``).
"""

from __future__ import annotations

import re

from reference_gateway.schema_example import example

# The code a call of a tool with a ``code`` parameter runs when the prompt holds no code block.
DEFAULT_CODE = "print(6 * 7)"
QUERY_CHARS = 200
QUERY_NAMES = frozenset({"query", "q", "question", "prompt", "search_query"})
PLACE_NAMES = frozenset({"location", "city", "place", "address", "country", "region", "destination",
                         "origin", "town", "state", "area", "timezone", "tz", "zone", "where", "locality"})
COMMAND_NAMES = frozenset({"cmd", "command", "shell", "script"})
# What the prompt asks to run: the rest of the sentence after "run"/"execute".
RUN = re.compile(r"\b(?:run|execute)\s+(?:the\s+command\s+)?(.+?)\s*(?:[.?!](?:\s|$)|$)", re.IGNORECASE)
FENCED_CODE = re.compile(r"```(?:python|py)?\n(.*?)```", re.DOTALL)
QUOTED = re.compile(r"'([^'\n]+)'|\"([^\"\n]+)\"|`([^`\n]+)`|“([^”\n]+)”")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\w)")
# A place: capitalised words (a run; "of"/"de"/"la" may join two) after a preposition.
PLACE = re.compile(r"\b(?:in|at|for|from|to|near)\s+((?:[A-Z][\w'.-]*)(?:\s+(?:(?:of|de|la|del)\s+)?[A-Z][\w'.-]*)*)")
# What may stand between a property's name and its value in the prompt.
LINK = r"\s*(?:(?:is|=|:|of|as|to|called|named|set to|equal to|equals)\s*)?"


def _name_words(name: str) -> list[str]:
    """``reasonCode`` / ``reason_code`` / ``reason-code`` -> ["reason", "code"]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


class Prompt:
    """What the user's text offers as argument values (module docstring)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.quoted = [next(g for g in m.groups() if g is not None) for m in QUOTED.finditer(text)]
        self.numbers = [float(m.group()) if "." in m.group() else int(m.group()) for m in NUMBER.finditer(text)]
        self.places = [(m.start(1), m.group(1).rstrip(".'")) for m in PLACE.finditer(text)]
        self.words = {w.lower() for w in re.findall(r"[\w-]+", text)}

    def place(self, anchor: int) -> str | None:
        after = [place for start, place in self.places if start >= anchor]
        if after:
            return after[0]
        return self.places[0][1] if self.places else None

    def mentioned(self, name: str):
        """The value written right after the property's name in the prompt, or None."""
        words = _name_words(name)
        if not words:
            return None
        said = r"[\s_-]*".join(re.escape(w) for w in words)
        match = re.search(rf"\b{said}\b{LINK}", self.text, re.IGNORECASE)
        if match is None:
            return None
        rest = self.text[match.end():]
        quoted = QUOTED.match(rest)
        if quoted:
            return next(g for g in quoted.groups() if g is not None)
        number = NUMBER.match(rest)
        if number:
            return float(number.group()) if "." in number.group() else int(number.group())
        word = re.match(r"[\w@./:+-]*\w", rest)
        return word.group() if word else None


def tool_arguments(parameters, text: str, anchor: int = 0):
    """Arguments for a tool whose ``parameters`` schema is given, from the prompt ``text``;
    ``anchor`` is where in the text the tool was asked for (the place rule)."""
    if not isinstance(parameters, dict):
        parameters = {"type": "object", "properties": {}}
    prompt = Prompt(text)
    numbers = list(prompt.numbers)
    quoted = list(prompt.quoted)

    def hint(name: str | None, schema: dict):
        kind = schema.get("type")
        kinds = set(kind) if isinstance(kind, list) else {kind}
        key = (name or "").lower()
        if schema.get("enum"):
            return next((v for v in schema["enum"] if isinstance(v, str) and v.lower() in prompt.words), None)
        if "string" in kinds:
            if key == "code":
                blocks = FENCED_CODE.findall(text)
                return blocks[-1] if blocks else DEFAULT_CODE
            if key in QUERY_NAMES and text:
                return text[:QUERY_CHARS]
        said = prompt.mentioned(name) if name else None
        if "string" in kinds:
            if isinstance(said, str):
                return said
            if PLACE_NAMES & set(_name_words(key)) and prompt.place(anchor):
                return prompt.place(anchor)
            if quoted:
                return quoted.pop(0)
            if COMMAND_NAMES & set(_name_words(key)):
                ordered = RUN.search(text)
                return ordered.group(1) if ordered else None
            return None
        if kinds & {"integer", "number"}:
            if isinstance(said, (int, float)):
                return said
            return numbers.pop(0) if numbers else None
        return None

    return example(parameters, hint=hint)
