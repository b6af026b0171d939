"""Response and item ids carry at least 128 bits of randomness, from the OS's CSPRNG."""

from __future__ import annotations

import random
import re
from collections import Counter

from reference_gateway.ids import RANDOM_BITS, new_id

SAMPLES = 10_000
ID_RE = re.compile(r"^(?P<prefix>[a-z]+)_(?P<random>[0-9a-f]+)$")
TOOL = {"type": "function", "name": "add", "parameters": {"type": "object", "properties": {}}}


def random_part(value: str, prefix: str) -> str:
    m = ID_RE.match(value)
    assert m and m["prefix"] == prefix, value
    return m["random"]


def test_format_and_width():
    assert RANDOM_BITS >= 128
    for prefix in ("resp", "msg", "fc", "rs", "call", "fco"):
        hex_part = random_part(new_id(prefix), prefix)
        assert len(hex_part) * 4 == RANDOM_BITS


def test_no_collisions_and_every_hex_digit_is_uniform():
    """10k ids: all distinct; at each position each hex digit appears 625 times on average
    (sd ~24); 6 sd either way. A counter, a clock or a short random part fails this."""
    parts = [random_part(new_id("resp"), "resp") for _ in range(SAMPLES)]
    assert len(set(parts)) == SAMPLES
    expected = SAMPLES / 16
    sd = (SAMPLES * (1 / 16) * (15 / 16)) ** 0.5
    for position in range(len(parts[0])):
        counts = Counter(p[position] for p in parts)
        assert set(counts) == set("0123456789abcdef"), position
        assert all(abs(n - expected) < 6 * sd for n in counts.values()), (position, counts)


def test_ids_do_not_come_from_the_seedable_prng():
    random.seed(1234)
    first = new_id("resp")
    random.seed(1234)
    assert new_id("resp") != first


def test_ids_the_gateway_hands_out(client):
    """Every id the gateway mints (response, message, function call, reasoning, input items)
    has the full random width; an upstream's own call ids are passed on as they are."""
    minted = []
    r = client.post("/responses", json={"model": "mock-1", "input": "x", "tools": [TOOL], "tool_choice": "required"})
    body = r.json()
    minted.append((body["id"], "resp"))
    minted += [(item["id"], "fc") for item in body["output"]]
    r = client.post("/responses", json={"model": "mock-reasoning", "input": "think"})
    body = r.json()
    minted += [(item["id"], {"reasoning": "rs", "message": "msg"}[item["type"]]) for item in body["output"]]
    items = client.get(f"/responses/{body['id']}/input_items").json()["data"]
    minted += [(item["id"], "msg") for item in items]
    assert {prefix for _, prefix in minted} == {"resp", "fc", "rs", "msg"}
    for value, prefix in minted:
        assert len(random_part(value, prefix)) * 4 >= 128, value
