"""The tool-following model's data, template rendering and checker
(harness/targets/tool_model/). The model itself is measured by
check.py (reports/benchmarks/tool-model.md), not here: no torch in the test venv."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from harness.targets.tool_model import check, conversations
from harness.targets.tool_model.chat import render
from harness.targets.tool_model.conversations import (
    HELD_OUT,
    TOOL_BY_NAME,
    Example,
    generate,
)

CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>")


def _schema(example, name):
    return next(t["function"]["parameters"] for t in example.tools if t["function"]["name"] == name)


def test_generation_is_deterministic_and_splits_differ():
    a, b = generate(50, 3), generate(50, 3)
    assert [(e.kind, e.messages, e.tools, e.target) for e in a] == [(e.kind, e.messages, e.tools, e.target) for e in b]
    assert [e.target for e in generate(50, 3, "eval")] != [e.target for e in a]


def test_every_kind_appears_and_targets_match_their_kind():
    examples = generate(600, 0)
    assert {e.kind for e in examples} == set(conversations.KIND_WEIGHTS)
    for e in examples:
        if e.kind == "call":
            blocks = [json.loads(b) for b in CALL_RE.findall(e.target)]
            assert CALL_RE.sub("", e.target) == ""
            assert [{"name": c["name"], "arguments": c["arguments"]} for c in blocks] == e.calls
        elif e.kind == "required":
            assert [{"name": c["name"], "arguments": c["parameters"]} for c in json.loads(e.target)] == e.calls
        elif e.kind == "named":
            assert json.loads(e.target) == e.calls[0]["arguments"]
        else:
            assert "<tool_call>" not in e.target and e.target.strip()
        if e.kind == "no_tools":
            assert e.tools is None
        if e.kind == "answer":
            assert e.messages[-1]["role"] == "tool"


def test_expected_arguments_are_valid_against_the_offered_schema():
    for e in generate(600, 1):
        for c in e.calls:
            jsonschema.validate(c["arguments"], _schema(e, c["name"]))


def test_expected_arguments_copy_the_request():
    for e in generate(300, 2):
        if e.kind != "call" or len(e.calls) != 1:
            continue
        for value in e.calls[0]["arguments"].values():
            if value not in ("celsius",):   # the default unit is not in the request
                assert str(value) in e.messages[-1]["content"]


def test_eval_split_uses_held_out_values_only():
    train_text = " ".join(m["content"] or "" for e in generate(2000, 0) for m in e.messages)
    held = [v for vs in HELD_OUT.values() for v in vs]
    assert not [v for v in held if v in train_text]
    eval_text = " ".join(m["content"] or "" for e in generate(300, 0, "eval") for m in e.messages)
    assert [v for v in held if v in eval_text]


def test_render_matches_transformers_apply_chat_template():
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models

    from harness.targets.model_dir import CHAT_TEMPLATE
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    tok.chat_template = CHAT_TEMPLATE
    for e in generate(40, 4):
        assert render(e.messages, e.tools) == tok.apply_chat_template(
            e.messages, tools=e.tools, tokenize=False, add_generation_prompt=True)


def test_render_prompt_shape():
    e = next(e for e in generate(100, 5) if e.kind == "answer")
    text = render(e.messages, e.tools)
    assert text.endswith("<|im_start|>assistant\n")
    assert "<tools>{\"type\": \"function\"" in text and "<tool_response>" in text
    assert render([{"role": "user", "content": "hi"}]).startswith("<|im_start|>user\nhi<|im_end|>")


# --- the checker: right and broken outputs -----------------------------------------------------

def _case(kind):
    return next(e for e in generate(400, 6, "eval") if e.kind == kind)


@pytest.mark.parametrize("kind", ["call", "required", "named", "no_fit", "no_tools", "answer"])
def test_judge_passes_the_reference_output(kind):
    case = _case(kind)
    assert check.judge(case, case.target, True) == (True, "exact")


def test_judge_fails_broken_calls():
    case = _case("call")
    call = case.calls[0]
    assert not check.judge(case, case.target, False)[0]                       # never ended
    assert not check.judge(case, "Sure. " + case.target, True)[0]             # text beside it
    assert not check.judge(case, "<tool_call>{\"name\": </tool_call>", True)[0]
    other = json.loads(json.dumps(case.calls))
    other[0]["name"] = "nope"
    assert not check.judge(case, conversations.hermes(other), True)[0]
    schema = _schema(case, call["name"])
    bad_args = {k: ([] if v is not None else 1) for k, v in call["arguments"].items()}
    bad = [dict(call, arguments=bad_args)] + case.calls[1:]
    assert check.judge(case, conversations.hermes(bad), True) == (False, "arguments not schema-valid")
    assert schema["required"]


def test_judge_fails_text_that_calls_or_runs_on():
    case = _case("no_fit")
    assert not check.judge(case, "<tool_call>{}</tool_call>", True)[0]
    assert not check.judge(case, "blah blah", False)[0]
    assert check.judge(case, "Something else.", True) == (True, "text")


def test_scenario_cases_are_consistent():
    for case in check.SCENARIO_CASES():
        if case.calls:
            for c in case.calls:
                jsonschema.validate(c["arguments"], _schema(case, c["name"]))
        assert check.judge(case, case.target, True)[0] or case.kind in ("call", "named", "required")


def test_tools_in_scenarios_are_in_the_training_pool():
    # the suite's tool scenarios offer these; the model learnt them by name
    for name in ("get_weather", "get_time", "add"):
        assert name in TOOL_BY_NAME
    assert isinstance(Example("call", [], None, ""), Example)


def test_training_values_are_partly_made_up_and_copied_from_the_request():
    """A share of the training split's slot values is invented (conversations.SYNTHETIC_SHARE),
    so the model must copy them from the request: each invented value is in the user's words.
    The eval split invents none (it measures copying of real held-out names)."""
    pools = set(conversations.CITIES + conversations.TIMEZONES + conversations.TOPICS
                + conversations.SYMBOLS + conversations.COUNTRIES + conversations.WORDS
                + conversations.LANGUAGES + conversations.PHRASES + conversations.CURRENCIES
                + ["celsius", "fahrenheit"]
                + [f"{n}@example.com" for n in conversations.NAMES])

    def made_up(split):
        out = []
        for e in generate(1500, 0, split):
            for c in e.calls or []:
                for v in c["arguments"].values():
                    if isinstance(v, str) and v not in pools:
                        out.append((v, e.messages[-1]["content"]))
        return out

    train = made_up("train")
    assert len(train) > 200
    assert all(v in request for v, request in train)
    held = {v for vs in HELD_OUT.values() for v in vs}
    assert not [v for v, _ in made_up("eval") if v not in held]


def test_the_committed_tokenizer_declares_how_its_answers_are_read():
    """transformers serve parses tool calls only through a tokenizer's response_template: the
    committed one is tokenizer.py's, and its patterns find the chat format's markers."""
    import json
    import re

    from harness.targets.model_dir import EOS_TEXT, IM_END, IM_START
    from harness.targets.tool_model.tokenizer import RESPONSE_TEMPLATE
    from harness.targets.vllm_model import WEIGHTS_DIR

    committed = json.loads((WEIGHTS_DIR / "tokenizer_config.json").read_text())
    assert committed["response_template"] == RESPONSE_TEMPLATE
    fields = RESPONSE_TEMPLATE["fields"]
    assert RESPONSE_TEMPLATE["start_anchor"] == f"{IM_START}assistant\n"
    assert re.fullmatch(fields["tool_calls"]["open_pattern"], "\n<tool_call>")
    assert fields["tool_calls"]["close"] == "</tool_call>" and fields["tool_calls"]["content"] == "json"
    for end in (IM_END, "\n" + EOS_TEXT):
        assert re.fullmatch(fields["content"]["close_pattern"], end)
    assert not re.fullmatch(fields["content"]["close_pattern"], "</tool_call>")
