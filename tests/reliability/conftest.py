"""Markers and fixtures of the reliability suite: private Redis and PostgreSQL servers the tests control."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench._faults import PgCluster, RedisServer, pg_tools_available


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's markers."""
    config.addinivalue_line(
        "markers", "faults: runs the real app under load while a dependency is killed, frozen or starved"
    )
    config.addinivalue_line("markers", "fuzz: property-based requests generated from the OpenAPI document")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Start a private redis-server on a free port; the test may kill, freeze and restart it."""
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """Create and start a private PostgreSQL cluster (initdb as 'postgres') on a free port."""
    reason = pg_tools_available()
    if reason is not None:
        pytest.skip(f"cannot create a private PostgreSQL cluster: {reason}")
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.close()
