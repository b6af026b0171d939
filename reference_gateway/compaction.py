"""``POST /v1/responses/compact``: a conversation packed into one ``compaction`` item.

OpenAI's endpoint returns a ``response.compaction`` object (the SDK's CompactedResponse) whose
``output`` is "a list of all user messages, followed by a single compaction item"; a later
request takes those items as ``input`` and goes on from there.

Decisions:

- Lossless: the gateway does not ask the model to summarize. The compaction item carries every
  item of the conversation that is not a user message (assistant messages, reasoning, tool calls
  and their outputs, built-in tool items), in order, so a request that sends the compacted
  output back sees exactly the context it would have seen. ``usage`` is therefore zero.
- ``encrypted_content`` is the packed items sealed for the tenant that asked (sealing.py:
  AES-GCM under a key derived from the gateway's seal key and the API key's owner). A blob that
  does not open (altered, another gateway's, another tenant's) is a 400
  ``invalid_encrypted_content`` naming ``input[i].encrypted_content``, checked in
  ``Gateway.prepare`` (which knows the tenant) before anything is sent upstream.
- User messages are moved out of the blob and listed first, as OpenAI lists them. Their
  position relative to the other items is recorded in the blob (``{"user": k}`` markers), so
  expansion restores the original order exactly.
- ``model`` is required (400 ``missing_required_parameter``), as the SDK's params say; the
  compacted object is not stored (OpenAI gives it no GET either). The endpoint's body is
  checked in params.py (``parse_compact``), beside the create body: this module is the item's
  format only, so that input_items.py can check a blob without importing the endpoint.
"""

from __future__ import annotations

import time

from reference_gateway.errors import invalid
from reference_gateway.ids import new_id
from reference_gateway.sealing import Sealer

PURPOSE = "compaction"
ZERO_USAGE = {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
              "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}


def _is_user(item: dict) -> bool:
    return item.get("type") == "message" and item.get("role") == "user"


def pack(items: list[dict], sealer: Sealer, owner: str) -> str:
    """The compaction blob of ``items``: the non-user items, with markers where users spoke,
    sealed for ``owner``."""
    packed, users = [], 0
    for item in items:
        if _is_user(item):
            packed.append({"user": users})
            users += 1
        else:
            packed.append(item)
    return sealer.seal(packed, owner=owner, purpose=PURPOSE)


def unpack(blob: str, where: str, sealer: Sealer, owner: str) -> list[dict]:
    """The items a blob packed, user markers included (``{"user": k}``)."""
    param = f"{where}.encrypted_content"
    data = sealer.open(blob, owner=owner, purpose=PURPOSE, param=param)
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        raise invalid(f"Invalid '{param}': not a compaction made by this gateway.", param=param,
                      code="invalid_encrypted_content")
    return data


def expand(context: list[dict], sealer: Sealer, owner: str) -> list[dict]:
    """``context`` with each compaction item replaced by what it packed, its user messages put
    back where they were: they are the ``k`` user messages right before the item (the compact
    endpoint lists them first), ``k`` being the item's number of user markers."""
    out: list[dict] = []
    for n, item in enumerate(context):
        if item.get("type") != "compaction":
            out.append(item)
            continue
        packed = unpack(item.get("encrypted_content"), f"input[{n}]", sealer, owner)
        wanted = sum(1 for p in packed if set(p) == {"user"})
        users: list[dict] = []
        while out and _is_user(out[-1]) and len(users) < wanted:
            users.insert(0, out.pop())
        for entry in packed:
            if set(entry) != {"user"}:
                out.append(entry)
            elif entry["user"] < len(users):
                out.append(users[entry["user"]])
    return out


def compacted(context: list[dict], sealer: Sealer, owner: str) -> dict:
    """The CompactedResponse for a conversation (already expanded: no compaction items)."""
    users = [item for item in context if _is_user(item)]
    item = {"id": new_id("cmp"), "type": "compaction", "encrypted_content": pack(context, sealer, owner)}
    return {"id": new_id("resp"), "object": "response.compaction", "created_at": int(time.time()),
            "output": users + [item], "usage": dict(ZERO_USAGE)}
