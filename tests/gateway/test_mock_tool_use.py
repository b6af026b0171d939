"""The embedded model as a tool-using model (reference_gateway/mock_tool_use.py,
mock_arguments.py): which tools it calls, arguments valid against any schema it is offered,
the answer after a tool output, determinism, streamed and non-streamed alike."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from reference_gateway.mock_arguments import DEFAULT_CODE, tool_arguments
from reference_gateway.mock_tool_use import after_tools, chosen_tools
from reference_gateway.mock_upstream import create_app
from reference_gateway.schema_example import example, fits_number

WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "parameters": {"type": "object", "properties": {
               "location": {"type": "string", "description": "City name"},
               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
               "required": ["location"], "additionalProperties": False}}
TIME = {"name": "get_time", "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}
ADD = {"name": "add", "description": "Add two integers",
       "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                      "required": ["a", "b"]}}


def body(text, tools, **fields):
    return {"model": "mock-1", "messages": [{"role": "user", "content": text}],
            "tools": [{"type": "function", "function": t} for t in tools], **fields}


def calls(request: dict) -> list[tuple[str, dict]]:
    chosen = chosen_tools(request)
    return [(tool["name"], tool_arguments(tool.get("parameters"), request["messages"][-1]["content"], anchor))
            for tool, anchor in chosen]


@pytest.fixture(scope="module")
def mock():
    with TestClient(create_app()) as c:
        yield c


def test_the_weather_question_calls_get_weather_with_the_city():
    assert calls(body("What's the weather in San Francisco?", [WEATHER])) == \
        [("get_weather", {"location": "San Francisco"})]
    assert calls(body("What's the weather in San Francisco?", [WEATHER], tool_choice="auto")) == \
        [("get_weather", {"location": "San Francisco"})]


def test_the_most_relevant_tool_is_called():
    tools = [WEATHER, TIME, ADD]
    assert calls(body("What time is it in New York?", tools)) == [("get_time", {"timezone": "New York"})]
    assert calls(body("Add 2 and 3 please", tools)) == [("add", {"a": 2, "b": 3})]
    # an optional property is written when the prompt gives it a value (an enum word here)
    assert calls(body("Weather in Oslo, in celsius", tools)) == \
        [("get_weather", {"location": "Oslo", "unit": "celsius"})]


def test_several_relevant_tools_are_called_in_parallel_unless_forbidden():
    request = body("Tell me the weather in Oslo and the time in Tokyo.", [ADD, WEATHER, TIME])
    assert calls(request) == [("get_weather", {"location": "Oslo"}), ("get_time", {"timezone": "Tokyo"})]
    assert calls({**request, "parallel_tool_calls": False}) == [("get_weather", {"location": "Oslo"})]
    # "current" is in both descriptions, but get_time's name makes it far more relevant
    assert [name for name, _ in calls(body("the current time", [WEATHER, TIME]))] == ["get_time"]


def test_auto_without_a_relevant_tool_answers_in_text_required_always_calls():
    assert calls(body("hello there", [WEATHER, ADD])) == []
    assert calls(body("hello there", [WEATHER, ADD], tool_choice="required")) == \
        [("get_weather", {"location": "lorem"})]
    # asked for a tool in so many words: the first offered
    assert [n for n, _ in calls(body("Please call the tool", [ADD]))] == ["add"]


def test_none_named_and_the_turn_that_is_not_the_users():
    assert calls(body("What's the weather in Paris?", [WEATHER], tool_choice="none")) == []
    named = {"type": "function", "function": {"name": "add"}}
    assert [n for n, _ in calls(body("What's the weather in Paris?", [WEATHER, ADD], tool_choice=named))] == ["add"]
    request = body("What's the weather in Paris?", [WEATHER])
    request["messages"].append({"role": "assistant", "content": "Let me think."})
    assert chosen_tools(request) == []  # auto answers a user turn only
    assert [t["name"] for t, _ in chosen_tools({**request, "tool_choice": "required"})] == ["get_weather"]


def test_code_and_query_parameters_take_the_prompt():
    code = {"name": "python", "parameters": {"type": "object", "properties": {"code": {"type": "string"}},
                                             "required": ["code"]}}
    search = {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                               "required": ["query"]}}
    prompt = "Run this:\n```python\nprint(1 + 1)\n```\n"
    assert tool_arguments(code["parameters"], prompt) == {"code": "print(1 + 1)\n"}
    assert tool_arguments(code["parameters"], "no code here") == {"code": DEFAULT_CODE}
    assert tool_arguments(search["parameters"], "search for otters") == {"query": "search for otters"}


def test_a_command_tool_gets_the_command_the_prompt_asks_to_run():
    exec_command = {"name": "exec_command", "description": "Runs a command in a PTY, returning output.",
                    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"},
                                                                    "workdir": {"type": "string"}},
                                   "required": ["cmd"], "additionalProperties": False}}
    plan = {"name": "update_plan", "description": "Updates the task plan.",
            "parameters": {"type": "object", "properties": {"plan": {"type": "string"}}, "required": ["plan"]}}
    assert calls(body("Run echo hello. Then tell me what it printed.", [plan, exec_command])) == \
        [("exec_command", {"cmd": "echo hello"})]
    assert calls(body("Run `ls -la` for me", [plan, exec_command])) == [("exec_command", {"cmd": "ls -la"})]


def test_a_broken_schema_still_gets_an_answer(mock):
    broken = [{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]},
              {"type": "object", "properties": {"n": {"type": "integer", "minimum": "three"}}, "required": ["n"]}]
    for schema in broken:
        request = body("hello", [{"name": "f", "parameters": schema}], tool_choice="required")
        answer = mock.post("/v1/chat/completions", json=request)
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_named_values_quotes_and_numbers_from_the_prompt():
    schema = {"type": "object", "properties": {
        "reason": {"type": "string"}, "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "label": {"type": "string", "maxLength": 3}}, "required": ["reason", "count", "label"]}
    assert tool_arguments(schema, "Fail with reason 'testing' and count 4") == \
        {"reason": "testing", "count": 4, "label": "lor"}
    # a number out of bounds is not used: the schema's own value is
    assert tool_arguments(schema, "reason: disk, count = 40")["count"] == 1


def test_after_a_tool_output_the_answer_quotes_it(mock):
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"temperature_c": 18, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "09:15"}]},
    ]
    text = after_tools(messages)
    assert 'get_weather returned: "{"temperature_c": 18, "sky": "clear"}".' in text
    assert 'get_time returned: "09:15".' in text
    assert after_tools(messages[:1]) is None
    request = {"model": "mock-1", "messages": messages, "tools": body("", [WEATHER])["tools"],
               "tool_choice": "required"}
    answer = mock.post("/v1/chat/completions", json=request).json()["choices"][0]
    assert answer["finish_reason"] == "stop" and answer["message"]["content"] == text
    cut = mock.post("/v1/chat/completions", json={**request, "max_tokens": 3}).json()["choices"][0]
    assert cut["finish_reason"] == "length" and cut["message"]["content"] == " ".join(text.split()[:3])


def _streamed(mock, request: dict) -> dict:
    """The message a streamed answer adds up to, in the non-streamed answer's shape."""
    text = mock.post("/v1/chat/completions", json={**request, "stream": True}).text
    chunks = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
    content, tool_calls, finish = "", {}, None
    for chunk in chunks:
        choice = chunk["choices"][0]
        content += choice["delta"].get("content") or ""
        for call in choice["delta"].get("tool_calls") or []:
            entry = tool_calls.setdefault(call["index"], {"id": call.get("id"), "type": "function",
                                                          "function": {"name": None, "arguments": ""}})
            entry["function"]["name"] = call.get("function", {}).get("name") or entry["function"]["name"]
            entry["function"]["arguments"] += call.get("function", {}).get("arguments") or ""
        finish = choice["finish_reason"] or finish
    message = {"role": "assistant", "content": content if content or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
    return {"message": message, "finish_reason": finish}


# -- any schema: arguments valid, deterministic, streamed as not --------------------------------

NAMES = ["location", "city", "unit", "query", "code", "count", "limit", "name", "reason", "a", "b", "timezone",
         "tags", "enabled", "score", "note", "date", "options", "level", "target"]
WORDS = ["weather", "time", "add", "in Paris", "in San Francisco", "at Tokyo", "'quoted text'", "count 3",
         "limit: 12", "name Bob", "celsius", "high", "-7", "2.5", "41", "unit is kelvin", "reason 'x'",
         "for New York City", "score = 0.75", "please", "and", "the", "Tell me"]


def _satisfiable(schema: dict, integer: bool) -> bool:
    step = schema.get("multipleOf") or (1 if integer else 0.25)
    low = schema.get("minimum", schema.get("exclusiveMinimum", -100))
    return any(fits_number(k * step, schema, integer) for k in range(int(low / step) - 2, int(low / step) + 800))


@st.composite
def numbers(draw, integer: bool) -> dict:
    schema = {"type": "integer" if integer else "number"}
    low = draw(st.none() | st.integers(-50, 50))
    high = draw(st.none() | st.integers(-50, 100))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if draw(st.booleans()):
        schema["multipleOf"] = draw(st.sampled_from([1, 2, 3, 5, 7] if integer else [0.5, 0.25, 2, 3]))
    if not _satisfiable(schema, integer):
        schema = {"type": schema["type"]}
    return schema


@st.composite
def strings(draw) -> dict:
    schema = {"type": "string"}
    low = draw(st.integers(0, 12))
    if draw(st.booleans()):
        schema["minLength"] = low
    if draw(st.booleans()):
        schema["maxLength"] = low + draw(st.integers(0, 30))
    if draw(st.booleans()):
        schema["format"] = draw(st.sampled_from(["date-time", "date", "email", "uri", "uuid", "ipv4"]))
    if draw(st.booleans()):
        schema["description"] = " ".join(draw(st.lists(st.sampled_from(NAMES + WORDS), max_size=4)))
    return schema


SCALARS = st.one_of(
    strings(), numbers(True), numbers(False), st.just({"type": "boolean"}), st.just({"type": "null"}),
    st.lists(st.sampled_from(["celsius", "fahrenheit", "kelvin", "high", "low", 3, None]), min_size=1, max_size=4,
             unique=True).map(lambda values: {"enum": values}),
    st.sampled_from([{"const": "fixed"}, {"type": ["string", "null"]}, {"type": ["integer", "null"], "minimum": 5}]),
)


def objects(children) -> st.SearchStrategy:
    @st.composite
    def build(draw) -> dict:
        properties = draw(st.dictionaries(st.sampled_from(NAMES), children, max_size=5))
        required = [n for n in properties if draw(st.booleans())]
        schema = {"type": "object", "properties": properties, "required": required}
        if draw(st.booleans()):
            schema["additionalProperties"] = False
        if draw(st.booleans()) and properties:
            schema["minProperties"] = draw(st.integers(0, len(properties)))
        return schema
    return build()


def arrays(children) -> st.SearchStrategy:
    @st.composite
    def build(draw) -> dict:
        schema = {"type": "array", "items": draw(children)}
        low = draw(st.integers(0, 3))
        if draw(st.booleans()):
            schema["minItems"] = low
        if draw(st.booleans()):
            schema["maxItems"] = low + draw(st.integers(0, 2))
        return schema
    return build()


SCHEMAS = st.recursive(
    SCALARS,
    lambda children: st.one_of(objects(children), arrays(children),
                               st.lists(children, min_size=1, max_size=3).map(lambda s: {"anyOf": s})),
    max_leaves=12,
)


@st.composite
def parameters(draw) -> dict:
    """A tool's parameters: an object schema, sometimes with a property behind a local $ref."""
    schema = draw(objects(SCHEMAS))
    if schema["properties"] and draw(st.booleans()):
        name = min(schema["properties"])
        schema["$defs"] = {"shared": schema["properties"][name]}
        schema["properties"][name] = {"$ref": "#/$defs/shared"}
    return schema


PROMPTS = st.lists(st.sampled_from(WORDS + NAMES), max_size=12).map(" ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=parameters(), prompt=PROMPTS, anchor=st.integers(0, 60))
def test_arguments_are_valid_against_any_schema_and_deterministic(schema, prompt, anchor):
    arguments = tool_arguments(schema, prompt, anchor)
    jsonschema.Draft202012Validator(schema).validate(arguments)
    assert tool_arguments(schema, prompt, anchor) == arguments
    jsonschema.Draft202012Validator(schema).validate(example(schema))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(schemas=st.lists(parameters(), min_size=1, max_size=3), prompt=PROMPTS,
       choice=st.sampled_from(["auto", "required", "none", None]), parallel=st.sampled_from([None, True, False]))
def test_calls_validate_and_streamed_equals_non_streamed(mock, schemas, prompt, choice, parallel):
    tools = [{"name": f"tool_{NAMES[i]}_{i}", "description": " ".join(NAMES[i:i + 2]), "parameters": schema}
             for i, schema in enumerate(schemas)]
    request = body(prompt or "hi", tools)
    if choice is not None:
        request["tool_choice"] = choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    answer = mock.post("/v1/chat/completions", json=request).json()["choices"][0]
    assert mock.post("/v1/chat/completions", json=request).json()["choices"][0] == answer
    streamed = _streamed(mock, request)
    assert streamed["finish_reason"] == answer["finish_reason"]
    assert streamed["message"] == {k: v for k, v in answer["message"].items() if k in ("role", "content", "tool_calls")}
    made = answer["message"].get("tool_calls") or []
    if choice == "none":
        assert made == []
    if choice == "required":
        assert made
    if parallel is False:
        assert len(made) <= 1
    by_name = {t["name"]: t["parameters"] for t in tools}
    for call in made:
        jsonschema.Draft202012Validator(by_name[call["function"]["name"]]).validate(
            json.loads(call["function"]["arguments"]))
    assert len({call["id"] for call in made}) == len(made)


# -- through the gateway: what a Responses client sees -------------------------------------------

GATEWAY_WEATHER = {"type": "function", **WEATHER}


def _create(client, stream, check_events, validate, streamed: bool, request: dict) -> dict:
    if streamed:
        r, _, events = stream(client, request)
        assert r.status_code == 200
        return check_events(events)
    r = client.post("/responses", json=request)
    assert r.status_code == 200, r.text
    return validate(r.json())


@pytest.mark.parametrize("streamed", [False, True])
def test_a_tool_round_through_the_gateway(client, stream, check_events, validate, streamed):
    request = {"model": "mock-1", "input": "What's the weather in San Francisco?", "tools": [GATEWAY_WEATHER],
               "store": False}
    out = _create(client, stream, check_events, validate, streamed, request)
    [call] = [item for item in out["output"] if item["type"] == "function_call"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"location": "San Francisco"}
    follow = {**request, "input": [{"role": "user", "content": request["input"]}, call,
                                   {"type": "function_call_output", "call_id": call["call_id"],
                                    "output": '{"temperature_c": 18}'}]}
    answer = _create(client, stream, check_events, validate, streamed, follow)
    assert [item["type"] for item in answer["output"]] == ["message"]
    assert answer["output"][0]["content"][0]["text"] == \
        'Here is what the tool said. get_weather returned: "{"temperature_c": 18}".'
    text = _create(client, stream, check_events, validate, streamed, {**request, "tool_choice": "none"})
    assert [item["type"] for item in text["output"]] == ["message"]
