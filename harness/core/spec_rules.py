"""The Open Responses specification's rules about items and extensions, as checks.

Pure functions over decoded JSON, shared by the stream checker (a terminal event's response,
each streamed event) and the JSON judge (a non-streamed Response):

* ``spec.item.incomplete_last``: "If an item ends in a terminal state [incomplete], it MUST be
  the last item emitted, and the containing response also MUST be in an `incomplete` state."
  Decision: a ``failed`` response may hold it too. The rule is about the token budget; a stream
  cut by an error must end with ``error`` then ``response.failed`` (the same specification), and
  the item that error cut has no better status (message items have no ``failed`` status, and
  ``completed`` would be a lie). The item must still be the last one.
* ``spec.item.known_type``: an output item's type is one the profile's schema defines, or an
  extension type with an implementer prefix (``acme:search_result``).
* ``spec.extension.item_fields``: an extension item carries string ``id``, ``type`` and
  ``status`` ("Every Item ... MUST include the following top-level fields").
* ``spec.extension.sequence_number``: an extension event carries an integer sequence_number.

Extension items are judged by these rules only: the profile's schema does not know them, so
they are taken out of a copy of the object before schema validation (``without_extensions``),
which is how a client that skips what it does not understand sees the stream.
"""

from __future__ import annotations

from typing import Any

from harness.core.catalogue import Profile
from harness.core.findings import FindingLog


def is_extension_type(value: Any) -> bool:
    """``slug:name`` with both halves non-empty."""
    if not isinstance(value, str):
        return False
    slug, sep, name = value.partition(":")
    return bool(sep and slug and name)


def extensions_allowed(profile: Profile) -> bool:
    return profile.unknown_events == "allow_prefixed"


def without_extensions(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of an event or Response with extension items taken out (``item`` of an
    output_item event becomes null, as the Open Responses types allow; ``output`` lists lose
    them). ``obj`` itself is returned when it holds none (the common, cheap case)."""
    item = obj.get("item")
    if isinstance(item, dict) and is_extension_type(item.get("type")):
        return dict(obj, item=None)
    response = obj.get("response")
    if isinstance(response, dict):
        stripped = without_extensions(response)
        return obj if stripped is response else dict(obj, response=stripped)
    output = obj.get("output")
    if isinstance(output, list) and any(isinstance(o, dict) and is_extension_type(o.get("type"))
                                        for o in output):
        return dict(obj, output=[o for o in output if not (
            isinstance(o, dict) and is_extension_type(o.get("type")))])
    return obj


def check_extension_event(event: dict[str, Any], last_seq: Any, log: FindingLog,
                          ev: dict[str, Any]) -> None:
    log.apply("spec.extension.sequence_number")
    seq = event.get("sequence_number")
    if not isinstance(seq, int) or isinstance(seq, bool):
        log.fail("spec.extension.sequence_number", f"extension event {event['type']!r} "
                 f"carries sequence_number {seq!r}, not an integer", **ev,
                 path="$.sequence_number", actual=seq)
    elif isinstance(last_seq, int) and seq <= last_seq:
        log.fail("spec.extension.sequence_number", f"extension event {event['type']!r} has "
                 f"sequence_number {seq}, not after {last_seq}", **ev,
                 path="$.sequence_number", expected=last_seq + 1, actual=seq)


def check_output_items(response: dict[str, Any], log: FindingLog, profile: Profile, *,
                       known_types: frozenset[str] | None, evidence: dict | None = None,
                       path_prefix: str = "$") -> None:
    """The item rules over a Response's ``output``. ``known_types``: the item types the
    profile's schema defines (None: not judged)."""
    output = response.get("output")
    if not isinstance(output, list):
        return
    ev = dict(evidence or {})
    p = path_prefix
    log.apply("spec.item.incomplete_last")
    allowed = extensions_allowed(profile)
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            continue
        itype = item.get("type")
        if known_types is not None and allowed:
            log.apply("spec.item.known_type")
            if is_extension_type(itype):
                log.apply("spec.extension.item_fields")
                missing = [k for k in ("id", "type", "status") if not isinstance(item.get(k), str)]
                if missing:
                    log.fail("spec.extension.item_fields", f"extension item {itype!r} lacks "
                             f"string {', '.join(missing)}", **ev, path=f"{p}.output[{i}]",
                             expected=["id", "type", "status"], actual=sorted(item))
            elif itype not in known_types:
                log.fail("spec.item.known_type", f"item type {itype!r} is neither defined by "
                         f"profile {profile.name} nor prefixed `slug:name`", **ev,
                         path=f"{p}.output[{i}].type", expected=sorted(known_types), actual=itype)
        if item.get("status") == "incomplete":
            if i != len(output) - 1:
                log.fail("spec.item.incomplete_last", f"output[{i}] ({itype}) is incomplete "
                         f"but {len(output) - 1 - i} item(s) follow it", **ev,
                         path=f"{p}.output[{i}].status")
            if response.get("status") not in ("incomplete", "failed"):
                log.fail("spec.item.incomplete_last", f"output[{i}] ({itype}) is incomplete "
                         f"but the response is {response.get('status')!r}", **ev,
                         path=f"{p}.status", expected="incomplete", actual=response.get("status"))
