"""``GET /v1/responses/{id}/input_items``: one cursor page of a response's input items.

Query (the SDK's ``InputItemListParams``): ``order`` = ``desc`` (OpenAI's default) | ``asc``;
``limit`` 1..100, default 20; ``after`` = an item id, the page starts after it in that order.
A bad value is a 400 naming the query parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from reference_gateway.errors import invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100  # OpenAI's documented range for list endpoints: 1 to 100


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise invalid(f"Invalid 'limit': expected an integer, got {text!r}.", param="limit",
                      code="invalid_type") from None
    if limit < 1:
        raise invalid(f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit}.",
                      param="limit", code="integer_below_min_value")
    if limit > MAX_LIMIT:
        raise invalid(f"Invalid 'limit': integer above maximum value. Expected a value <= {MAX_LIMIT}, but got "
                      f"{limit}.", param="limit", code="integer_above_max_value")
    return limit


def item_page(items: list[dict], query: Mapping[str, str]) -> dict:
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid(f"Invalid value for 'order': expected 'asc' or 'desc', got {order!r}.", param="order")
    limit = _limit(query.get("limit"))
    ordered = list(items) if order == "asc" else list(reversed(items))
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in ordered]
        if after not in ids:
            raise invalid(f"Invalid 'after': no input item with id {after!r} in this response.", param="after")
        ordered = ordered[ids.index(after) + 1:]
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(ordered) > limit,
    }
