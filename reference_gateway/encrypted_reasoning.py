"""``include: ["reasoning.encrypted_content"]``: reasoning that survives ``store: false``.

OpenAI: the value "includes an encrypted version of reasoning tokens in reasoning item outputs.
This enables reasoning items to be used in multi-turn conversations when using the Responses
API statelessly (like when the ``store`` parameter is set to ``false``)" (the SDK's
ResponseCreateParams.include). Codex always asks for it and sends the reasoning items back, with
their ``encrypted_content``, as input of the next turn.

Here a reasoning output item (made from the upstream's ``reasoning_content``) gets, when the
request asked, ``encrypted_content``: its ``content`` and ``summary`` sealed for the tenant
(sealing.py, purpose "reasoning"). A reasoning input item that carries one is expanded back:
its ``content`` and ``summary`` become the sealed ones, whatever the client put beside them, so
the context is the one the gateway produced (the same a ``previous_response_id`` chain sees). A
blob that does not open is a 400 ``invalid_encrypted_content`` (OpenAI's own blobs included:
this gateway cannot read them, and dropping them would change the context silently).

Reasoning items give a chat upstream nothing either way (translate.py: chat completions has no
input form for them); a native Responses upstream gets them expanded. Not offered on a native
route (gateway.py refuses the include value there): that upstream's reasoning is its own.
"""

from __future__ import annotations

from reference_gateway.errors import invalid
from reference_gateway.sealing import Sealer

INCLUDE = "reasoning.encrypted_content"
PURPOSE = "reasoning"


def seal(item: dict, sealer: Sealer, owner: str) -> dict:
    """``item`` (a finished reasoning item) with its ``encrypted_content`` set, in place."""
    item["encrypted_content"] = sealer.seal({"content": item.get("content") or [], "summary": item.get("summary") or []},
                                            owner=owner, purpose=PURPOSE)
    return item


def expand(items: list[dict], sealer: Sealer, owner: str) -> list[dict]:
    """``items`` (this request's input) with each reasoning item that carries ``encrypted_content``
    given back the content and summary it sealed. ``items[i]`` is ``input[i]`` (for the 400's
    ``param``)."""
    out = []
    for n, item in enumerate(items):
        blob = item.get("encrypted_content") if item.get("type") == "reasoning" else None
        if blob is None:
            out.append(item)
            continue
        param = f"input[{n}].encrypted_content"
        opened = sealer.open(blob, owner=owner, purpose=PURPOSE, param=param)
        if not isinstance(opened, dict) or not isinstance(opened.get("content"), list):
            raise invalid(f"Invalid '{param}': not reasoning sealed by this gateway.", param=param,
                          code="invalid_encrypted_content")
        opened_item = {**item, "content": opened["content"], "summary": opened.get("summary") or []}
        del opened_item["encrypted_content"]  # the opened form: what a stored chain holds
        out.append(opened_item)
    return out
