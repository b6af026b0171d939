"""Built-in (hosted) tools the gateway runs itself: MCP, code_interpreter, web_search.

    config.py      ``--mcp-config mcp.json``: MCP servers by label, the server_url allowlist,
                   web-search profiles
    mcp_client.py  the gateway's MCP client (Streamable HTTP), tool lists cached with a TTL
    hosted.py      hosted tools of a request -> the function tools the upstream model is offered,
                   and each call the model makes -> the executor that runs it
    loop.py        the tool loop: upstream turn, hosted calls executed and streamed, next turn,
                   bounded by ``max_tool_calls``, a turn cap and a deadline

The upstream is any chat-completions model: it sees each hosted tool as a function tool
(``mcp__<label>__<tool>``, ``code_interpreter``, ``web_search``) and never knows the gateway
runs them. The client sees OpenAI's items and events (``mcp_list_tools``, ``mcp_call``,
``mcp_approval_request``, ``code_interpreter_call``, ``web_search_call``).
"""
