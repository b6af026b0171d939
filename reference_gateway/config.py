"""Gateway configuration: one frozen value, passed to ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field

from reference_gateway.auth import check_keys
from reference_gateway.builtin.config import BuiltinConfig
from reference_gateway.logs import check_format  # -- observability (issue 8)
from reference_gateway.routing import API_KINDS, Routes, UpstreamSpec
from reference_gateway.sealing import KEY_BYTES, new_key
from reference_gateway.store import check_location

# The name of the one upstream of a gateway without --routes.
DEFAULT_UPSTREAM = "default"

# ``code_interpreter``: where Python runs (reference_gateway/sandbox/). "auto": spawn the
# Pyodide sandbox when it is installed (scripts/install-pyodide.sh), else none.
CODE_INTERPRETER_MODES = ("auto", "spawn", "external", "disabled")

# 1 MiB: the same order as nginx's ``client_max_body_size`` default (1m); a text request to a
# Responses server is far smaller, and a cap keeps a flood from reaching the JSON parser.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# The longest silence between two reads of a streamed upstream answer, unless set. A decoding
# model sends a token every few to a few hundred milliseconds, and the wait for the first one
# (prefill, queueing) has its own deadline; 30 s of silence after it is a stuck upstream (the
# nginx default for the same limit, ``proxy_read_timeout``, is 60 s: half of it here, since a
# stuck stream holds a client that sees nothing).
DEFAULT_STREAM_IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    # Base URL of the chat-completions upstream as an OpenAI client takes it, e.g.
    # ``http://127.0.0.1:8000/v1``; the gateway calls ``{upstream_url}/chat/completions``.
    upstream_url: str
    upstream_api_key: str | None = None
    # SQLite file for stored responses; ":memory:" keeps them for the life of the process.
    db_path: str = ":memory:"
    # Deadline for a whole non-streamed upstream call; a streamed one's deadlines follow it
    # unless set (``stream_deadlines``).
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Served by GET /v1/models when non-empty; otherwise the upstream's list is relayed.
    models: tuple[str, ...] = ()
    # Append ``data: [DONE]`` after the terminal event (required by the Open Responses profile,
    # never sent by OpenAI's service).
    done_sentinel: bool = False
    # -- auth and store (issue 6)
    # API keys clients must send as ``Authorization: Bearer KEY`` (auth.py); none: the gateway
    # is open and every response belongs to one anonymous tenant. Kept out of repr (and logs).
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Where responses are stored: a SQLite path (":memory:" for none) or a postgresql:// URL
    # (store.py). None: ``db_path``, the older name of the same setting, kept for its callers.
    # Out of repr: a URL may carry a password.
    store: str | None = field(default=None, repr=False)
    # A background response whose gateway process stopped renewing its lease in the store for
    # this long is stored as failed (background.py); its process renews 5 times per lease.
    orphan_after_s: float = 30.0
    # -- upstream faults and readiness (issue 6)
    # A streamed upstream call must send its first chunk within stream_first_token_timeout_s of
    # the request (headers included), then never fall silent for more than
    # stream_idle_timeout_s, and end within stream_timeout_s in all (so an upstream that drips
    # one byte at a time cannot hold a stream forever). The defaults (None) give a stream the
    # deadlines of a non-streamed answer (issue 17): request_timeout_s to the first chunk and
    # for the whole, so an answer that takes too long fails the same way either way; and
    # between two reads the smaller of request_timeout_s and DEFAULT_STREAM_IDLE_TIMEOUT_S.
    stream_first_token_timeout_s: float | None = None
    stream_idle_timeout_s: float | None = None
    stream_timeout_s: float | None = None
    # Caps on what the upstream sends: one SSE line of a streamed answer (a chunk carrying one
    # token is ~300 bytes), and a whole non-streamed answer. Beyond them: 502.
    upstream_max_line_bytes: int = 1024 * 1024
    upstream_max_body_bytes: int = 16 * 1024 * 1024
    # ``python -m reference_gateway`` waits up to upstream_wait_s before serving for the upstream
    # to answer GET {upstream_url}/models, trying every upstream_poll_interval_s (readiness.py);
    # 0 skips the wait. In-process users (launch.py) do not wait.
    upstream_wait_s: float = 60.0
    upstream_poll_interval_s: float = 0.5
    # -- built-in tools (issue 7; reference_gateway/builtin/)
    # MCP servers by label, the server_url allowlist and web-search profiles (--mcp-config).
    builtin: BuiltinConfig = field(default_factory=BuiltinConfig, repr=False)
    code_interpreter: str = "disabled"
    code_interpreter_url: str | None = None  # the sandbox service, for "external"
    web_search_profile: str | None = None  # a name of builtin.web_search_profiles
    tool_loop_timeout_s: float = 300.0  # one response's whole tool loop
    # -- upstreams (issue 8): several, routed by model (routing.py), each of an api kind
    routes: Routes | None = field(default=None, repr=False)
    upstream_api_kind: str = "chat_completions"  # of upstream_url, without routes
    # Finished responses kept in memory for previous_response_id chains (history.py); 0: off.
    history_cache_entries: int = 1024
    history_cache_ttl_s: float = 300.0
    # -- observability (issue 8; observe.py, metrics.py, logs.py, tracing.py)
    metrics: bool = True  # GET /metrics (Prometheus) and what it counts
    log_format: str = "text"  # "json": one JSON object per line on stderr, an access line per request
    # -- WebSocket mode (reference_gateway/websocket.py)
    # A socket's lifetime: past it, its next turn is refused (websocket_connection_limit_reached)
    # and the socket closed. 3600: OpenAI's WebSocket mode closes connections after 60 minutes.
    ws_max_connection_s: float = 3600.0
    # -- sealed blobs (sealing.py): the key compaction items and reasoning encrypted_content are
    # sealed with. Random per config (so shared by --workers, which get the config pickled), lost
    # on restart unless read from --seal-key-file. Out of repr (and logs).
    seal_key: bytes = field(default_factory=new_key, repr=False, compare=False)
    # An OpenTelemetry TracerProvider to trace with (a test's in-memory one); None: traces only
    # when the OTEL_* environment configures an exporter (tracing.py).
    tracer_provider: object | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.upstream_url.startswith(("http://", "https://")):
            raise ValueError(f"upstream_url must start with http:// or https://, got {self.upstream_url!r}")
        if self.request_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self._check_auth_and_store()
        # -- upstream faults and readiness (issue 6)
        for name in ("stream_first_token_timeout_s", "stream_idle_timeout_s", "stream_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("upstream_max_line_bytes", "upstream_max_body_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.upstream_wait_s >= 0:
            raise ValueError(f"upstream_wait_s must be 0 or more, got {self.upstream_wait_s}")
        if not self.upstream_poll_interval_s > 0:
            raise ValueError(f"upstream_poll_interval_s must be positive, got {self.upstream_poll_interval_s}")
        if self.code_interpreter not in CODE_INTERPRETER_MODES:
            raise ValueError(f"code_interpreter must be one of {', '.join(CODE_INTERPRETER_MODES)}, "
                             f"got {self.code_interpreter!r}")
        if self.code_interpreter == "external" and not self.code_interpreter_url:
            raise ValueError("code_interpreter external needs code_interpreter_url (--code-interpreter-url)")
        if self.web_search_profile is not None and self.web_search_profile not in self.builtin.web_search_profiles:
            known = ", ".join(self.builtin.web_search_profiles) or "none in --mcp-config"
            raise ValueError(f"web_search_profile {self.web_search_profile!r} is not a webSearchProfiles entry "
                             f"({known})")
        if self.history_cache_entries < 0 or not self.history_cache_ttl_s > 0:
            raise ValueError("history_cache_entries must be 0 or more and history_cache_ttl_s positive")
        if self.upstream_api_kind not in API_KINDS:
            raise ValueError(f"upstream_api_kind must be one of {', '.join(API_KINDS)}, got {self.upstream_api_kind!r}")
        if not self.tool_loop_timeout_s > 0:
            raise ValueError(f"tool_loop_timeout_s must be positive, got {self.tool_loop_timeout_s}")
        if not self.ws_max_connection_s > 0:
            raise ValueError(f"ws_max_connection_s must be positive, got {self.ws_max_connection_s}")
        check_format(self.log_format)
        if len(self.seal_key) < KEY_BYTES:
            raise ValueError(f"seal_key must have at least {KEY_BYTES} bytes")

    @property
    def upstream_specs(self) -> tuple[UpstreamSpec, ...]:
        """Every upstream this gateway calls: the routes' upstreams, or the one of upstream_url."""
        if self.routes is not None:
            return tuple(self.routes.upstreams.values())
        return (UpstreamSpec(DEFAULT_UPSTREAM, self.upstream_url, self.upstream_api_key, self.upstream_api_kind),)

    @property
    def stream_deadlines(self) -> tuple[float, float, float]:
        """A streamed upstream call's (first chunk, idle, whole stream) deadlines, in seconds,
        the defaults filled in (see the fields)."""
        first = self.stream_first_token_timeout_s or self.request_timeout_s
        idle = self.stream_idle_timeout_s or min(self.request_timeout_s, DEFAULT_STREAM_IDLE_TIMEOUT_S)
        return first, idle, self.stream_timeout_s or self.request_timeout_s

    @property
    def store_location(self) -> str:
        """The SQLite path or PostgreSQL URL the gateway stores responses in."""
        return self.store if self.store is not None else self.db_path

    def _check_auth_and_store(self) -> None:
        check_keys(self.api_keys, source="api key")
        check_location(self.store_location)
        if self.orphan_after_s <= 0:
            raise ValueError("orphan_after_s must be positive")
