"""``{"type": "item_reference", "id": "..."}`` input items: an item of an earlier stored
response, named by its id (the SDK's ``ResponseInputItemParam`` ``ItemReference``).

The Vercel AI SDK's Responses provider stores by default and continues a conversation from its
own message history by sending each earlier assistant item back as such a reference
(``suites/scenarios/clients/ai-sdk_text_tool_follow_up.yaml``); OpenAI resolves it from the stored
responses of the same project.

Decisions:

- Where an id resolves: the output items and the stored input items (what
  ``GET /v1/responses/{id}/input_items`` lists) of the caller's own stored responses
  (``ResponseStore.find_item``: the same ``owner`` match as every other read). Items that are
  only in a response's ``context`` (an earlier turn of its chain) are found in the response that
  first had them, so nothing is lost by not searching there.
- input_items.py checks the item (an ``id``, a non-empty string); ``resolve`` (called by
  ``Gateway.prepare`` and the other routes that read input, once the owner is known)
  replaces it. A reference is replaced, where it stands, by a copy of the item it names, exactly as stored
  (id included), before anything else looks at the input: the turn's stored input items list the
  item, not the reference (``ResponseItem``, what input_items returns, has no item_reference),
  the upstream sees the item as if it had been sent in full, and sealed blobs in it (a referenced
  compaction or reasoning item) are opened like any sent one.
- Several stored items with the same id (a client may resend an item with its id): the one of
  the most recently created response wins, an output item before an input item of the same one.
- A reference that does not resolve (an unknown id, another tenant's, a response stored with
  ``store: false`` -- never stored -- or deleted since) is what OpenAI answers for it: 404
  ``invalid_request_error``, ``param: "input"``, code null, "Item with id '...' not found. Items
  are not persisted when `store` is set to false. ..." (its message, quoted in the issue
  trackers of Codex-style clients, e.g. anomalyco/opencode#7724, can1357/oh-my-pi#41). A foreign
  id is indistinguishable from an unknown one, as for ``previous_response_id``.
- A stored response that is still queued or in progress offers the output items it has so far.
- Cost: the lookup scans the store's rows (``find_item``: a LIKE on the JSON text, no index of
  items): about 8 ms a reference with 10,000 stored responses (12 MB) in SQLite, measured on the
  2-core development machine; linear in the store's size. A store of millions of responses would
  want an item-id table written with each response.
"""

from __future__ import annotations

from collections.abc import Callable

from reference_gateway.errors import APIError

TYPE = "item_reference"


def not_found(item_id: str) -> APIError:
    return APIError(
        404,
        f"Item with id '{item_id}' not found. Items are not persisted when `store` is set to false. "
        "Try again with `store` set to true, or remove this item from your input.",
        param="input",
        code=None,
    )


def resolve(items: list[dict], find: Callable[[str], dict | None]) -> list[dict]:
    """``items`` with every reference replaced by the item it names (``find``: the owner's
    stored item of an id, or None); an unresolvable one: ``not_found``."""
    if not any(item["type"] == TYPE for item in items):
        return items
    resolved = []
    for item in items:
        if item["type"] != TYPE:
            resolved.append(item)
            continue
        found = find(item["id"])
        if found is None:
            raise not_found(item["id"])
        resolved.append(found)
    return resolved
