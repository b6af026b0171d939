"""The official openai SDK as the client (loopback only): what real applications will do."""

from __future__ import annotations

import json
import time

import openai
import pytest

TOOL = {"type": "function", "name": "get_time", "description": "Current time in a zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"],
                       "additionalProperties": False}, "strict": True}


@pytest.fixture
def sdk(target):
    with openai.OpenAI(base_url=target.base_url, api_key="x", max_retries=0, timeout=10) as c:
        yield c


def test_two_turn_tool_loop(sdk):
    first = sdk.responses.create(model="mock-1", input="What time is it in Paris?", tools=[TOOL],
                                 tool_choice={"type": "function", "name": "get_time"})
    assert first.status == "completed"
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_time" and "zone" in json.loads(call.arguments)
    second = sdk.responses.create(model="mock-1", previous_response_id=first.id, tools=[TOOL],
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "12:00"}])
    assert second.status == "completed" and second.output_text
    assert second.previous_response_id == first.id


def test_streamed_tool_call_and_final_response(sdk):
    with sdk.responses.stream(model="mock-1", input="call it", tools=[TOOL], tool_choice="required") as s:
        types = [event.type for event in s]
        final = s.get_final_response()
    assert "response.function_call_arguments.delta" in types and types[-1] == "response.completed"
    (call,) = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"zone": "lorem"}
    with sdk.responses.stream(model="mock-1", previous_response_id=final.id,
                              input=[{"type": "function_call_output", "call_id": call.call_id, "output": "9"}]) as s:
        answer = s.get_final_response()
    assert answer.status == "completed" and answer.output_text


def test_structured_output_parse(sdk):
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    parsed = sdk.responses.parse(model="mock-1", input="a person", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)


def test_retrieve_input_items_delete(sdk):
    created = sdk.responses.create(model="mock-1", input=[{"role": "user", "content": "one"},
                                                          {"role": "user", "content": "two"}])
    assert sdk.responses.retrieve(created.id) == created
    items = sdk.responses.input_items.list(created.id, order="asc")
    assert [item.content[0].text for item in items.data] == ["one", "two"]
    assert [item.content[0].text for item in sdk.responses.input_items.list(created.id)] == ["two", "one"]
    deleted = sdk.responses.delete(created.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="mock-1", input="x", previous_response_id=created.id)
    assert refused.value.code == "previous_response_not_found"


def test_background_poll_and_cancel(sdk):
    queued = sdk.responses.create(model="mock-1", input="x", background=True)
    assert queued.status in ("queued", "in_progress")
    deadline = time.monotonic() + 5
    while (got := sdk.responses.retrieve(queued.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert got.status == "completed"
    slow = sdk.responses.create(model="mock-slow", input="x", background=True)
    assert sdk.responses.cancel(slow.id).status == "cancelled"
    assert sdk.responses.retrieve(slow.id).status == "cancelled"


def test_reasoning_items_through_the_sdk(sdk):
    response = sdk.responses.create(model="mock-reasoning", input="think")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text
