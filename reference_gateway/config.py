"""Gateway configuration: one frozen value, passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass

# 1 MiB: the same order as nginx's ``client_max_body_size`` default (1m); a text request to a
# Responses server is far smaller, and a cap keeps a flood from reaching the JSON parser.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    # Base URL of the chat-completions upstream as an OpenAI client takes it, e.g.
    # ``http://127.0.0.1:8000/v1``; the gateway calls ``{upstream_url}/chat/completions``.
    upstream_url: str
    upstream_api_key: str | None = None
    # SQLite file for stored responses; ":memory:" keeps them for the life of the process.
    db_path: str = ":memory:"
    # Deadline for a whole non-streamed upstream call, and for each read of a streamed one.
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Served by GET /v1/models when non-empty; otherwise the upstream's list is relayed.
    models: tuple[str, ...] = ()
    # Append ``data: [DONE]`` after the terminal event (required by the Open Responses profile,
    # never sent by OpenAI's service).
    done_sentinel: bool = False

    def __post_init__(self) -> None:
        if not self.upstream_url.startswith(("http://", "https://")):
            raise ValueError(f"upstream_url must start with http:// or https://, got {self.upstream_url!r}")
        if self.request_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
