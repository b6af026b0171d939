"""Compiled validators over specs/schemas, dispatched by event ``type``.

Speed matters (the checker runs under load): validating one event against the whole 59-member
union costs ~85 µs in pydantic, while dispatching on ``type`` first and running a compiled
validator for that one member costs ~1-2 µs (shared/notes/validation-speed.md). So there is
one ``jsonschema_rs`` validator per event type, built lazily and cached per profile.

The generated schemas are the pinned types of the profile's specification (specs/generate.py:
the openai SDK, or the Open Responses types); a profile's ``schema_relaxations`` are applied to
a copy at load time (drop a field from ``required``, replace a property's schema, let a list
hold one more kind of item), each one
justified in the profile by its evidence. A root the profile's own schemas do not define (Open
Responses has no input_items list type) comes from its ``fallback_schemas``.

Absent and null are reported apart: a field that is required but nullable (Open Responses'
``completed_at: int | None``) and missing gets "`completed_at` is absent: required (it may be
null, but it must be present)", and a null where null is not allowed gets "is null, which the
schema does not allow".
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema_rs

from harness.core.catalogue import Profile, SpecError, load_profile

# Errors reported per validated object: the first few are enough evidence; more is noise.
MAX_ERRORS_PER_OBJECT = 3


@dataclass(frozen=True, slots=True)
class SchemaError:
    path: str  # JSONPath into the validated object, e.g. "$.response.usage"
    message: str


def _read_json(*parts: str) -> Any:
    node = resources.files("specs").joinpath("schemas")
    for part in parts:
        node = node.joinpath(part)
    return json.loads(node.read_text(encoding="utf-8"))


def _json_path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


class SchemaSet:
    """Validators for one profile: events by type, the Response object, the error envelope."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        index = _read_json(profile.schemas, "index.json")
        bundle = _read_json(profile.schemas, "bundle.json")
        self.sdk_version = index["sdk"]["version"]
        self._defs = self._relax(bundle["$defs"], profile.schema_relaxations)
        self._event_refs: dict[str, str] = index["events"]
        self._roots: dict[str, str] = index["roots"]
        self._fallback: tuple[dict[str, str], dict[str, Any]] | None = None
        if profile.fallback_schemas:
            fb_index = _read_json(profile.fallback_schemas, "index.json")
            fb_bundle = _read_json(profile.fallback_schemas, "bundle.json")
            self._fallback = ({r: ref for r, ref in fb_index["roots"].items()
                               if r not in self._roots}, fb_bundle["$defs"])
        self._validators: dict[str, Any] = {}

    @staticmethod
    def _relax(defs: dict[str, Any], relaxations) -> dict[str, Any]:
        defs = copy.deepcopy(defs)
        for rule in relaxations:
            target = defs.get(rule["def"])
            if target is None:
                raise SpecError(f"schema_relaxations: no definition {rule['def']!r} in bundle")
            drop = set(rule.get("drop_required", ()))
            if drop:
                target["required"] = [f for f in target.get("required", []) if f not in drop]
            for prop, schema in (rule.get("replace_properties") or {}).items():
                target.setdefault("properties", {})[prop] = schema
            for prop, extra in (rule.get("allow_items") or {}).items():
                items = target.get("properties", {}).get(prop, {}).get("items", {})
                if "anyOf" not in items:
                    raise SpecError(f"schema_relaxations: {rule['def']}.{prop} is not a list of "
                                    "a union")
                items["anyOf"] += [{"$ref": f"#/$defs/{name}"} for name in extra]
        return defs

    def known_event(self, event_type: str) -> bool:
        return event_type in self._event_refs or event_type in self.profile.event_schema_overrides

    def _validator(self, key: str, schema_factory) -> Any:
        v = self._validators.get(key)
        if v is None:
            v = self._validators[key] = jsonschema_rs.Draft202012Validator(schema_factory())
        return v

    def _ref_validator(self, key: str, ref: str) -> Any:
        return self._validator(key, lambda: {"$ref": ref, "$defs": self._defs})

    def event_validator(self, event_type: str) -> Any | None:
        override = self.profile.event_schema_overrides.get(event_type)
        if override is not None:
            return self._validator(f"event:{event_type}", lambda: _read_json(*override.split("/")))
        ref = self._event_refs.get(event_type)
        if ref is None:
            return None
        return self._ref_validator(f"event:{event_type}", ref)

    def validate_event(self, event: dict[str, Any]) -> list[SchemaError]:
        """Errors of one event against its type's schema ([] if valid or type unknown)."""
        validator = self.event_validator(event.get("type", ""))
        if validator is None or validator.is_valid(event):
            return []
        return self._errors(validator, event)

    @functools.cached_property
    def output_item_types(self) -> frozenset[str]:
        """The ``type`` values of the items a Response's ``output`` may hold."""
        response = _resolve({"$ref": self._roots["Response"]}, self._defs)
        items = _resolve(response.get("properties", {}).get("output", {}).get("items", {}),
                         self._defs)
        members = [*items.get("anyOf", ()), *items.get("oneOf", ())] or [items]
        out: set[str] = set()
        for member in members:
            prop = _resolve(_resolve(member, self._defs).get("properties", {}).get("type", {}),
                            self._defs)
            if "const" in prop:
                out.add(prop["const"])
            out.update(v for v in prop.get("enum", ()) if isinstance(v, str))
        return frozenset(out)

    def has_root(self, root: str) -> bool:
        return root in self._roots or (self._fallback is not None and root in self._fallback[0])

    def validate_root(self, root: str, obj: Any) -> list[SchemaError]:
        """Errors of ``obj`` against a root schema: Response, ErrorEnvelope, ResponseInputItem,
        CompactResource, WebSocketErrorEvent, ..."""
        ref, defs = self._roots.get(root), self._defs
        if ref is None and self._fallback is not None:
            ref, defs = self._fallback[0].get(root), self._fallback[1]
        if ref is None:
            raise SpecError(f"no root schema {root!r}; have {sorted(self._roots)}")
        validator = self._validator(f"root:{root}", lambda: {"$ref": ref, "$defs": defs})
        if validator.is_valid(obj):
            return []
        return self._errors(validator, obj, defs)

    def _errors(self, validator, obj, defs: dict[str, Any] | None = None) -> list[SchemaError]:
        out = []
        for err in validator.iter_errors(obj):
            message = self._precise(err, defs if defs is not None else self._defs)
            if len(message) > 300:
                message = message[:300] + "..."
            out.append(SchemaError(_json_path(err.instance_path), message))
            if len(out) >= MAX_ERRORS_PER_OBJECT:
                break
        return out

    @staticmethod
    def _precise(err, defs: dict[str, Any]) -> str:
        """The validator's message, with absent and null told apart."""
        kind = type(err.kind).__name__
        if kind == "Required":
            name = err.kind.property
            prop = _schema_at(defs, list(err.schema_path)[:-1]).get("properties", {}).get(name)
            if prop is not None and _allows_null(prop, defs):
                return (f"`{name}` is absent: required (it may be null, but it must be "
                        "present)")
            return f"`{name}` is absent: required"
        if err.instance is None and kind in ("Type", "AnyOf", "OneOfNotValid", "Constant", "Enum"):
            return f"{err.message}: the value is null, which the schema does not allow here"
        return err.message


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    return node


def _schema_at(defs: dict[str, Any], path: list[Any]) -> dict[str, Any]:
    """The schema an error's ``schema_path`` points at. jsonschema_rs gives the path from the
    document root with references already followed (``["$defs", "Usage", "required"]``); the
    root of every validator here is ``{"$ref": ..., "$defs": defs}``."""
    node: Any = {"$defs": defs}
    for part in path:
        node = _resolve(node, defs)
        if isinstance(node, dict):
            node = node.get(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return {}
    node = _resolve(node, defs)
    return node if isinstance(node, dict) else {}


def _allows_null(schema: Any, defs: dict[str, Any]) -> bool:
    schema = _resolve(schema, defs)
    if not isinstance(schema, dict):
        return False
    t = schema.get("type")
    if t == "null" or (isinstance(t, list) and "null" in t):
        return True
    return any(_allows_null(s, defs) for s in [*schema.get("anyOf", ()), *schema.get("oneOf", ())])


@functools.cache
def schema_set(profile_name: str) -> SchemaSet:
    return SchemaSet(load_profile(profile_name))
