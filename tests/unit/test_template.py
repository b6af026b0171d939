"""harness/run/template.py: ``{{...}}`` references in scenario requests and expectations."""

from __future__ import annotations

import copy

import pytest

from harness.run.template import UnresolvedReference, fill, lookup

OUTPUT = [
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "message", "id": "msg_1", "role": "assistant",
     "content": [{"type": "output_text", "text": "hi", "annotations": []}]},
    {"type": "function_call", "id": "fc_1", "call_id": "call_A", "name": "get_weather",
     "arguments": "{}"},
    {"type": "function_call", "id": "fc_2", "call_id": "call_B", "name": "get_time",
     "arguments": "{}"},
]
CONTEXT = {
    "model": "gpt-test",
    "steps": {
        "create": {"status": 200, "error": None,
                   "response": {"id": "resp_1", "status": "completed", "output": OUTPUT,
                                "usage": {"total_tokens": 42}, "metadata": {},
                                "temperature": 0.5, "store": True, "previous_response_id": None}},
        "list": {"status": 200, "body": {"object": "list", "data": [{"id": "item_0"},
                                                                    {"id": "item_1"}]}},
        "delete": {"status": 200, "body": {"id": "resp_1", "deleted": True}},
        "step_2": {"response": {"id": "resp_2"}},
    },
}


# -- lookup ----------------------------------------------------------------------------------
@pytest.mark.parametrize("expr,value", [
    ("model", "gpt-test"),
    ("steps.create.response.id", "resp_1"),
    ("steps.create.status", 200),
    ("steps.create.response.usage.total_tokens", 42),
    ("steps.create.response.output[0].type", "reasoning"),
    ("steps.create.response.output[1].content[0].text", "hi"),
    ("steps.create.response.output[type=function_call].call_id", "call_A"),
    ("steps.create.response.output[name=get_time].call_id", "call_B"),
    ("steps.create.response.output[type=message].content[0].type", "output_text"),
    ("steps.list.body.data[1].id", "item_1"),
    ("steps.delete.body.deleted", True),
    ("steps.create.response.store", True),
    ("steps.create.response.previous_response_id", None),
    ("steps.step_2.response.id", "resp_2"),
    ("steps.create.response.output", OUTPUT),
])
def test_lookup(expr, value):
    assert lookup(CONTEXT, expr) == value


def test_selector_compares_as_text():
    ctx = {"xs": [{"n": 1, "v": "one"}, {"n": 2, "v": "two"}, {"n": True, "v": "t"}]}
    assert lookup(ctx, "xs[n=2].v") == "two"
    assert lookup(ctx, "xs[n=True].v") == "t"


@pytest.mark.parametrize("expr,fragment", [
    ("steps.nope.response.id", "no 'nope' in an object with keys ['create', 'delete', 'list'"),
    ("steps.create.response.missing", "no 'missing' in an object with keys"),
    ("steps.create.response.output[9]", "no element [9] in a list of 4"),
    ("steps.create.response.output[type=web_search_call]",
     "no element with type=web_search_call"),
    ("steps.create.response.id[0]", "no element [0] in 'resp_1'"),
    ("steps.create.response.id[type=x]", "[type=x] applied to 'resp_1'"),
    ("steps.create.response.output.id", "no 'id' in a list of 4"),
    ("steps.create.response.usage.total_tokens.x", "no 'x' in 42"),
    ("steps.create.error.code", "no 'code' in None"),
    ("steps.create.response.output[-1]", "cannot parse reference"),
    ("steps.create-2.response.id", "cannot parse reference"),
    ("steps..create", "cannot parse reference"),
    ("steps.create.response.output[]", "cannot parse reference"),
    ("", ""),
])
def test_lookup_failures_name_the_problem(expr, fragment):
    if expr == "":
        assert lookup(CONTEXT, expr) is CONTEXT  # an empty path is the context itself
        return
    with pytest.raises(UnresolvedReference) as info:
        lookup(CONTEXT, expr)
    message = str(info.value)
    assert fragment in message
    assert "{{" + expr + "}}" in message  # every message names the whole reference


def test_unparseable_reference_points_at_the_rest():
    with pytest.raises(UnresolvedReference, match=r"at '-2\.response\.id'"):
        lookup(CONTEXT, "steps.create-2.response.id")


# -- fill ------------------------------------------------------------------------------------
def test_fill_model_and_nested_values():
    body = {"model": "{{model}}", "input": "Say hi", "max_output_tokens": 16,
            "metadata": {"from": "{{ steps.create.response.id }}"}, "stream": True,
            "temperature": 0.2, "tools": None}
    assert fill(body, CONTEXT) == {"model": "gpt-test", "input": "Say hi",
                                   "max_output_tokens": 16, "metadata": {"from": "resp_1"},
                                   "stream": True, "temperature": 0.2, "tools": None}


@pytest.mark.parametrize("template,value", [
    ("{{steps.create.status}}", 200),
    ("{{steps.create.response.temperature}}", 0.5),
    ("{{steps.create.response.store}}", True),
    ("{{steps.create.response.previous_response_id}}", None),
    ("{{steps.create.response.metadata}}", {}),
    ("{{steps.create.response.output}}", OUTPUT),
    ("{{steps.create.response.output[type=function_call]}}", OUTPUT[2]),
])
def test_whole_value_reference_keeps_json_type(template, value):
    got = fill(template, CONTEXT)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("template,text", [
    ("/responses/{{steps.create.response.id}}", "/responses/resp_1"),
    ("/responses/{{steps.create.response.id}}/input_items?limit=1",
     "/responses/resp_1/input_items?limit=1"),
    ("status={{steps.create.status}}", "status=200"),
    ("{{steps.create.response.store}}!", "true!"),
    ("x{{steps.create.response.previous_response_id}}", "xnull"),
    ("{{model}}-{{steps.create.response.id}}", "gpt-test-resp_1"),
    ("usage: {{steps.create.response.usage}}", 'usage: {"total_tokens": 42}'),
    ("no references at all", "no references at all"),
    ("{ not a reference }", "{ not a reference }"),
])
def test_interpolation_inside_strings(template, text):
    assert fill(template, CONTEXT) == text


def test_splice_in_list():
    body = {"input": ["{{...steps.create.response.output}}",
                      {"type": "function_call_output",
                       "call_id": "{{steps.create.response.output[type=function_call].call_id}}",
                       "output": "sunny"}]}
    got = fill(body, CONTEXT)
    assert got["input"][:4] == OUTPUT
    assert got["input"][4] == {"type": "function_call_output", "call_id": "call_A",
                               "output": "sunny"}


def test_splice_of_empty_list_and_multiple_splices():
    ctx = {"a": [1, 2], "b": [], "c": ["x"]}
    assert fill(["{{...a}}", "{{...b}}", 0, "{{ ...c }}"], ctx) == [1, 2, 0, "x"]


def test_splice_of_a_non_list_fails_clearly():
    with pytest.raises(UnresolvedReference, match=r"\{\{\.\.\.steps\.create\.response\.id\}\} "
                                                  "is not a list"):
        fill(["{{...steps.create.response.id}}"], CONTEXT)


def test_splice_outside_a_list_fails_clearly():
    with pytest.raises(UnresolvedReference, match="cannot parse reference"):
        fill({"input": "{{...steps.create.response.output}}"}, CONTEXT)


def test_missing_reference_inside_string_and_nested_structures():
    for template in ("/responses/{{steps.gone.response.id}}",
                     {"a": [{"b": "{{steps.gone.response.id}}"}]},
                     ["{{...steps.gone.response.output}}"]):
        with pytest.raises(UnresolvedReference, match="no 'gone'"):
            fill(template, CONTEXT)


def test_fill_leaves_non_strings_and_the_input_alone():
    body = {"n": 1, "f": 0.5, "b": False, "z": None, "l": [1, "{{model}}"]}
    before = copy.deepcopy(body)
    assert fill(body, CONTEXT) == {"n": 1, "f": 0.5, "b": False, "z": None, "l": [1, "gpt-test"]}
    assert body == before
    assert fill(7, CONTEXT) == 7 and fill(None, CONTEXT) is None
