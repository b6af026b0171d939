"""The plugin tests run pytest inside pytest (``pytester``) against servers on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

# httpx imports httpcore lazily and caches httpcore's exception classes the first time it maps
# one. pytester's in-process runs drop modules first imported during a run, so an httpcore
# first imported inside one would come back as a second copy whose exceptions httpx no longer
# recognises. Importing it here keeps one copy for the whole session.
import httpcore  # noqa: F401
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from cli_servers import broken_app, record_gateway_bodies, serve  # noqa: E402


@pytest.fixture(scope="module")
def broken_server():
    with serve(broken_app(record_gateway_bodies()), "broken server") as server:
        yield server


@pytest.fixture(autouse=True)
def _quiet_inner_ini(request):
    """Inner runs get the settings the project's own ini gives (no pytest-asyncio warning)."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester").makeini(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n")
