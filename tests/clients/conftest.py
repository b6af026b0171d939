"""Fixtures for the real-client tests: the embedded reference gateway, and whether the pinned
clients are installed (scripts/install-clients.sh). Off CI a missing client skips its test with
the command to run; under CI (``$CI`` set) it fails: .ci/run installs them."""

from __future__ import annotations

import pytest

from harness.targets.target import EMBEDDED_MODEL, Target
from reference_gateway.launch import start_embedded


@pytest.fixture(scope="module")
def gateway_target():
    with start_embedded() as embedded:
        yield Target(name="reference", base_url=embedded.base_url, model=EMBEDDED_MODEL)

