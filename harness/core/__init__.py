"""The verdict engine: one checker that every driver calls (DESIGN.md, principle 1).

Sans-IO, the h11 model: bytes or frames in, findings out, never a socket. The SSE decoder
(``sse``), the stream checker (``stream``, ``phases``, ``spec_rules``), the schema validators
(``schemas``), the response-level checks (``response``, ``tools``, ``structured``), the check
catalogue and profiles as read from ``specs/`` (``catalogue``), findings (``findings``),
exchanges and their JSONL transcripts (``transcript``), and the verdict over one exchange
(``verdict``).

May import: the standard library, third-party libraries, the ``specs`` data and
``harness.__version__``. Never ``harness.run``, ``harness.targets``, ``harness.report`` or
``harness.faces``: every other part depends on the core, the core on none of them.
"""
