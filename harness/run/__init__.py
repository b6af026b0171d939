"""What drives a server: a run of scenarios against a target, turned into exchanges to judge.

The scenario model and loader (``scenario``), ``{{...}}`` references (``template``), a
scenario's expectations (``expect``), the guarded HTTP transport with its hard deadlines and
caps (``client``, DESIGN.md principle 8), its WebSocket counterpart (``ws_client``), the
multi-step runner (``runner``), the request fuzzer (``fuzz``), and the replay of a recorded run
through the runner with no server (``replay``).

May import: ``harness.core`` and ``harness.targets`` (a run is made against a target).
Never ``harness.report`` or ``harness.faces``.
"""
