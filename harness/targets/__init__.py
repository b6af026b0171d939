"""What a run judges and the servers it starts.

Target profiles and ``open_target`` (``target``, data in ``specs/targets.yaml``), spawned
server processes (``spawn``), ``respcheck serve`` (``serve``), the tiny random-weight model
directory for vLLM (``model_dir``), and the suite's own deterministic MCP and search servers
(``mcp_servers``, ``suite_servers``).

May import: ``harness.core``, and ``reference_gateway`` to embed or serve the reference gateway.
Never ``harness.run``, ``harness.report`` or ``harness.faces``.
"""
