"""Shared fixtures: a real Greenflash-compatible ingest server that checks every payload it receives.

``ingest_server`` runs ``convotel.server`` on uvicorn at 127.0.0.1 (ephemeral
port, strict mode, a fresh SQLite store) and records every request. Point a
client at it::

    def test_delivery(ingest_server):
        sink = GreenflashSink(api_key=ingest_server.token, base_url=ingest_server.url)
        ...  # POSTs go to f"{ingest_server.url}/messages"
        assert ingest_server.store.messages("conv-1")

``url`` is the API base (``http://127.0.0.1:PORT/v1``), the counterpart of the
SDK's default ``https://www.greenflash.ai/api/v1``; ``Greenflash(base_url=url,
api_key=token)`` works as is.

At teardown the fixture stops the server and fails the test if any request
got a 5xx, if any accepted ``POST /v1/messages`` body breaks the schema derived
from the official SDK (``greenflash_schema``), or, unless the test called
``expect_rejections()``, if any ``POST /v1/messages`` was rejected or broke
that schema. ``make_ingest_server(**options)`` starts more (or differently
configured) servers with the same checks; ``module_ingest_server`` is one
shared by a whole module, for tests that only send requests that get rejected
or read what they wrote themselves.

``srv`` is a scriptable ``FaultServer`` (``faultserver``), one per test module,
demanding that module's ``KEY`` as its API key and wiped clean for each test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer
from ingest_support import IngestServer, running_ingest_server


@pytest.fixture
def make_ingest_server(tmp_path: Path) -> Iterator[Callable[..., IngestServer]]:
    """Start checked ingest servers: ``make_ingest_server(strict=..., max_body_bytes=..., token=...)``."""
    with ExitStack() as servers:
        numbers = itertools.count()

        def start(**options: Any) -> IngestServer:
            return servers.enter_context(running_ingest_server(tmp_path / f"ingest{next(numbers)}", **options))

        yield start


@pytest.fixture
def ingest_server(make_ingest_server: Callable[..., IngestServer]) -> IngestServer:
    """A strict, checked ingest server over a fresh store (see the module docstring)."""
    return make_ingest_server()


@pytest.fixture(scope="module")
def module_ingest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestServer]:
    """One strict, checked ingest server for a whole test module."""
    with running_ingest_server(tmp_path_factory.mktemp("ingest")) as server:
        yield server


@pytest.fixture(scope="module")
def fault_server(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    """One fault server per test module, demanding the module's ``KEY`` as its API key."""
    with FaultServer(api_key=request.module.KEY) as server:
        yield server


@pytest.fixture
def srv(fault_server: FaultServer) -> FaultServer:
    """The module's fault server, with no faults, requests or body limit left by earlier tests."""
    fault_server.reset()
    fault_server.max_body_bytes = None
    return fault_server
