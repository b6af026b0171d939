"""The check catalogue and the profiles, loaded from specs/ (data, never code paths).

``Catalogue`` answers "what level and feature is check X under profile P". ``Profile`` holds
every way the `openai` and `openresponses` profiles differ; the checkers read it and never
branch on a profile's name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from harness.core.findings import LEVELS


class SpecError(Exception):
    """specs/ is inconsistent (unknown check id, unknown profile, bad data)."""


def _load_yaml(name: str) -> Any:
    text = resources.files("specs").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: str
    feature: str
    source: str
    title: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    schemas: str
    done_sentinel: str  # "forbidden" | "required" | "optional"
    unknown_events: str  # "forbid" | "allow_prefixed" | "allow"
    # another implementation's name for an event -> this profile's name (reported when used)
    event_aliases: dict[str, str] = field(default_factory=dict)
    # this profile's event name -> the name specs/grammar.yaml uses (OpenAI's)
    grammar_names: dict[str, str] = field(default_factory=dict)
    # scenario feature -> why this profile does not judge it (its scenarios are `skip`)
    out_of_profile: dict[str, str] = field(default_factory=dict)
    # the schema folder for roots this profile's own schemas do not define
    fallback_schemas: str | None = None
    schema_relaxations: tuple[dict[str, Any], ...] = ()
    event_schema_overrides: dict[str, str] = field(default_factory=dict)
    level_overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Catalogue:
    checks: dict[str, Check]
    profile: Profile

    def check(self, check_id: str) -> Check:
        try:
            base = self.checks[check_id]
        except KeyError:
            raise SpecError(f"check id {check_id!r} is not in specs/checks.yaml") from None
        level = self.profile.level_overrides.get(check_id, base.level)
        if level == base.level:
            return base
        return Check(base.id, level, base.feature, base.source, base.title)

    def level(self, check_id: str) -> str:
        return self.check(check_id).level


PROFILE_NAMES = ("openai", "openresponses")


@functools.cache
def load_checks() -> dict[str, Check]:
    raw = _load_yaml("checks.yaml")["checks"]
    checks = {}
    for cid, spec in raw.items():
        if spec["level"] not in LEVELS:
            raise SpecError(f"{cid}: level {spec['level']!r} is not one of {LEVELS}")
        checks[cid] = Check(cid, spec["level"], spec["feature"], spec["source"], spec["title"])
    return checks


@functools.cache
def load_profile(name: str) -> Profile:
    if name not in PROFILE_NAMES:
        raise SpecError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILE_NAMES)}")
    raw = _load_yaml(f"profiles/{name}.yaml")
    profile = Profile(
        name=raw["name"],
        description=raw["description"],
        schemas=raw["schemas"],
        done_sentinel=raw["done_sentinel"],
        unknown_events=raw["unknown_events"],
        event_aliases=dict(raw.get("event_aliases") or {}),
        grammar_names=dict(raw.get("grammar_names") or {}),
        out_of_profile=dict(raw.get("out_of_profile") or {}),
        fallback_schemas=raw.get("fallback_schemas"),
        schema_relaxations=tuple(raw.get("schema_relaxations") or ()),
        event_schema_overrides=dict(raw.get("event_schema_overrides") or {}),
        level_overrides=dict(raw.get("level_overrides") or {}),
    )
    unknown = set(profile.level_overrides) - set(load_checks())
    if unknown:
        raise SpecError(f"profile {name}: level_overrides name unknown checks {sorted(unknown)}")
    return profile


@functools.cache
def load_catalogue(profile: str = "openai") -> Catalogue:
    return Catalogue(load_checks(), load_profile(profile))


@functools.cache
def load_grammar() -> dict[str, Any]:
    return _load_yaml("grammar.yaml")
