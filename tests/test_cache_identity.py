"""Cached values and indexes belong to the database they were read from, whatever CLIENT, ENV and the
profile's name say: two databases behind one Redis, a DATABASE_URL switched between runs, one Milvus file."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dbmeta_app.cache.redis_cache import RedisCache
from dbmeta_app.cli import app as cli
from dbmeta_app.config import get_settings
from dbmeta_app.main import create_app
from tests.conftest import PG_ADMIN_URL, RedisProcess


def make_sqlite(path: Path, *tables: str) -> str:
    """Create a SQLite database with these tables; return its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        for table in tables:
            conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {table}_name TEXT)")
    return f"sqlite:///{path}"


def behind_redis(make_settings: Any, server: fakeredis.FakeServer, url: str) -> TestClient:
    """A deployment of the app on this database, its cache in the shared fake Redis (no drift watcher)."""
    settings = make_settings(database_url=url, redis_cache_enabled=True, schema_check_interval=0)
    cache = RedisCache(settings, redis_client=fakeredis.FakeAsyncRedis(server=server))
    return TestClient(create_app(settings, cache=cache))


def schema_tables(client: TestClient) -> tuple[list[str], dict[str, Any]]:
    r = client.post("/v1/prompt-items/schema", json={})
    assert r.status_code == 200, r.text
    meta = r.json()["metadata"]
    return meta["tables"], meta


# ------------------------------------------------------------------ two databases behind one Redis


def test_two_databases_behind_one_redis_with_default_client_and_env_each_get_their_own_tables(
    make_settings: Any, tmp_path: Path
) -> None:
    a = make_sqlite(tmp_path / "a.db", "alpha_orders", "alpha_customers")
    b = make_sqlite(tmp_path / "b.db", "beta_invoices")
    server = fakeredis.FakeServer()  # one Redis for both deployments

    with behind_redis(make_settings, server, a) as first, behind_redis(make_settings, server, b) as second:
        assert schema_tables(first)[0] == ["alpha_customers", "alpha_orders"]
        tables, meta = schema_tables(second)
        assert tables == ["beta_invoices"] and meta["cache"] == "miss"
        # and neither overwrote the other
        assert schema_tables(first) == (["alpha_customers", "alpha_orders"], schema_tables(first)[1])
        assert schema_tables(first)[1]["cache"] == "hit" and schema_tables(second)[1]["cache"] == "hit"
        assert schema_tables(second)[0] == ["beta_invoices"]


@pytest.fixture
def pg_databases(pg_url: str) -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases (unique names) with different tables; dropped afterwards."""
    names = [f"dbmeta_ident_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    urls = []
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        for name, table in zip(names, ("north_sales", "south_stock"), strict=True):
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE TABLE public.{table} (id integer PRIMARY KEY)"))
            engine.dispose()
            urls.append(url)
        yield urls[0], urls[1]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.integration
def test_two_postgresql_databases_behind_one_real_redis_each_get_their_own_tables(
    make_settings: Any, pg_databases: tuple[str, str], redis_process: RedisProcess
) -> None:
    a, b = pg_databases

    def deployment(url: str) -> TestClient:
        settings = make_settings(
            database_url=url,
            redis_cache_enabled=True,
            redis_host="127.0.0.1",
            redis_port=redis_process.port,
            schema_check_interval=0,
        )
        return TestClient(create_app(settings))

    with deployment(a) as first:
        assert schema_tables(first)[0] == ["public.north_sales"]
    with deployment(b) as second:  # the same Redis, CLIENT, ENV and profile name; another database
        assert schema_tables(second)[0] == ["public.south_stock"]
    with deployment(a) as again:
        tables, meta = schema_tables(again)
        assert tables == ["public.north_sales"] and meta["cache"] == "hit"


# ------------------------------------------------------------------ DATABASE_URL switched between CLI runs


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_process: RedisProcess) -> Iterator[None]:
    """The CLI on a private Redis with the default CLIENT and ENV; DATA_DIR under the test's tmp dir."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv("REDIS_PORT", str(redis_process.port))
    monkeypatch.setenv("SEARCH_BACKEND", "keyword")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run_schema(monkeypatch: pytest.MonkeyPatch, url: str) -> tuple[int, dict[str, Any] | None, str]:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["schema", "--json"])
    item = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, item, result.output


@pytest.mark.integration
def test_switching_database_url_between_cli_runs_never_shows_the_other_databases_tables(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str
) -> None:
    a = make_sqlite(tmp_path / "a.db", "alpha_orders")
    b = make_sqlite(tmp_path / "b.db", "beta_invoices")
    code, item, _ = run_schema(monkeypatch, a)
    assert code == 0 and item is not None and item["metadata"]["tables"] == ["alpha_orders"]
    code, item, _ = run_schema(monkeypatch, b)
    assert code == 0 and item is not None
    assert item["metadata"]["tables"] == ["beta_invoices"] and item["metadata"]["cache"] == "miss"
    # a database that does not exist is an error, never another database's cached tables
    missing_pg = pg_url.rsplit("/", 1)[0] + f"/dbmeta_nosuch_{uuid.uuid4().hex[:8]}"
    code, item, output = run_schema(monkeypatch, missing_pg)
    assert code != 0 and item is None and "alpha_orders" not in output and "beta_invoices" not in output
    code, item, output = run_schema(monkeypatch, f"sqlite:///{tmp_path / 'no-such-dir' / 'a.db'}")
    assert code != 0 and "alpha_orders" not in output
    code, item, _ = run_schema(monkeypatch, a)
    assert code == 0 and item is not None
    assert item["metadata"]["tables"] == ["alpha_orders"] and item["metadata"]["cache"] == "hit"
    assert item["metadata"]["stale_reason"] is None


def test_a_schema_changed_while_cached_is_read_again_by_the_next_command_not_served_as_a_hit(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = make_sqlite(tmp_path / "a.db", "alpha_orders")
    code, item, _ = run_schema(monkeypatch, url)
    assert code == 0 and item is not None and item["metadata"]["cache"] == "miss"
    with sqlite3.connect(tmp_path / "a.db") as conn:  # DDL while no process of the service watches
        conn.execute("CREATE TABLE alpha_refunds (id INTEGER PRIMARY KEY)")
    code, item, _ = run_schema(monkeypatch, url)
    assert code == 0 and item is not None
    assert item["metadata"]["tables"] == ["alpha_orders", "alpha_refunds"], item["metadata"]
    assert item["metadata"]["cache"] == "miss"
    code, item, _ = run_schema(monkeypatch, url)  # unchanged since: a hit, after one fingerprint query
    assert code == 0 and item is not None and item["metadata"]["cache"] == "hit"


def test_a_service_started_after_a_schema_change_answers_the_new_schema_from_its_first_request(
    make_settings: Any, tmp_path: Path
) -> None:
    url = make_sqlite(tmp_path / "a.db", "alpha_orders")
    server = fakeredis.FakeServer()
    # the drift watcher is off: only the first comparison can notice
    with behind_redis(make_settings, server, url) as first:
        assert schema_tables(first)[0] == ["alpha_orders"]
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("CREATE TABLE alpha_refunds (id INTEGER PRIMARY KEY)")
    with behind_redis(make_settings, server, url) as second:
        tables, meta = schema_tables(second)
        assert tables == ["alpha_orders", "alpha_refunds"] and meta["cache"] == "miss", meta
        tables, meta = schema_tables(second)
        assert meta["cache"] == "hit" and "alpha_refunds" in tables


@pytest.mark.integration
def test_a_cached_schema_of_a_database_that_no_longer_answers_is_served_as_stale_with_the_reason(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = make_sqlite(tmp_path / "dir" / "a.db", "alpha_orders")
    code, item, _ = run_schema(monkeypatch, url)
    assert code == 0 and item is not None and item["metadata"]["cache"] == "miss"
    # The same URL (the same identity) now names a file SQLite cannot open: the database is down.
    (tmp_path / "dir").rename(tmp_path / "moved")
    code, item, output = run_schema(monkeypatch, url)
    assert code == 0 and item is not None
    meta = item["metadata"]
    assert meta["tables"] == ["alpha_orders"] and meta["cache"] == "stale"
    assert meta["stale_reason"].startswith("database unavailable since ") and "OperationalError" in output


def test_the_service_labels_cached_answers_stale_once_it_learns_the_database_is_down(
    make_settings: Any, tmp_path: Path
) -> None:
    url = make_sqlite(tmp_path / "dir" / "a.db", "alpha_orders")
    server = fakeredis.FakeServer()

    with behind_redis(make_settings, server, url) as client:
        assert schema_tables(client)[1]["cache"] == "miss"
    (tmp_path / "dir").rename(tmp_path / "moved")
    with behind_redis(
        make_settings, server, url
    ) as client:  # a replica that starts while the database is down
        deadline = time.monotonic() + 10
        meta = schema_tables(client)[1]
        assert meta["tables"] == ["alpha_orders"]  # answered from the cache at once, never an error
        while meta["cache"] != "stale" and time.monotonic() < deadline:
            time.sleep(0.05)  # the first answer started a ping in the background
            meta = schema_tables(client)[1]
        assert meta["cache"] == "stale" and "OperationalError" in meta["stale_reason"]
        (tmp_path / "moved").rename(tmp_path / "dir")  # back: the next ping clears the label
        client.app.state.runtime.profile(None).health.checked_at = None  # type: ignore[attr-defined]
        schema_tables(client)
        deadline = time.monotonic() + 10
        while meta["cache"] != "hit" and time.monotonic() < deadline:
            time.sleep(0.05)
            meta = schema_tables(client)[1]
        assert meta["cache"] == "hit" and meta["stale_reason"] is None


# ------------------------------------------------------------------ one Milvus Lite file, two databases


def _wait_indexed(client: TestClient, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = client.get("/readyz").json()["checks"]["search"]["profiles"].get("default", {})
        if state.get("state") == "ready" and state.get("last_sync"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"not indexed: {state}")


@pytest.mark.integration
def test_the_search_index_built_for_one_database_is_never_used_for_another(
    make_settings: Any, tmp_path: Path
) -> None:
    a = make_sqlite(tmp_path / "a.db", "alpha_orders", "alpha_customers")
    b = make_sqlite(tmp_path / "b.db", "beta_invoices")

    def deployment(url: str) -> TestClient:
        settings = make_settings(
            database_url=url, search_backend="milvus", schema_check_interval=0, data_dir=tmp_path / "data"
        )
        return TestClient(create_app(settings))

    with deployment(a) as first:
        assert _wait_indexed(first)["last_sync"]["added"] == 2
    with deployment(b) as second:  # the same Milvus Lite file, CLIENT, ENV and profile name
        sync = _wait_indexed(second)["last_sync"]
        # its own, new index: nothing of database a's index was found under its names
        assert (sync["added"], sync["removed"], sync["unchanged"]) == (1, 0, 0)
        hits = second.post("/v1/tables/search", json={"query": "orders of customers", "top_k": 5}).json()
        assert [t["name"] for t in hits["tables"]] == ["beta_invoices"]
    with deployment(a) as again:  # database a's index is intact: nothing to embed again
        sync = _wait_indexed(again)["last_sync"]
        assert (sync["added"], sync["embedded"], sync["unchanged"]) == (0, 0, 2)


@pytest.mark.integration
def test_cache_clear_drops_every_kind_of_the_profiles_scope_and_nothing_of_another_database(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a = make_sqlite(tmp_path / "a.db", "alpha_orders")
    b = make_sqlite(tmp_path / "b.db", "beta_invoices")
    assert run_schema(monkeypatch, b)[0] == 0  # another database under the same CLIENT, ENV and profile name
    assert run_schema(monkeypatch, a)[0] == 0
    explained = CliRunner().invoke(cli, ["preflight", "SELECT count(*) FROM alpha_orders"])
    assert explained.exit_code == 0, explained.output
    cleared = CliRunner().invoke(cli, ["cache", "clear"])
    assert cleared.exit_code == 0, cleared.output
    assert "1 schema" in cleared.output and "1 explain" in cleared.output, cleared.output
    code, item, _ = run_schema(monkeypatch, a)
    assert code == 0 and item is not None and item["metadata"]["cache"] == "miss"
    code, item, _ = run_schema(monkeypatch, b)
    assert code == 0 and item is not None and item["metadata"]["cache"] == "hit"
