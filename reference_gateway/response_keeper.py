"""How one turn's Response object reaches the store (when ``store``), from first event to last.

- ``opened``: a stored stream's row is inserted ``in_progress`` when its ``response.created``
  event is made, and the event is sent only once that insert is committed (a background
  response's row, ``queued``, before the POST answers). So every id a client has seen exists in
  the store, whatever happens to the process next: a ``kill -9`` leaves it ``in_progress``, and
  the orphan sweep (background.py) turns it ``failed``; never missing.
- ``grew``: each event of a stored stream is folded into ``LiveOutput`` (the output so far:
  finished items, and the open one with its text or arguments so far); the writer stores its
  snapshot at most every ``store_writer.PROGRESS_INTERVAL_S``, so a ``GET`` during the stream
  answers it ``in_progress`` with its output so far (as OpenAI's service does).
- ``await keep(final)``: the final object, committed before the terminal event (or the 200) is
  sent: what a client is told is final is durable. For a row that was opened it is a
  conditional update (only while still pending: a response deleted meanwhile stays deleted,
  and one the orphan sweep already failed keeps that one outcome); otherwise an insert.
- ``keep.soon(final)``: the same write, not awaited (a client gone: nobody to acknowledge).

Events. Every event of a stored stream is kept too (the store's ``response_events``; replayed by
``GET /v1/responses/{id}?stream=true``, replay.py), with the same batching and the same
promises as the output: ``response.created`` is committed with the row, before it is sent; the
others are buffered (``grew``) and written with the progress batch; the terminal events are
handed to ``keep(final, events)`` and committed in the final object's transaction, before they
are sent. So every event of a response a client saw finish is durable; a ``kill -9`` mid-stream
loses at most the last progress interval's events, and the orphan sweep fails the row (a replay
of it then ends with a ``response.failed`` made from the stored object, replay.py). Events that
come after the final write (a relay's or a tool loop's events after their first terminal one)
are written without waiting.

Only final responses enter the history cache (history.py): a chain never continues from an
in-progress one (``previous_response_in_progress``, gateway.py). ``store: false``: nothing is
written, ever. Every write goes through the ``StoreWriter`` (store_writer.py), off the loop.
"""

from __future__ import annotations

import copy

import orjson

from reference_gateway.history import HistoryCache
from reference_gateway.store_contract import Statement, StoredResponse
from reference_gateway.store_writer import StoreWriter

_TEXT_DELTAS = frozenset({"response.output_text.delta", "response.reasoning_text.delta",
                          "response.reasoning_summary_text.delta", "response.refusal.delta"})


class LiveOutput:
    """A streamed Response object as far as its events went: ``fold`` each event, ``snapshot``
    for the object with its output so far. Deltas are kept as fragments and joined only by
    ``snapshot`` (a token costs an append, not a copy of the text so far)."""

    def __init__(self, response: dict) -> None:
        self.response = response  # the latest object an event carried (the events' own copies)
        self.items: dict[int, dict] = {}  # output_index -> the item as added (or done)
        self.text: dict[tuple[int, int], list[str]] = {}  # (output_index, content_index) -> deltas
        self.arguments: dict[int, list[str]] = {}  # output_index -> function call argument deltas

    def fold(self, event: dict) -> bool:
        """Take one event; whether the stored object changed."""
        kind, index = event.get("type"), event.get("output_index")
        if isinstance(event.get("response"), dict):
            self.response = event["response"]
        elif kind in ("response.output_item.added", "response.output_item.done") and isinstance(index, int):
            self.items[index] = copy.deepcopy(event["item"])  # the event itself is sent as it is
            if kind.endswith(".done"):
                self.arguments.pop(index, None)
                for key in [key for key in self.text if key[0] == index]:
                    del self.text[key]
        elif kind == "response.content_part.added" and index in self.items:
            self.items[index].setdefault("content", []).append(copy.deepcopy(event["part"]))
        elif kind in _TEXT_DELTAS and index in self.items:
            self.text.setdefault((index, event.get("content_index", 0)), []).append(event.get("delta", ""))
        elif kind == "response.function_call_arguments.delta" and index in self.items:
            self.arguments.setdefault(index, []).append(event.get("delta", ""))
        else:
            return False
        return True

    def snapshot(self) -> dict:
        output = []
        for index in sorted(self.items):
            item = dict(self.items[index])
            if index in self.arguments:
                item["arguments"] = item.get("arguments", "") + "".join(self.arguments[index])
            parts = [key[1] for key in self.text if key[0] == index]
            if parts:
                item["content"] = [dict(part) for part in item.get("content", [])]
                for content_index in parts:
                    if content_index < len(item["content"]):
                        part = item["content"][content_index]
                        part["text"] = part.get("text", "") + "".join(self.text[(index, content_index)])
            output.append(item)
        return {**self.response, "output": output}


class Keeper:
    """One turn's writes (see the module docstring). ``key`` is (owner, id) once opened."""

    def __init__(self, writer: StoreWriter, history: HistoryCache, *, owner: str, input_items: list[dict],
                 context: list[dict]) -> None:
        self.writer = writer
        self.history = history
        self.owner = owner
        self.input_items = input_items
        self.context = context
        self.key: tuple[str, str] = (owner, "")
        self.live: LiveOutput | None = None  # a stored stream's output so far, once opened
        self.opened_row = False
        self.final = False
        self.events: list[tuple[int, str]] = []  # (sequence_number, JSON) not yet written
        self.recorded_seq = -1  # the last sequence_number buffered or written

    def _take(self, event: dict) -> bool:
        """Buffer ``event`` unless it is already (a stored stream's events only)."""
        seq = event.get("sequence_number")
        if not self.opened_row or not isinstance(seq, int) or seq <= self.recorded_seq:
            return False
        self.events.append((seq, orjson.dumps(event).decode()))
        self.recorded_seq = seq
        return True

    def _event_statements(self) -> list[Statement]:
        """The buffered events' inserts: before the final write, only while the row is pending
        (a cancelled or swept response gets no more events); after it, as they come."""
        events, self.events = self.events, []
        if not events:
            return []
        return self.writer.store.event_statements(self.key[1], self.owner, events, while_pending=not self.final)

    async def opened(self, response: dict, event: dict | None = None) -> None:
        """Insert ``response`` (in_progress or queued), and ``event`` (its ``response.created``),
        committed when this returns."""
        if not response["store"]:
            return
        self.key = (self.owner, response["id"])
        self.opened_row = True
        if event is not None:
            self._take(event)
        written = self.writer.write([self.writer.store.put_statement(
            response, owner=self.owner, input_items=self.input_items, context=self.context),
            *self._event_statements()])
        # Set before waiting: if the client leaves during the wait, the final write that follows
        # must be the update of this (queued, hence earlier) insert, not a second insert.
        self.live = LiveOutput(response)  # the event's own copy, never changed
        await written

    def grew(self, event: dict) -> None:
        """One event of an opened stream: stored with the next progress batch (after the final
        write: at once, not awaited)."""
        if self.live is None:
            return
        if self.final:
            if self._take(event):
                self.writer.write_soon(self._event_statements())
            return
        folded = self.live.fold(event)
        if self._take(event) or folded:
            self.writer.track(self)

    def progress_statements(self) -> list[Statement]:
        """The events buffered since the last batch, then the output so far."""
        return [*self._event_statements(),
                self.writer.store.update_pending_statement(self.live.snapshot(), owner=self.owner)]

    def _final_statements(self, final: dict, events: list[dict]) -> list[Statement]:
        self.writer.untrack(self)
        for event in events:
            self._take(event)
        pending_events = self._event_statements()  # in the final object's transaction, before it
        self.final = True
        store = self.writer.store
        if self.opened_row:
            return [*pending_events, store.update_pending_statement(final, owner=self.owner)]
        return [store.put_statement(final, owner=self.owner, input_items=self.input_items, context=self.context)]

    async def __call__(self, final: dict, events: list[dict] = ()) -> None:
        """Store the final ``final`` (and ``events``, the terminal events about to be sent, with
        the ones still buffered); committed when this returns. Then cache it for chains."""
        if not final["store"]:
            return
        counts = await self.writer.write(self._final_statements(final, list(events)))
        if counts[-1]:
            self.history.remember(StoredResponse(final, self.input_items, self.context), self.owner)

    def soon(self, final: dict, events: list[dict] = ()) -> None:
        """Store the final ``final`` (and ``events``) without waiting (the client is gone)."""
        if final["store"]:
            self.writer.write_soon(self._final_statements(final, list(events)))
