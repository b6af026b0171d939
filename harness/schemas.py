"""Compiled validators over specs/schemas, dispatched by event ``type``.

Speed matters (the checker runs under load): validating one event against the whole 59-member
union costs ~85 µs in pydantic, while dispatching on ``type`` first and running a compiled
validator for that one member costs ~1-2 µs (shared/notes/validation-speed.md). So there is
one ``jsonschema_rs`` validator per event type, built lazily and cached per profile.

The generated schemas are the SDK's types; a profile's ``schema_relaxations`` are applied to a
copy at load time (drop a field from ``required``, replace a property's schema), each one
justified in the profile by a recorded OpenAI stream.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema_rs

from harness.catalogue import Profile, SpecError, load_profile

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

    def validate_root(self, root: str, obj: Any) -> list[SchemaError]:
        """Errors of ``obj`` against a root schema: Response, ErrorEnvelope, ResponseInputItem."""
        ref = self._roots.get(root)
        if ref is None:
            raise SpecError(f"no root schema {root!r}; have {sorted(self._roots)}")
        validator = self._ref_validator(f"root:{root}", ref)
        if validator.is_valid(obj):
            return []
        return self._errors(validator, obj)

    @staticmethod
    def _errors(validator, obj) -> list[SchemaError]:
        out = []
        for err in validator.iter_errors(obj):
            message = err.message
            if len(message) > 300:
                message = message[:300] + "..."
            out.append(SchemaError(_json_path(err.instance_path), message))
            if len(out) >= MAX_ERRORS_PER_OBJECT:
                break
        return out


@functools.cache
def schema_set(profile_name: str) -> SchemaSet:
    return SchemaSet(load_profile(profile_name))
