"""The emitter's delta events: the one that opens an item is built the general way, every later
one of the same item by the short path (issue 20); both must be the same event, key for key."""

from __future__ import annotations

import pytest

from reference_gateway.emitter import Emitter


def _response() -> dict:
    return {"id": "resp_1", "object": "response", "status": "queued", "output": []}


@pytest.mark.parametrize("kind, delta_type", [("text", "response.output_text.delta"),
                                              ("reasoning", "response.reasoning_text.delta")])
def test_a_later_delta_is_the_first_one_again_but_for_its_number_and_text(kind, delta_type):
    emitter = Emitter(_response())
    emitter.start()
    first = [e for e in getattr(emitter, kind)("Hello") if e["type"] == delta_type]
    later = getattr(emitter, kind)(" world")
    assert len(first) == 1 and len(later) == 1
    assert list(later[0]) == list(first[0])  # the same keys, in the same order (the JSON on the wire)
    assert later[0] == {**first[0], "sequence_number": first[0]["sequence_number"] + 1, "delta": " world"}


def test_the_item_keeps_every_delta_and_the_numbers_stay_consecutive():
    emitter = Emitter(_response())
    events = emitter.start() + emitter.reasoning("think") + emitter.reasoning("ing") + emitter.text("a")
    events += emitter.text("b") + emitter.text("c") + emitter.finish("stop", None)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = [e for e in events if e["type"] in ("response.reasoning_text.done", "response.output_text.done")]
    assert [e["text"] for e in done] == ["thinking", "abc"]
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [e["output_index"] for e in deltas] == [1, 1, 1]  # after the reasoning item
