"""specs/ is consistent: generated schemas match the pinned SDK, every check id the code can
emit is in the catalogue (and every catalogue entry is justified), profiles load."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from openai.types.responses import ResponseStreamEvent

from harness.core.catalogue import (PROFILE_NAMES, load_catalogue, load_checks, load_grammar,
                                    load_profile)
from harness.core.schemas import schema_set
from harness.core.stream import TERMINAL_EVENTS
from specs import generate

ROOT = Path(__file__).resolve().parents[2]


def test_generated_schemas_are_up_to_date_with_the_pinned_sdk():
    files = generate.build()
    assert {"openai/bundle.json", "openresponses/bundle.json"} <= set(files)
    for name, text in files.items():
        assert (generate.SCHEMAS_DIR / name).read_text(encoding="utf-8") == text, (
            f"specs/schemas/{name} is stale: run python -m specs.generate")


def test_every_stream_event_of_the_sdk_union_has_a_schema():
    import json

    index = json.loads((generate.SCHEMAS_DIR / "openai" / "index.json").read_text())
    (union, *_) = typing.get_args(ResponseStreamEvent)
    members = typing.get_args(union)
    assert len(members) >= 58
    assert len(index["events"]) == len(members)
    assert {"Response", "ErrorEnvelope", "ResponseInputItem"} <= set(index["roots"])


CHECK_PREFIXES = ("sse.", "schema.", "stream.", "response.", "state.", "tools.", "structured.", "spec.", "ws.",
                  "errors.", "builtin.", "load.", "transport.")


def _emitted_check_ids() -> set[str]:
    ids = set()
    pattern = re.compile(r"""(?:fail|apply|failed)\(\s*["']([a-z_]+\.[a-z_.]+)["']""")
    for path in (ROOT / "harness").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        ids |= set(pattern.findall(text))
        # apply("a", "b", ...) and the tuples of check ids in stream.py
        for tup in re.findall(r"\(\s*((?:\"[a-z_]+\.[a-z_.]+\",?\s*)+)\)", text):
            # (tuples of other dotted names, e.g. tensor names in targets/, are not check ids)
            ids |= {i for i in re.findall(r'"([a-z_]+\.[a-z_.]+)"', tup) if i.startswith(CHECK_PREFIXES)}
    return {i for i in ids if not i.endswith((".py", ".json", ".yaml"))}


def test_every_check_the_code_emits_is_catalogued():
    emitted = _emitted_check_ids()
    assert len(emitted) > 30
    missing = emitted - set(load_checks())
    assert not missing, f"check ids used in harness/ but absent from specs/checks.yaml: {missing}"


def test_catalogue_entries_are_justified():
    for check in load_checks().values():
        assert check.id.startswith(CHECK_PREFIXES), check.id
        assert check.level in ("MUST", "SHOULD", "MAY")
        assert check.source.strip() and check.title.strip() and check.feature.strip()


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_load_and_apply(name):
    profile = load_profile(name)
    cat = load_catalogue(name)
    for check, level in profile.level_overrides.items():
        assert cat.level(check) == level
    schemas = schema_set(name)
    assert schemas.known_event("response.output_text.delta")
    for rule in profile.schema_relaxations:
        assert rule.get("evidence"), f"{name}: relaxation of {rule['def']} names no evidence"


def test_profiles_differ_only_in_data():
    openai, opr = load_profile("openai"), load_profile("openresponses")
    assert openai.done_sentinel == "forbidden" and opr.done_sentinel == "required"
    assert load_catalogue("openresponses").level("sse.done_sentinel") == "MUST"
    assert load_catalogue("openai").level("sse.done_sentinel") == "SHOULD"



def test_the_transports_terminal_events_are_the_grammars():
    """The transports stop reading at TERMINAL_EVENTS; the stream checker judges the grammar's."""
    assert TERMINAL_EVENTS == set(load_grammar()["terminal"])


def test_relaxations_only_loosen_what_the_wire_proves():
    """The SDK's strict schema rejects what OpenAI actually sends; the relaxed one accepts it,
    and still rejects a wrong type in the same place."""
    strict_usage = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 2}
    event = {"type": "response.completed", "sequence_number": 3, "response": {
        "id": "resp_1", "object": "response", "created_at": 1, "model": "m", "output": [],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "status": "completed",
        "usage": strict_usage}}
    schemas = schema_set("openai")
    assert schemas.validate_event(event) == []
    bad = {**event, "response": {**event["response"], "usage": {**strict_usage,
                                                                "input_tokens_details": {"cached_tokens": "0"}}}}
    errors = schemas.validate_event(bad)
    assert errors and errors[0].path.startswith("$.response.usage")
