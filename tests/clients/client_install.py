"""Whether a pinned real client is installed here (scripts/install-clients.sh): off CI a missing
one skips its test with the command to run; under CI (``$CI`` set) it fails (.ci/run installs
them)."""

from __future__ import annotations

import os

import pytest

from harness.run import clients as real_clients


def require_installed(client: real_clients.Client) -> None:
    if client.command(real_clients.ROOT) is None:
        message = f"{client.name} is not installed: {real_clients.INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(f"the real clients must run under CI: {message}")
        pytest.skip(message)
