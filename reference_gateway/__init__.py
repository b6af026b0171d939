"""A minimal, correct OpenAI Responses API server in front of any chat-completions upstream.

The map, by what each part is (DESIGN.md, "Layout"):

    core         gateway.py      ``Gateway``: config, store, history cache, background runner,
                                 upstreams, sandbox, built-in tools; ``prepare`` a create request
                                 into a ``Turn`` whose ``Answer`` (native, tool loop, chat) is
                                 chosen once and answers streamed or not; retrieve, input_items,
                                 delete, cancel, compact, models
    transports   app.py          HTTP (Starlette): bodies, routes, SSE framing, error envelopes;
                                 ``create_app(config)``
                 websocket.py    WebSocket mode: one ``response.create`` per text frame
    requests     params.py (create and compact bodies), input_items.py, tools.py, errors.py,
                 auth.py (keys and tenants), pagination.py, ids.py
    translation  translate.py (Responses <-> chat), emitter.py (the event state machine),
                 native.py (a native /v1/responses upstream), compaction.py (the compaction item)
    store        store.py (``open_store``), store_contract.py (what every backend promises),
                 store_sqlite.py, store_postgres.py; history.py (the chain cache),
                 background.py (background responses, orphans)
    upstream     upstream.py, routing.py (by model), readiness.py; mock_upstream.py (the
                 embedded deterministic model) with mock_tool_use.py and mock_arguments.py
                 (which tools it calls, with what), schema_example.py (JSON valid against a
                 schema), mock_attachments.py and image_header.py (images and files)
    built-ins    builtin/ (MCP client, hosted tools, the tool loop)
    sandbox      sandbox/ (code_interpreter: Pyodide under a jailed Node, or a service)
    observing    observe.py (per request) with metrics.py, logs.py, tracing.py, and
                 request_context.py (the context variable observe.py sets and logs.py reads)
    running      config.py, config_file.py, __main__.py (the CLI), launch.py (in-process),
                 worker.py (several processes)

Import rules:

- Never ``harness``: the gateway shares data with the checker (``specs/``) but never code
  (DESIGN.md, principle 2), so that their bugs cannot cancel.
- Transports import the core, never each other; the core imports no transport.
- No import cycles, counting imports inside functions. An import inside a function only defers
  an optional or heavy third-party dependency (mcp, psycopg, opentelemetry, uvicorn on the CLI
  path, the sandbox's jail), with a comment saying so.
- A package's ``__init__`` (this one, builtin/, sandbox/) imports nothing from its package:
  import the module that holds a name (``GatewayConfig`` is in config.py).
"""
