"""harness/run/template.py: ``{{repeat:N:text}}``, for inputs too large to write out in a scenario."""

from __future__ import annotations

import pytest

from harness.run.template import MAX_REPEAT_CHARS, UnresolvedReference, fill

CONTEXT = {"model": "m", "steps": {"create": {"response": {"id": "resp_1"}}}}


@pytest.mark.parametrize("value, filled", [
    ("{{repeat:3:ab }}", "ab ab ab "),  # spaces kept, the whole string stays a string
    ("<{{repeat:2:x}}|{{repeat:0:y}}>", "<xx|>"),
    ("{{repeat:2:a, b}} for {{model}}", "a, ba, b for m"),  # other references still resolve
    ("{{repeat:1:steps.create.response.id}}", "steps.create.response.id"),  # literal, never looked up
    ({"input": ["{{repeat:2:w }}", 5]}, {"input": ["w w ", 5]}),
])
def test_repeat_expands_literal_text(value, filled):
    assert fill(value, CONTEXT) == filled


def test_repeat_large_input_has_the_exact_size():
    out = fill("{{repeat:110000:a b c d }}", CONTEXT)
    assert len(out) == 880_000 and out.split() == ["a", "b", "c", "d"] * 110_000


def test_repeat_beyond_the_cap_is_refused_before_it_is_built():
    with pytest.raises(UnresolvedReference, match="more than"):
        fill(f"{{{{repeat:{MAX_REPEAT_CHARS + 1}:x}}}}", CONTEXT)


def test_malformed_repeat_is_an_unresolved_reference():
    with pytest.raises(UnresolvedReference):
        fill("{{repeat:many:x}}", CONTEXT)
