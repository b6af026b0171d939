"""reasoning.summary: a reasoning item carries a summary written from the upstream's reasoning
(reference_gateway/reasoning_summary.py), streamed as OpenAI orders summary parts; the
conformance checker (harness/core) judges the stream."""

from __future__ import annotations

import json

import pytest

from harness.core.verdict import judge_stream_body
from reference_gateway.reasoning_summary import CONCISE_MAX_CHARS, summarize

SUMMARY_EVENTS = ["response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                  "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]


def judged(raw: str) -> list:
    """The checker's failed findings on a stream body (openai profile)."""
    result = judge_stream_body(raw.encode(), "openai")
    return [f for f in result.log.findings if f.check in result.log.applied]


# -- the summary text -------------------------------------------------------------------------

def test_detailed_and_auto_keep_the_whole_text_concise_the_first_sentence():
    text = "  First I read the question. Then I count the words!\nDone.  "
    assert summarize(text, "detailed") == summarize(text, "auto") == text.strip()
    assert summarize(text, "concise") == "First I read the question."
    assert summarize("one line\nsecond line", "concise") == "one line"
    assert summarize("no sentence end at all", "concise") == "no sentence end at all"


def test_concise_is_bounded_at_a_word_boundary():
    long = " ".join(["word"] * 100)
    out = summarize(long, "concise")
    assert len(out) <= CONCISE_MAX_CHARS and out.endswith("…") and out[:-1].split() == ["word"] * len(out[:-1].split())
    assert summarize("x" * 500, "concise") == "x" * (CONCISE_MAX_CHARS - 1) + "…"


def test_no_mode_or_no_reasoning_gives_no_summary():
    assert summarize("thinking.", None) == ""
    assert summarize("   ", "detailed") == ""


# -- the gateway ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "concise", "detailed"])
def test_non_streamed_reasoning_item_carries_its_summary(client, validate, mode):
    r = client.post("/responses", json={"model": "mock-reasoning", "input": "think", "reasoning": {"summary": mode}})
    assert r.status_code == 200, r.text
    out = validate(r.json())
    reasoning = out["output"][0]
    thought = reasoning["content"][0]["text"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": summarize(thought, mode)}]
    assert reasoning["summary"][0]["text"]
    assert out["reasoning"]["summary"] == mode


def test_the_deprecated_generate_summary_writes_one_too(client):
    out = client.post("/responses", json={"model": "mock-reasoning", "input": "think",
                                          "reasoning": {"generate_summary": "detailed"}}).json()
    assert out["output"][0]["summary"][0]["text"] == out["output"][0]["content"][0]["text"].strip()


@pytest.mark.parametrize("body", [{"model": "mock-reasoning", "input": "think"},
                                  {"model": "mock-1", "input": "think", "reasoning": {"summary": "auto"}}])
def test_no_summary_without_the_parameter_or_without_reasoning(client, stream, check_events, body):
    out = client.post("/responses", json=body).json()
    assert all(i["summary"] == [] for i in out["output"] if i["type"] == "reasoning")
    _, raw, events = stream(client, body)
    check_events(events)
    assert not [e for e in events if "reasoning_summary" in e["type"]]
    failed = judged(raw)
    assert not failed, failed[:5]


def test_streamed_summary_in_openai_order_and_judged_conformant(client, stream, check_events):
    _, raw, events = stream(client, {"model": "mock-reasoning", "input": "think", "reasoning": {"summary": "concise"}})
    final = check_events(events)  # the SDK's own event types
    failed = judged(raw)  # the conformance checker, openai profile
    assert not failed, failed[:5]
    types = [e["type"] for e in events]
    done = types.index("response.output_item.done")
    # Inside the reasoning item: its text part, then the summary part, then the item's done.
    assert types[done - 6:done] == ["response.reasoning_text.done", "response.content_part.done", *SUMMARY_EVENTS]
    added, delta, text_done, part_done = events[done - 4:done]
    item = events[done]["item"]
    assert added["part"] == {"type": "summary_text", "text": ""}
    assert {e["summary_index"] for e in (added, delta, text_done, part_done)} == {0}
    assert {e["item_id"] for e in (added, delta, text_done, part_done)} == {item["id"]}
    assert delta["delta"] == text_done["text"] == part_done["part"]["text"]
    assert item["summary"] == [part_done["part"]] == final["output"][0]["summary"]
    assert text_done["text"] == summarize(item["content"][0]["text"], "concise")
    n = types.count("response.reasoning_text.delta")  # 8: mock-reasoning's tokens
    assert types[2:done] == (["response.output_item.added", "response.content_part.added"]
                             + ["response.reasoning_text.delta"] * n
                             + ["response.reasoning_text.done", "response.content_part.done", *SUMMARY_EVENTS])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_the_checker_rejects_a_broken_summary_stream(client, stream):
    """The checker's verdict above can fail: a summary whose done text differs from its deltas."""
    _, raw, _ = stream(client, {"model": "mock-reasoning", "input": "think", "reasoning": {"summary": "detailed"}})
    frames = raw.split("\n\n")
    broken = []
    for frame in frames:
        if "response.reasoning_summary_text.done" in frame:
            name, data = frame.split("\n", 1)
            event = json.loads(data.removeprefix("data: "))
            event["text"] = "not what the deltas said"
            frame = f"{name}\ndata: {json.dumps(event)}"
        broken.append(frame)
    failed = judged("\n\n".join(broken))
    assert "stream.delta.accumulates" in {f.check for f in failed}, failed


def test_a_sealed_reasoning_item_keeps_its_summary(client):
    out = client.post("/responses", json={"model": "mock-reasoning", "input": "think", "store": False,
                                          "include": ["reasoning.encrypted_content"],
                                          "reasoning": {"summary": "auto"}}).json()
    reasoning = out["output"][0]
    assert reasoning["summary"] and reasoning["encrypted_content"]
    r = client.post("/responses", json={"model": "mock-1", "input": [reasoning, {"role": "user", "content": "go on"}]})
    assert r.status_code == 200, r.text
