"""The phase grammar of built-in (hosted) tool items, compiled from specs/grammar.yaml.

Between an item's ``response.output_item.added`` and its ``response.output_item.done``, a hosted
tool item reports its progress with phase events keyed by its item_id/output_index, e.g. for a
``web_search_call``::

    response.web_search_call.in_progress -> response.web_search_call.searching
      -> response.web_search_call.completed

The sequences are data (``item_phases`` in specs/grammar.yaml); this module turns each one into
an explicit transition table once, in the manner of h11's ``_state.py``: a state is a small
integer (the number of steps behind us), ``table[state]`` maps each event allowed next to the
state it leads to, and ``accepting[state]`` says whether the item may close there. The stream
checker keeps one integer per open item and does one dict lookup per phase event, however long
the grammar. A step of the data is one of::

    EVENT                    exactly once
    {one_of: [EVENT, ...]}   exactly one of these
    {repeat: EVENT | [...]}  zero or more times
    {optional: EVENT}        zero or one time

Each event belongs to one step of its item's grammar, with one exception: it may come back in
a later ``repeat`` step (OpenAI's mcp_call sends ``response.mcp_call.in_progress`` again between
its argument deltas: in_progress -> arguments.delta -> in_progress -> arguments.done ->
completed). ``compile_phases`` rejects any other reuse, and any grammar where one event would
lead from one state to two (the "unique particle attribution" rule of XML Schema), so the next
state never depends on what comes later. An event out of order is placed (``resync``) at its
first step not behind the item's state, or left where the item is if all its steps are behind.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from harness.core.catalogue import SpecError

ITEM_DONE = "response.output_item.done"


@dataclass(frozen=True, slots=True)
class DoneRule:
    """What the item of ``output_item.done`` must say after a given final phase."""

    status: tuple[str, ...] | None  # the `status` values allowed (builtin.item.status); None:
    #                                 the type has no status field
    non_null: tuple[tuple[str, str], ...]  # (field, check id) pairs the item must carry


@dataclass(frozen=True, slots=True)
class ItemPhases:
    """The compiled phase grammar of one item type."""

    item_type: str
    events: frozenset[str]  # every phase event of this type
    table: tuple[dict[str, int], ...]  # state -> {event allowed next: next state}
    accepting: tuple[bool, ...]  # state -> may output_item.done come now
    resync: dict[str, tuple[tuple[int, int], ...]]  # event -> (its step, the state after it)
    #                                                 for each step it belongs to, in order
    done: dict[str, DoneRule]  # final phase event -> what the done item must carry

    def place(self, event: str, state: int) -> int | None:
        """The state after ``event`` sent out of order in ``state``: that of its first step not
        behind ``state`` (phases were skipped), or None if all its steps are behind (a repeated
        or late phase: the item stays where it was)."""
        return next((after for step, after in self.resync[event] if step >= state), None)

    def expected(self, state: int) -> list[str]:
        """What may come next in ``state`` (for messages and evidence)."""
        nxt = sorted(self.table[state])
        return nxt + [ITEM_DONE] if self.accepting[state] else nxt


@dataclass(frozen=True, slots=True)
class PhaseGrammar:
    by_item: dict[str, ItemPhases]  # item type -> its grammar
    owners: dict[str, tuple[str, ...]]  # phase event -> the item types whose grammar has it
    cut_status: str | None  # a done item with this status may end its phases early


@dataclass(frozen=True, slots=True)
class _Step:
    events: tuple[str, ...]
    repeat: bool
    required: bool


def _step(item_type: str, raw: Any) -> _Step:
    if isinstance(raw, str):
        return _Step((raw,), repeat=False, required=True)
    if isinstance(raw, dict) and len(raw) == 1:
        ((kind, value),) = raw.items()
        events = tuple([value] if isinstance(value, str) else value or ())
        if events and all(isinstance(e, str) for e in events):
            if kind == "one_of":
                return _Step(events, repeat=False, required=True)
            if kind == "repeat":
                return _Step(events, repeat=True, required=False)
            if kind == "optional":
                return _Step(events, repeat=False, required=False)
    raise SpecError(f"item_phases.{item_type}: step {raw!r} is not EVENT, {{one_of: [...]}}, "
                    "{repeat: ...} or {optional: ...}")


def _compile_item(item_type: str, spec: dict[str, Any], known_checks: Collection[str]
                  ) -> ItemPhases:
    steps = [_step(item_type, s) for s in spec.get("phases") or ()]
    n = len(steps)
    resync: dict[str, tuple[tuple[int, int], ...]] = {}
    for j, step in enumerate(steps):
        for event in step.events:
            if event in resync and not step.repeat:
                raise SpecError(f"item_phases.{item_type}: {event} appears in two steps (only "
                                "a later repeat step may take an event again)")
            resync[event] = (*resync.get(event, ()), (j, j if step.repeat else j + 1))
    table: list[dict[str, int]] = []
    accepting: list[bool] = []
    for state in range(n + 1):
        allowed: dict[str, int] = {}
        j = state
        while j < n:
            for event in steps[j].events:
                nxt = j if steps[j].repeat else j + 1
                if allowed.setdefault(event, nxt) != nxt:
                    raise SpecError(f"item_phases.{item_type}: {event} may lead to two states "
                                    f"after step {state} (the grammar is not deterministic)")
            if steps[j].required:
                break
            j += 1
        table.append(allowed)
        accepting.append(j == n)
    done: dict[str, DoneRule] = {}
    for event, rule in (spec.get("done") or {}).items():
        if event not in resync:
            raise SpecError(f"item_phases.{item_type}.done: {event} is not one of its phases")
        non_null = tuple((rule.get("non_null") or {}).items())
        for field, check in non_null:
            if check not in known_checks:
                raise SpecError(f"item_phases.{item_type}.done: check {check!r} (for "
                                f"{field}) is not in specs/checks.yaml")
        status = rule.get("status")
        if isinstance(status, str):
            status = (status,)
        elif status is not None:
            if not (isinstance(status, list) and status
                    and all(isinstance(v, str) for v in status)):
                raise SpecError(f"item_phases.{item_type}.done.{event}: status {status!r} is "
                                "not a string or a list of strings")
            status = tuple(status)
        done[event] = DoneRule(status, non_null)
    return ItemPhases(item_type, frozenset(resync), tuple(table), tuple(accepting), resync, done)


def compile_phases(grammar: dict[str, Any], known_checks: Collection[str]) -> PhaseGrammar:
    """Compile ``item_phases`` of specs/grammar.yaml; ``known_checks``: the catalogue's ids."""
    by_item = {t: _compile_item(t, spec or {}, known_checks)
               for t, spec in (grammar.get("item_phases") or {}).items()}
    owners: dict[str, tuple[str, ...]] = {}
    for t, phases in by_item.items():
        for event in phases.events:
            owners[event] = (*owners.get(event, ()), t)
    return PhaseGrammar(by_item, owners, grammar.get("phases_cut_status"))
