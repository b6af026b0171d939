"""What one request of a load test looks like: API, model, prompt length, output length, stream.

Prompts are words from a fixed vocabulary, a different sequence for every request (seeded by
the request's number), so a server's prefix cache cannot answer them from memory; a word is
about one token for common BPE tokenizers, so ``input_tokens`` is approximate. The output
length is forced with ``max_output_tokens`` (Responses) / ``max_tokens`` (chat); a server whose
model stops early yields fewer tokens, which the samples record from ``usage``.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import orjson

APIS = ("responses", "chat")
PATHS = {"responses": "/responses", "chat": "/chat/completions"}
# The Responses API refuses max_output_tokens below 16 (OpenAI's documented minimum).
MIN_RESPONSES_OUTPUT_TOKENS = 16
VOCABULARY = (
    "the of and to in is was for on that with as by at from his her an were are which this be "
    "or has had not but have one their its first new after two who they also been other time "
    "more some when into than city most only over years many where made may school such three"
).split()


@dataclass(frozen=True, kw_only=True)
class Workload:
    api: str = "responses"
    model: str = "mock-1"
    input_tokens: int = 32
    output_tokens: int | None = None  # None: the server's default length
    stream: bool = True
    check: str = "full"  # observe.CHECK_MODES
    profile: str = "openai"

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ValueError(f"api must be one of {APIS}, got {self.api!r}")
        if self.input_tokens < 1:
            raise ValueError("input_tokens must be >= 1")
        if self.output_tokens is not None and self.output_tokens < 1:
            raise ValueError("output_tokens must be >= 1")
        if (self.api == "responses" and self.output_tokens is not None
                and self.output_tokens < MIN_RESPONSES_OUTPUT_TOKENS):
            raise ValueError(f"the Responses API takes max_output_tokens >= {MIN_RESPONSES_OUTPUT_TOKENS}, "
                             f"got --output-tokens {self.output_tokens}")

    @property
    def path(self) -> str:
        return PATHS[self.api]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def prompt(self, n: int) -> str:
        rng = random.Random(n)
        words = [f"request {n}:"] + [rng.choice(VOCABULARY) for _ in range(max(self.input_tokens - 2, 1))]
        return " ".join(words)

    def body(self, n: int) -> bytes:
        """The JSON body of request number ``n``."""
        text = self.prompt(n)
        if self.api == "responses":
            body: dict[str, Any] = {"model": self.model, "input": text, "stream": self.stream,
                                    "store": False}
            if self.output_tokens is not None:
                body["max_output_tokens"] = self.output_tokens
        else:
            body = {"model": self.model, "messages": [{"role": "user", "content": text}],
                    "stream": self.stream}
            if self.stream:
                body["stream_options"] = {"include_usage": True}
            if self.output_tokens is not None:
                # as the reference gateway sends it: older servers read max_tokens, newer ones
                # max_completion_tokens
                body["max_tokens"] = body["max_completion_tokens"] = self.output_tokens
        return orjson.dumps(body)
