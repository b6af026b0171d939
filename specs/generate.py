"""Generate specs/schemas/<source>/ from pinned pydantic types, one folder per specification.

    python -m specs.generate            # (re)write the schemas
    python -m specs.generate --check    # exit 1 if the committed files differ (CI drift guard)

Two sources, each pinned in pyproject.toml:

- ``openai/``: the openai SDK's types (``openai==...``), what OpenAI's service sends.
- ``openresponses/``: the Open Responses specification's types as published on PyPI
  (``openresponses-types==...``, itself generated from the specification's OpenAPI document;
  its ``__spec_version__`` and ``__spec_hash__`` are recorded in ``index.json``). Decision: the
  PyPI package rather than a copy of the OpenAPI file, because pip pins, hashes and installs it
  like every other dependency and nothing is fetched at run time.

What is generated, per source, in one bundle (``bundle.json``) so that the shared definitions
(the Response object, every output item and tool) are written once instead of once per event:

- ``Response``: the Response object (Open Responses: ``ResponseResource``).
- one definition per streaming event type, indexed by its ``type`` literal in ``index.json``
  (openai: the members of ``ResponseStreamEvent``; Open Responses: every ``*StreamingEvent``).
- ``ResponseInputItem``: one input item (what ``input`` lists hold).
- ``ErrorEnvelope``: ``{"error": ...}``, the body of every HTTP error (Open Responses has no
  envelope type of its own: its error payload, ``ErrorPayload``, the shape of the
  specification's own example, wrapped in ``{"error": ...}``).
- ``CompactResource``: the body of ``POST /v1/responses/compact``.
- ``WebSocketResponseCreateEvent`` and ``WebSocketErrorEvent``: WebSocket mode's client message
  and its error event.
- openai only: ``ResponseItemList`` (``GET /v1/responses/{id}/input_items``) and
  ``InputTokenCount`` (``POST /v1/responses/input_tokens``), which the Open Responses types do
  not define; a profile names the source it falls back to for such roots
  (``fallback_schemas``).

In the Open Responses types a field that is required but nullable (``completed_at: int | None``
with no default) is in ``required`` and allows ``null``; the openai SDK gives the same fields a
default, so they may be absent there. harness/core/schemas.py reports "absent" and "null" apart.

The output is deterministic (sorted keys, fixed indentation); regenerating with the same pins
changes nothing. Never edit the output by hand: where the wire differs from the types, the
difference is data in ``specs/profiles/*.yaml`` (``schema_relaxations``) or a hand-written wire
schema in ``specs/schemas/wire/``, each with its evidence.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
import typing
from pathlib import Path

import openai
import openresponses_types
from openai.types.responses import (
    CompactedResponse,
    InputTokenCountResponse,
    Response,
    ResponseInputItem,
    ResponseItemList,
    ResponseStreamEvent,
)
from openai.types.responses.responses_client_event import ResponseCreate
from openai.types.responses.responses_server_event import ResponseWsError
from openai.types.shared import ErrorObject
from openresponses_types import types as ortypes
from pydantic import BaseModel, TypeAdapter

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


class ErrorEnvelope(BaseModel):
    """The body of every HTTP error from the API: ``{"error": {...}}``."""

    error: ErrorObject


class OpenResponsesErrorEnvelope(BaseModel):
    """Open Responses' HTTP error body: ``{"error": ErrorPayload}``."""

    error: ortypes.ErrorPayload


def stream_event_models() -> list[type[BaseModel]]:
    """Members of the openai SDK's ``ResponseStreamEvent`` union, in SDK order."""
    (union, *_meta) = typing.get_args(ResponseStreamEvent)
    return list(typing.get_args(union))


def openresponses_event_models() -> list[type[BaseModel]]:
    """Every streaming event class of the Open Responses types, in source order."""
    return [obj for name, obj in vars(ortypes).items()
            if name.endswith("StreamingEvent") and isinstance(obj, type)
            and issubclass(obj, BaseModel)]


def event_type_of(model: type[BaseModel]) -> str:
    """The one value of an event model's ``type`` field (a Literal or a one-member enum)."""
    annotation = model.model_fields["type"].annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        (member,) = list(annotation)
        return member.value
    (literal,) = typing.get_args(annotation)
    return literal


def openresponses_input_item() -> typing.Any:
    """The union of input items a CreateResponseBody's ``input`` list holds."""
    for arm in typing.get_args(ortypes.CreateResponseBody.model_fields["input"].annotation):
        if typing.get_origin(arm) is list:
            (item,) = typing.get_args(arm)
            return item
    raise RuntimeError("CreateResponseBody.input has no list arm")


def _bundle(adapters: list[tuple[str, TypeAdapter]], events: list[type[BaseModel]],
            note: str, source: dict[str, str]) -> dict[str, str]:
    keyed, defs = TypeAdapter.json_schemas(
        [(name, "validation", adapter) for name, adapter in adapters],
        ref_template="#/$defs/{model}",
    )
    roots: dict[str, dict] = {}
    defs = dict(defs.get("$defs", defs))
    for (name, _mode), schema in keyed.items():
        if "$ref" in schema and len(schema) == 1:
            roots[name] = schema
        else:  # a union or an inlined schema: give it its own definition
            defs.setdefault(name, schema)
            roots[name] = {"$ref": f"#/$defs/{name}"}
    bundle = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": note,
        "$defs": defs,
    }
    index = {
        "$comment": note,
        "sdk": source,
        "roots": {name: ref["$ref"] for name, ref in sorted(roots.items())},
        "events": {event_type_of(m): roots[m.__name__]["$ref"] for m in events},
    }
    dump = lambda obj: json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n"  # noqa: E731
    return {"bundle.json": dump(bundle), "index.json": dump(index)}


def build_openai() -> dict[str, str]:
    events = stream_event_models()
    adapters: list[tuple[str, TypeAdapter]] = [
        ("Response", TypeAdapter(Response)),
        ("ResponseInputItem", TypeAdapter(ResponseInputItem)),
        ("ResponseItemList", TypeAdapter(ResponseItemList)),
        ("InputTokenCount", TypeAdapter(InputTokenCountResponse)),
        ("ErrorEnvelope", TypeAdapter(ErrorEnvelope)),
        ("CompactResource", TypeAdapter(CompactedResponse)),
        ("WebSocketResponseCreateEvent", TypeAdapter(ResponseCreate)),
        ("WebSocketErrorEvent", TypeAdapter(ResponseWsError)),
    ]
    adapters += [(m.__name__, TypeAdapter(m)) for m in events]
    note = f"GENERATED by `python -m specs.generate` from openai=={openai.__version__}; do not edit."
    return _bundle(adapters, events, note, {"package": "openai", "version": openai.__version__})


def build_openresponses() -> dict[str, str]:
    events = openresponses_event_models()
    adapters: list[tuple[str, TypeAdapter]] = [
        ("Response", TypeAdapter(ortypes.ResponseResource)),
        ("ResponseInputItem", TypeAdapter(openresponses_input_item())),
        ("ErrorEnvelope", TypeAdapter(OpenResponsesErrorEnvelope)),
        ("CompactResource", TypeAdapter(ortypes.CompactResource)),
        ("WebSocketResponseCreateEvent", TypeAdapter(ortypes.WebSocketResponseCreateEvent)),
        ("WebSocketErrorEvent", TypeAdapter(ortypes.WebSocketErrorEvent)),
    ]
    adapters += [(m.__name__, TypeAdapter(m)) for m in events]
    version = openresponses_types.__version__
    note = (f"GENERATED by `python -m specs.generate` from openresponses-types=={version} "
            f"(specification {openresponses_types.__spec_version__}); do not edit.")
    return _bundle(adapters, events, note, {
        "package": "openresponses-types", "version": version,
        "spec_version": openresponses_types.__spec_version__,
        "spec_hash": openresponses_types.__spec_hash__})


def build() -> dict[str, str]:
    """Return {path under specs/schemas: file text} for everything generated."""
    files = {}
    for folder, builder in (("openai", build_openai), ("openresponses", build_openresponses)):
        files.update({f"{folder}/{name}": text for name, text in builder().items()})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed files differ")
    args = parser.parse_args(argv)
    files = build()
    if args.check:
        stale = [n for n, text in files.items() if not (SCHEMAS_DIR / n).is_file()
                 or (SCHEMAS_DIR / n).read_text(encoding="utf-8") != text]
        if stale:
            print(f"specs out of date: {', '.join(stale)}; run `python -m specs.generate`",
                  file=sys.stderr)
            return 1
        return 0
    for name, text in files.items():
        (SCHEMAS_DIR / name).parent.mkdir(parents=True, exist_ok=True)
        (SCHEMAS_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {SCHEMAS_DIR} (openai=={openai.__version__}, "
          f"openresponses-types=={openresponses_types.__version__})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
