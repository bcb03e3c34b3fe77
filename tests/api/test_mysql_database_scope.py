"""A MySQL/MariaDB profile describes the database its URL names, not every database its login can read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbmeta_app.config import Profile, load_settings
from dbmeta_app.main import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def databases(mysql_url: str) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    own, other = f"dbm{suffix}_own", f"dbm{suffix}_other"
    admin = sa.create_engine(mysql_url)
    with admin.begin() as conn:
        for statement in (
            f"CREATE DATABASE {own}",
            f"CREATE DATABASE {other}",
            f"CREATE TABLE {own}.orders (id INT PRIMARY KEY, amount INT)",
            f"CREATE TABLE {other}.payroll_private (emp VARCHAR(20), salary INT)",
            f"INSERT INTO {other}.payroll_private VALUES ('alice', 250000)",
        ):
            conn.exec_driver_sql(statement)
    try:
        yield own, other
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {own}")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {other}")
        admin.dispose()


def test_only_the_url_s_database_is_served(
    mysql_url: str, databases: tuple[str, str], tmp_path: Path
) -> None:
    own, other = databases
    url = mysql_url.rsplit("/", 1)[0] + f"/{own}"
    settings = load_settings(
        database_url=url, data_dir=tmp_path, redis_cache_enabled=False, search_backend="keyword"
    )
    with TestClient(create_app(settings)) as client:
        full = client.post("/v1/prompt-items/schema", json={}).json()
        assert full["metadata"]["tables"] == [f"{own}.orders"], full["metadata"]
        for query in ("employee salary payroll private", "orders amount"):
            found = client.post("/v1/tables/search", json={"query": query, "top_k": 5}).json()
            assert [t["name"] for t in found["tables"]] in ([], [f"{own}.orders"]), found
        named = client.post(
            "/v1/prompt-items/schema", json={"tables": [f"{other}.payroll_private"], "with_examples": True}
        )
        assert "alice" not in named.text and "250000" not in named.text


def test_include_schemas_still_chooses_the_databases(mysql_url: str, databases: tuple[str, str]) -> None:
    own, other = databases
    url = mysql_url.rsplit("/", 1)[0] + f"/{own}"
    assert Profile(name="p", database_url=url).include_schemas == (own,)
    assert Profile(name="p", database_url=url, include_schemas=(own, other)).include_schemas == (own, other)
    assert Profile(name="p", database_url=mysql_url.rsplit("/", 1)[0] + "/").include_schemas == ()
