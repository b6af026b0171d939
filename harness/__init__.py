"""respcheck: conformance and load testing for OpenAI Responses API servers.

The harness in parts (each part's ``__init__`` says what it may import):

    core/     the sans-IO verdict engine and its data: SSE decoding, stream grammar, schemas,
              findings, the check catalogue, exchanges (transcripts); imports no other part
    run/      what drives a server: scenarios, templates, expectations, the guarded HTTP and
              WebSocket transports, the runner, the fuzzer; imports core and targets
    targets/  what a run judges and the servers it starts (embedded gateway, spawned vLLM,
              MCP servers of the suite); imports core
    report/   summary.json, junit, markdown, html, comparisons, baselines; imports core
    faces/    the ways in: the ``respcheck`` CLI and the pytest plugin; may import any part
"""

__version__ = "0.1.0"
