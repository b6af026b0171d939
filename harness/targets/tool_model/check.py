"""Greedy evaluation of the tool model on held-out conversations.

    python -m harness.targets.tool_model.check MODEL_DIR [--n 120] [--json OUT.json]

Needs torch and transformers (.venv-vllm here). Cases: ``conversations.generate(n, 0, "eval")``
(values from pools training never saw) plus SCENARIO_CASES, the requests of
suites/scenarios/tools/*. Each is greedy-decoded (at most 96 new tokens, stop at ``<|im_end|>``)
and judged by its kind:

    call       the output is only <tool_call> blocks; their calls equal the expected ones (names
               and arguments) and each arguments object is valid against the tool's schema
    required   its first token restricted to those that begin with "[" (what vLLM's grammar
               allows first): a JSON array of {"name", "parameters"} equal to the expected calls
    named      its first token restricted to those that begin with "{": the expected arguments
               object
    no_fit, no_tools, answer
               text without <tool_call>, ended by <|im_end|> (``exact`` also counts the outputs
               equal to the reference answer)

The first token is restricted, not a "[" or "{" appended to the prompt: the grammar lets the
model pick a merged token such as ``{"`` (what training taught it), while a prompt ending in a
lone ``{`` is a token boundary the model never saw (a check that appended it measured 0 of 17
named calls on a model that vLLM's grammar drives right).

Exit status 0 when every case passes, 1 otherwise (the counts are printed either way).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from harness.targets.model_dir import IM_END
from harness.targets.tool_model.chat import render
from harness.targets.tool_model.conversations import (
    TOOL_BY_NAME,
    Example,
    generate,
    tool_dict,
)

CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
PREFIX = {"required": "[", "named": "{"}


def _scenario_cases() -> list[Example]:
    import random
    rng = random.Random(0)
    w, t, a = (tool_dict(TOOL_BY_NAME[n], rng) for n in ("get_weather", "get_time", "add"))
    user = lambda s: [{"role": "user", "content": s}]
    paris = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
    two = [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}},
           {"name": "get_time", "arguments": {"timezone": "Tokyo"}}]
    history = user("What is the weather in Paris?") + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps(paris["arguments"])}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 18, "sky": "clear"}'}]
    return [
        Example("call", user("What is the weather in Paris?"), [w, t], "", [paris]),
        Example("named", user("What is the weather in Paris?"), [w, t], "", [paris]),
        Example("call", user("Tell me the weather in Oslo and the time in Tokyo."), [w, t], "", two),
        Example("required", user("Tell me the weather in Oslo and the time in Tokyo."), [w, t], "", two),
        Example("call", user("What is 2 + 3?"), [w, t, a], "", [{"name": "add", "arguments": {"a": 2, "b": 3}}]),
        Example("answer", history, [w], "The result is temperature_c 18, sky clear."),
        Example("no_tools", user("Say hello."), None, "Hello! How can I help you today?"),
        Example("no_fit", user("Say hello."), [w], "Hello! How can I help you today?"),
    ]


SCENARIO_CASES = _scenario_cases


def _schema_ok(name: str, args, tools) -> bool:
    try:
        import jsonschema
    except ImportError:   # the GPU machine may lack it; the committed numbers come from here
        print("jsonschema missing: schemas not checked", file=sys.stderr)
        return any(t["function"]["name"] == name for t in tools or ())
    for t in tools or ():
        if t["function"]["name"] == name:
            try:
                jsonschema.validate(args, t["function"]["parameters"])
                return True
            except jsonschema.ValidationError:
                return False
    return False


def judge(case: Example, text: str, ended: bool) -> tuple[bool, str]:
    """(passed, why) for one decoded output."""
    if case.kind in ("no_fit", "no_tools", "answer"):
        if "<tool_call>" in text:
            return False, "called a tool"
        if not ended or not text.strip():
            return False, "no short text answer"
        return True, "exact" if text.strip() == case.target.strip() else "text"
    try:
        if case.kind == "call":
            if not ended:
                return False, "did not end"
            blocks = CALL_RE.findall(text)
            if CALL_RE.sub("", text).strip():
                return False, "text beside the calls"
            calls = [json.loads(b) for b in blocks]
            got = [{"name": c["name"], "arguments": c["arguments"]} for c in calls]
        elif case.kind == "required":
            got = [{"name": c["name"], "arguments": c["parameters"]} for c in json.loads(text)]
        else:
            got = [{"name": case.calls[0]["name"], "arguments": json.loads(text)}]
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"unparsable: {exc}"
    if not all(_schema_ok(c["name"], c["arguments"], case.tools) for c in got):
        return False, "arguments not schema-valid"
    if got != case.calls:
        return False, "other calls"
    return True, "exact"


def decode(model_dir: Path, cases: list[Example], max_new: int = 96, batch: int = 16):
    """[(text, ended)] greedy, in the cases' order."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        LogitsProcessor,
        LogitsProcessorList,
        PreTrainedTokenizerFast,
    )
    tok = PreTrainedTokenizerFast.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    end_id = tok.convert_tokens_to_ids(IM_END)
    vocab = len(tok)
    starts = {kind: torch.tensor([tok.decode([i]).startswith(ch) for i in range(vocab)])
              for kind, ch in PREFIX.items()}

    class FirstToken(LogitsProcessor):
        """At the first generated position, only tokens that begin with the kind's prefix."""

        def __init__(self, kinds: list[str], prompt_len: int):
            self.kinds, self.prompt_len = kinds, prompt_len

        def __call__(self, input_ids, scores):
            if input_ids.shape[1] != self.prompt_len:
                return scores
            for row, kind in enumerate(self.kinds):
                if kind in starts:
                    allowed = starts[kind].to(scores.device)[:scores.shape[1]]
                    scores[row, :allowed.shape[0]] = scores[row, :allowed.shape[0]].masked_fill(~allowed, -float("inf"))
            return scores

    out = []
    for i in range(0, len(cases), batch):
        chunk = cases[i:i + batch]
        prompts = [render(c.messages, c.tools) for c in chunk]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        first = FirstToken([c.kind for c in chunk], enc["input_ids"].shape[1])
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=end_id,
                                 pad_token_id=tok.pad_token_id, logits_processor=LogitsProcessorList([first]))
        for row in gen[:, enc["input_ids"].shape[1]:].tolist():
            ended = end_id in row
            row = row[:row.index(end_id)] if ended else row
            out.append((tok.decode(row, skip_special_tokens=False), ended))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--n", type=int, default=120, help="held-out generated cases (plus the scenario cases)")
    ap.add_argument("--json", type=Path, help="write every case and verdict here")
    args = ap.parse_args(argv)
    cases = generate(args.n, 0, "eval") + SCENARIO_CASES()
    results = decode(args.model_dir, cases)
    by_kind: dict[str, list[int]] = {}
    rows = []
    for i, (case, (text, ended)) in enumerate(zip(cases, results)):
        ok, why = judge(case, text, ended)
        kind = case.kind if i < args.n else f"scenario:{case.kind}"
        by_kind.setdefault(kind, [0, 0])[0] += ok
        by_kind[kind][1] += 1
        rows.append({"kind": kind, "request": case.messages[-1]["content"], "output": text,
                     "passed": ok, "why": why})
        if not ok:
            print(f"FAIL {kind}: {case.messages[-1]['content']!r} -> {text!r} ({why})")
    passed = sum(v[0] for v in by_kind.values())
    for kind, (p, n) in sorted(by_kind.items()):
        print(f"{kind:20} {p}/{n}")
    print(f"total {passed}/{len(cases)}")
    if args.json:
        args.json.write_text(json.dumps({"passed": passed, "total": len(cases), "by_kind": by_kind,
                                         "cases": rows}, indent=1) + "\n")
    return 0 if passed == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
