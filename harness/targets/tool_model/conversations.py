"""Synthetic conversations the tool-following model learns from (and is checked on).

Every example is a chat the way vLLM hands it to the chat template -- ``messages`` and ``tools``
in chat-completions shape (what vLLM's /v1/responses converts its input items and function tools
into) -- plus the ``target``: the assistant text the model must write next (``<|im_end|>`` is
appended by the trainer). The kinds:

    call       tools offered, the user asks for what one or two of them do:
               <tool_call>{"name": ..., "arguments": {...}}</tool_call> (one block per call)
    required   the same request, written as vLLM's guided decoding for tool_choice "required"
               forces it: [{"name": ..., "parameters": {...}}, ...]
    named      the same, as the guided decoding for a named tool_choice forces it: the
               arguments object alone
    no_fit     tools offered, none fits the request: a short text answer
    no_tools   no tools: a short text answer
    answer     after a tool result (assistant tool call, then the tool message): a short text
               answer that quotes the result

``required`` and ``named`` exist because vLLM constrains the output to JSON in those two modes:
a model that has seen the JSON shapes continues them once the grammar forces the first ``[`` or
``{``, instead of wandering inside an unterminated string until max_output_tokens.

Arguments are schema-valid by construction (values copied from the request, enums picked from
the words the user wrote, the first enum value otherwise) and each example carries them as
``calls`` for the checker. ``generate(n, seed, split)`` is deterministic; split "eval" draws its
values from pools the training split never sees (``HELD_OUT``), so the check measures copying,
not memory.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

# --- value pools (train / held-out) ------------------------------------------------------------

CITIES = ["Paris", "Rome", "Oslo", "Tokyo", "London", "Berlin", "Madrid", "Lisbon", "Vienna",
          "Prague", "Dublin", "Warsaw", "Athens", "Cairo", "Nairobi", "Lima", "Bogota", "Toronto",
          "Chicago", "Boston", "Denver", "Seattle", "Sydney", "Perth", "Seoul", "Osaka", "Delhi",
          "Mumbai", "Dubai", "Istanbul", "Helsinki", "Stockholm", "Zurich", "Geneva", "Munich",
          "Hamburg", "Milan", "Naples", "Porto", "Quito", "Santiago", "Havana", "Manila",
          "Jakarta", "Hanoi", "Bangkok", "Beijing", "Shanghai", "Kyoto", "Auckland",
          "New York", "San Francisco", "Los Angeles", "Buenos Aires", "Cape Town", "Mexico City",
          "Rio de Janeiro", "Hong Kong", "Kuala Lumpur", "Tel Aviv"]
TIMEZONES = ["Europe/Paris", "Asia/Tokyo", "America/New_York", "Europe/London", "UTC",
             "Australia/Sydney", "America/Chicago", "Asia/Seoul", "Europe/Berlin", "Africa/Cairo",
             "America/Lima", "Asia/Dubai", "Europe/Oslo", "Asia/Kolkata", "Pacific/Auckland"]
TOPICS = ["rate limits", "streaming", "authentication", "the responses api", "tool calling",
          "embeddings", "vector stores", "batch jobs", "fine tuning", "error codes",
          "webhooks", "pagination", "file uploads", "model pricing", "token counting",
          "lmdeploy", "vllm", "caching", "retries", "timeouts", "json schema", "prompt caching"]
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "IBM", "ORCL", "INTC",
           "SAP", "SONY", "ASML", "SHOP", "UBER"]
LANGUAGES = ["French", "German", "Spanish", "Italian", "Japanese", "Dutch", "Polish",
             "Portuguese", "Swedish", "Korean"]
PHRASES = ["good morning", "thank you", "where is the station", "I like tea", "see you soon",
           "the sky is blue", "happy birthday", "how are you", "good night", "one coffee please"]
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
COUNTRIES = ["France", "Italy", "Norway", "Japan", "Brazil", "Canada", "Kenya", "Peru",
             "Chile", "Spain", "Egypt", "India", "Mexico", "Poland", "Greece"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NOK", "SEK", "INR"]
WORDS = ["pong", "ready", "yes", "done", "blue", "seven", "hello", "ok", "banana", "orbit"]

# values only the eval split uses (copying, not memory)
HELD_OUT = {
    "city": ["Reykjavik", "Tallinn", "Marseille", "Valencia", "Krakow", "Bruges", "Montreal",
             "Accra", "Lagos", "Hobart", "Sapporo", "Nagoya", "Phoenix", "Austin"],
    "timezone": ["Europe/Madrid", "Asia/Singapore", "America/Denver", "Africa/Lagos"],
    "topic": ["quotas", "audit logs", "sessions", "the realtime api", "moderation"],
    "symbol": ["ADBE", "CSCO", "PYPL", "QCOM"],
    "country": ["Ghana", "Vietnam", "Iceland", "Portugal"],
    "word": ["pineapple", "zebra", "marble"],
}

# A share of the training values is made up (pseudo-words, random tickers), so the pools cannot
# be memorized: the model has to copy the value the user wrote. Without it a 6.8 M-parameter model
# trained to loss 0.02 answered "What is the population of Ghana?" with {"country": "Poland"}
# (26 of 75 held-out calls right; reports/tool-model.md).
SYNTHETIC_SHARE = 0.4
SYNTHETIC_SLOTS = ("city", "place", "topic", "symbol", "country", "word", "email")
_ONSETS = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "tr", "st", "ch", "sh", "kl", "gr", "pl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]


def _pseudo_word(rng: random.Random, syllables: tuple[int, int] = (2, 3)) -> str:
    n = rng.randint(*syllables)
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n))
    return word + rng.choice(["", "", "n", "r", "s", "l"])


def _synthetic(slot: str, rng: random.Random) -> str:
    if slot == "symbol":
        return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(rng.randint(2, 5)))
    if slot == "topic":
        return " ".join(_pseudo_word(rng, (1, 3)) for _ in range(rng.randint(1, 2)))
    if slot == "word":
        return _pseudo_word(rng)
    if slot == "email":
        return f"{_pseudo_word(rng, (1, 2))}@example.com"
    if slot == "place" and rng.random() < 0.3:
        return rng.choice(["Europe", "Asia", "America", "Africa"]) + "/" + _pseudo_word(rng).capitalize()
    name = _pseudo_word(rng).capitalize()
    return name + " " + _pseudo_word(rng).capitalize() if rng.random() < 0.15 else name


# --- tools --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict
    slot: str            # where the value comes from (see _value)
    required: bool = True


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: tuple[Param, ...]
    requests: tuple[str, ...]   # whole requests, {slot} placeholders
    clauses: tuple[str, ...]    # noun phrases for "Tell me X and Y."
    answer_keys: tuple[str, ...] = ()


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}

TOOLS: tuple[Tool, ...] = (
    Tool("get_weather", "Current weather for a city",
         (Param("city", STR, "city"),
          Param("unit", {"type": "string", "enum": ["celsius", "fahrenheit"]}, "unit")),
         ("What is the weather in {city}?", "What's the weather like in {city} today?",
          "How warm is it in {city}?", "Tell me the weather in {city}.",
          "Is it raining in {city}?", "Weather in {city}, please.",
          "What is the temperature in {city} in {unit}?", "Check the weather for {city}.",
          "What is the weather in {city}? Use the tool."),
         ("the weather in {city}", "the temperature in {city}")),
    Tool("get_time", "Current time in a timezone",
         (Param("timezone", STR, "place"),),
         ("What time is it in {place}?", "Tell me the time in {place}.",
          "What is the current time in {place}?", "Current time in {place}, please."),
         ("the time in {place}", "the current time in {place}")),
    Tool("add", "Add two integers",
         (Param("a", INT, "int_a"), Param("b", INT, "int_b")),
         ("What is {int_a} + {int_b}?", "Add {int_a} and {int_b}.",
          "What is the sum of {int_a} and {int_b}?", "Compute {int_a} plus {int_b}."),
         ("the sum of {int_a} and {int_b}", "{int_a} + {int_b}")),
    Tool("multiply", "Multiply two integers",
         (Param("a", INT, "int_a"), Param("b", INT, "int_b")),
         ("What is {int_a} times {int_b}?", "Multiply {int_a} by {int_b}.",
          "What is the product of {int_a} and {int_b}?"),
         ("the product of {int_a} and {int_b}",)),
    Tool("search", "Search the documentation",
         (Param("query", STR, "topic"),),
         ("Search the docs for {topic}.", "Look up {topic} in the documentation.",
          "Find the documentation about {topic}.", "Call the search tool with query {topic}."),
         ("the docs about {topic}",)),
    Tool("get_stock_price", "Latest stock price for a ticker symbol",
         (Param("symbol", STR, "symbol"),),
         ("What is the stock price of {symbol}?", "How is {symbol} trading today?",
          "Get me the latest price for {symbol}."),
         ("the price of {symbol}",)),
    Tool("translate", "Translate text into another language",
         (Param("text", STR, "phrase"), Param("target_language", STR, "language")),
         ("Translate '{phrase}' into {language}.", "How do you say '{phrase}' in {language}?"),
         ("'{phrase}' in {language}",)),
    Tool("send_email", "Send an email to a user",
         (Param("to", STR, "email"), Param("subject", STR, "topic")),
         ("Send an email to {email} about {topic}.", "Email {email} with the subject {topic}."),
         ()),
    Tool("get_population", "Population of a country",
         (Param("country", STR, "country"),),
         ("What is the population of {country}?", "How many people live in {country}?"),
         ("the population of {country}",)),
    Tool("convert_currency", "Convert an amount between currencies",
         (Param("amount", NUM, "int_a"), Param("from_currency", STR, "cur_from"),
          Param("to_currency", STR, "cur_to")),
         ("Convert {int_a} {cur_from} to {cur_to}.", "How much is {int_a} {cur_from} in {cur_to}?"),
         ()),
    Tool("set_timer", "Start a countdown timer",
         (Param("minutes", INT, "int_a"),),
         ("Set a timer for {int_a} minutes.", "Start a {int_a} minute timer."),
         ()),
)
TOOL_BY_NAME = {t.name: t for t in TOOLS}

# requests no tool answers, and their short answers ({word} copied)
TEXT_REQUESTS: tuple[tuple[str, str], ...] = (
    ("Say hello.", "Hello! How can I help you today?"),
    ("Hello!", "Hello! How can I help you today?"),
    ("Hi, who are you?", "I am a small assistant. How can I help?"),
    ("Tell me a joke.", "Why did the robot go on holiday? It needed to recharge."),
    ("Write a haiku about the sea.", "Waves fold into foam, the sea hums under the moon, salt on the cold wind."),
    ("Write a short story about a lighthouse keeper.",
     "The keeper lit the lamp each night, and the ships came home safe."),
    ("Reply exactly: {word}", "{word}"),
    ("Say {word}.", "{word}"),
    ("Repeat after me: {word}", "{word}"),
    ("What is your favourite color?", "I like blue."),
    ("Thank you!", "You are welcome."),
    ("Give me a fun fact.", "Octopuses have three hearts."),
    ("Describe the ocean in one sentence.", "The ocean is a vast, deep and restless body of salt water."),
    ("Count from 1 to 5.", "1, 2, 3, 4, 5."),
    ("What can you do?", "I can answer short questions and call the tools I am given."),
    ("Summarize our chat.", "We have just started talking."),
)
TEXT_REQUESTS_HELD_OUT: tuple[tuple[str, str], ...] = (
    ("Please reply exactly: {word}", "{word}"),
    ("Say hello to me.", "Hello! How can I help you today?"),
)

SYSTEMS = (None, None, None, "You are a helpful assistant.", "Answer briefly.",
           "You are a concise assistant. Use tools when they help.")


@dataclass
class Example:
    kind: str
    messages: list[dict]
    tools: list[dict] | None
    target: str
    calls: list[dict] = field(default_factory=list)   # [{"name", "arguments"}] expected


# --- rendering of tools and calls ---------------------------------------------------------------

def tool_dict(tool: Tool, rng: random.Random, drop_optional: bool = False) -> dict:
    """The tool as vLLM hands it to the template (ChatCompletionToolsParam.model_dump())."""
    params = [p for p in tool.params if not (drop_optional and not p.required)]
    parameters: dict = {"type": "object",
                        "properties": {p.name: dict(p.schema) for p in params},
                        "required": [p.name for p in params if p.required]}
    strict = rng.random() < 0.5
    if strict or rng.random() < 0.3:
        parameters["additionalProperties"] = False
    fn: dict = {"name": tool.name, "description": tool.description, "parameters": parameters}
    if strict:
        fn["strict"] = True
    out: dict = {"type": "function", "function": fn}
    if rng.random() < 0.3:
        out["defer_loading"] = None
    return out


def call_json(name: str, arguments: dict, key: str = "arguments") -> str:
    return json.dumps({"name": name, key: arguments})


def hermes(calls: list[dict]) -> str:
    return "".join(f"<tool_call>{call_json(c['name'], c['arguments'])}</tool_call>" for c in calls)


# --- value drawing ------------------------------------------------------------------------------

class _Values:
    """Slot values for one request (held-out pools for split "eval")."""

    def __init__(self, rng: random.Random, held_out: bool):
        self.rng, self.held_out, self.cache = rng, held_out, {}

    def pool(self, name: str, base: list[str]) -> list[str]:
        return HELD_OUT.get(name, base) if self.held_out else base

    def get(self, slot: str):
        if slot in self.cache:
            return self.cache[slot]
        r = self.rng
        if not self.held_out and slot in SYNTHETIC_SLOTS and r.random() < SYNTHETIC_SHARE:
            v = _synthetic(slot, r)
        elif slot == "city":
            v = r.choice(self.pool("city", CITIES))
        elif slot == "place":
            v = r.choice(self.pool("city", CITIES) + self.pool("timezone", TIMEZONES))
        elif slot == "unit":
            v = r.choice(["celsius", "fahrenheit"])
        elif slot in ("int_a", "int_b"):
            v = r.choice([r.randint(0, 12), r.randint(0, 100), r.randint(100, 9999)])
        elif slot == "topic":
            v = r.choice(self.pool("topic", TOPICS))
        elif slot == "symbol":
            v = r.choice(self.pool("symbol", SYMBOLS))
        elif slot == "phrase":
            v = r.choice(PHRASES)
        elif slot == "language":
            v = r.choice(LANGUAGES)
        elif slot == "email":
            v = f"{r.choice(NAMES)}@example.com"
        elif slot == "country":
            v = r.choice(self.pool("country", COUNTRIES))
        elif slot in ("cur_from", "cur_to"):
            v = r.choice([c for c in CURRENCIES if c not in self.cache.values()])
        elif slot == "word":
            v = r.choice(self.pool("word", WORDS))
        else:
            raise KeyError(slot)
        self.cache[slot] = v
        return v


def _fill(template: str, values: _Values) -> str:
    out, rest = "", template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        slot, _, rest = tail.partition("}")
        out += head + str(values.get(slot))
    return out + rest


def _arguments(tool: Tool, text: str, values: _Values) -> dict:
    args = {}
    for p in tool.params:
        if p.slot == "unit":
            # the unit the user wrote, else the first enum value (the schema requires one)
            args[p.name] = values.cache.get("unit") if "{unit}" in text else p.schema["enum"][0]
            continue
        if p.slot not in values.cache:
            continue
        args[p.name] = values.cache[p.slot]
    return args


def _request(tool: Tool, values: _Values) -> tuple[str, dict]:
    template = values.rng.choice(tool.requests)
    text = _fill(template, values)
    return text, _arguments(tool, template, values)


def _clause(tool: Tool, values: _Values) -> tuple[str, dict]:
    template = values.rng.choice(tool.clauses)
    return _fill(template, values), _arguments(tool, template, values)


def _offered(rng: random.Random, must: list[Tool], exclude: set[str] = frozenset()) -> list[Tool]:
    others = [t for t in TOOLS if t not in must and t.name not in exclude]
    chosen = list(must) + rng.sample(others, rng.randint(0, min(3, len(others))))
    rng.shuffle(chosen)
    return chosen


def _system(rng: random.Random) -> list[dict]:
    s = rng.choice(SYSTEMS)
    return [{"role": "system", "content": s}] if s else []


def _text_request(rng: random.Random, values: _Values, held_out: bool) -> tuple[str, str]:
    pool = TEXT_REQUESTS_HELD_OUT + TEXT_REQUESTS if held_out else TEXT_REQUESTS
    q, a = rng.choice(pool)
    return _fill(q, values), _fill(a, values)


# --- results and answers ------------------------------------------------------------------------

def _result(name: str, args: dict, rng: random.Random) -> str:
    if name == "get_weather":
        obj = {"temperature_c": rng.randint(-10, 35), "sky": rng.choice(["clear", "cloudy", "rain", "snow"])}
    elif name == "get_time":
        obj = {"time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"}
    elif name == "add":
        obj = {"result": args.get("a", 0) + args.get("b", 0)}
    elif name == "multiply":
        obj = {"result": args.get("a", 0) * args.get("b", 0)}
    elif name == "get_stock_price":
        obj = {"price": round(rng.uniform(5, 900), 2), "currency": "USD"}
    elif name == "translate":
        obj = {"translation": rng.choice(["bonjour", "danke", "gracias", "grazie", "arigato"])}
    elif name == "get_population":
        obj = {"population": rng.randint(1_000_000, 200_000_000)}
    elif name == "convert_currency":
        obj = {"amount": round(rng.uniform(1, 5000), 2)}
    elif name == "search":
        obj = {"title": f"About {args.get('query', 'it')}", "hits": rng.randint(1, 9)}
    else:
        obj = {"ok": True}
    if rng.random() < 0.15:
        return ", ".join(f"{v}" for v in obj.values())   # plain text output
    return json.dumps(obj)


def _answer(output: str) -> str:
    try:
        obj = json.loads(output)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj:
        parts = ", ".join(f"{k} {json.dumps(v) if not isinstance(v, str) else v}" for k, v in obj.items())
        return f"The result is {parts}."
    return f"The result is {output}."


# --- the generator ------------------------------------------------------------------------------

KIND_WEIGHTS = {"call": 0.40, "required": 0.10, "named": 0.10, "no_fit": 0.12,
                "no_tools": 0.08, "answer": 0.20}


def example(rng: random.Random, kind: str, held_out: bool = False) -> Example:
    values = _Values(rng, held_out)
    msgs = _system(rng)
    if kind in ("no_fit", "no_tools"):
        q, a = _text_request(rng, values, held_out)
        tools = None if kind == "no_tools" else [tool_dict(t, rng) for t in _offered(rng, [])][:3] or None
        if kind == "no_fit" and tools is None:
            tools = [tool_dict(rng.choice(TOOLS), rng)]
        return Example(kind, msgs + [{"role": "user", "content": q}], tools, a)

    # one call, or two (different tools) when they have clauses
    two = kind in ("call", "required", "answer") and rng.random() < 0.2
    if two:
        first, second = rng.sample([t for t in TOOLS if t.clauses], 2)
        c1, a1 = _clause(first, values)
        c2, a2 = _clause(second, _Values(rng, held_out))
        lead = rng.choice(["Tell me {0} and {1}.", "What is {0} and {1}?", "I need {0} and {1}.",
                           "Get {0}, then {1}."])
        text = lead.format(c1, c2)
        if rng.random() < 0.3:   # two whole questions
            r1, a1 = _request(first, _Values(rng, held_out))
            r2, a2 = _request(second, _Values(rng, held_out))
            text = f"{r1} And {r2[0].lower()}{r2[1:]}"
        calls = [{"name": first.name, "arguments": a1}, {"name": second.name, "arguments": a2}]
        must = [first, second]
    else:
        tool = rng.choice(TOOLS)
        text, args = _request(tool, values)
        calls = [{"name": tool.name, "arguments": args}]
        must = [tool]
    tools = [tool_dict(t, rng) for t in _offered(rng, must)]
    msgs = msgs + [{"role": "user", "content": text}]
    if kind == "call":
        return Example(kind, msgs, tools, hermes(calls), calls)
    if kind == "required":
        body = "[" + ", ".join(call_json(c["name"], c["arguments"], "parameters") for c in calls) + "]"
        return Example(kind, msgs, tools, body, calls)
    if kind == "named":
        return Example(kind, msgs, tools, json.dumps(calls[0]["arguments"]), calls)
    # answer: the call happened, its result is in; answer in text
    tool_calls, results = [], []
    for i, c in enumerate(calls):
        cid = f"call_{rng.getrandbits(40):010x}"
        tool_calls.append({"id": cid, "type": "function",
                           "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}})
        results.append({"role": "tool", "tool_call_id": cid, "content": _result(c["name"], c["arguments"], rng)})
    msgs = msgs + [{"role": "assistant", "content": rng.choice([None, ""]), "tool_calls": tool_calls}] + results
    target = " ".join(_answer(r["content"]) for r in results)
    return Example(kind, msgs, tools, target)


def generate(n: int, seed: int, split: str = "train") -> list[Example]:
    """``n`` examples, deterministic in (n, seed, split); kinds drawn by KIND_WEIGHTS."""
    rng = random.Random(f"{split}:{seed}")
    kinds, weights = zip(*KIND_WEIGHTS.items())
    return [example(rng, rng.choices(kinds, weights)[0], held_out=(split == "eval"))
            for _ in range(n)]
