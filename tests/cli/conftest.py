"""Fixtures for the `respcheck` end-to-end tests: real servers on 127.0.0.1, started here."""

from __future__ import annotations

import socket

import pytest

from cli_servers import Recorded, broken_app, record_gateway_bodies, serve

from harness.core.catalogue import load_checks


@pytest.fixture(scope="session")
def recorded() -> Recorded:
    return record_gateway_bodies()


@pytest.fixture(scope="module")
def broken_server(recorded):
    with serve(broken_app(recorded), "broken server") as server:
        yield server


@pytest.fixture(scope="session")
def check_ids() -> set[str]:
    return set(load_checks())


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
