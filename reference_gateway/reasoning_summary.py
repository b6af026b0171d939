"""The summary a reasoning item carries when the request sets ``reasoning.summary``.

A chat upstream returns its reasoning whole (``reasoning_content`` / ``reasoning``); it writes no
summary of it. The gateway writes one itself, deterministically, from the reasoning text, so that
clients that show summaries (Codex CLI sends ``reasoning: {"summary": "auto"}``) have one:

- ``detailed`` and ``auto``: the whole reasoning text, whitespace-trimmed (``auto`` picks the most
  detailed summarizer there is, as OpenAI documents it; here that is the text itself);
- ``concise``: its first sentence (up to the first ``.``, ``!`` or ``?`` followed by a space, or
  the first line), at most ``CONCISE_MAX_CHARS`` characters, cut at a word boundary and ended
  with ``…`` when longer.

No reasoning (empty or blank text), or no ``reasoning.summary`` in the request: no summary
(``summary: []``), as OpenAI sends for a model that did not reason. The summary is one
``summary_text`` part (``summary_index`` 0).
"""

from __future__ import annotations

import re

CONCISE_MAX_CHARS = 200
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def summarize(text: str, mode: str | None) -> str:
    """The summary text of reasoning ``text`` under ``mode`` ("" for none)."""
    text = text.strip()
    if not mode or not text:
        return ""
    if mode != "concise":
        return text
    end = _SENTENCE_END.search(text)
    first = text[: end.end()].strip() if end else text
    if len(first) <= CONCISE_MAX_CHARS:
        return first
    cut = first[:CONCISE_MAX_CHARS - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut).rstrip() + "…"


def summary_part(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def summary_parts(text: str, mode: str | None) -> list[dict]:
    """A reasoning item's ``summary``: ``[]`` or one ``summary_text`` part."""
    summary = summarize(text, mode)
    return [summary_part(summary)] if summary else []
