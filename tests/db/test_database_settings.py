"""The database's own session defaults (ALTER DATABASE … SET) cannot break the service's answers.

A database chooses the encoding, date and interval styles, byte and float output of every session that
connects to it. The service decodes what the driver gives it: a database that sets ``client_encoding`` to
``SQL_ASCII`` made psycopg hand back bytes, and SQLAlchemy's first query (the server version) failed with a
TypeError: every route answered 500.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app

pytestmark = pytest.mark.integration

SETTINGS = (
    "client_encoding = 'SQL_ASCII'",
    "DateStyle = 'SQL, DMY'",
    "IntervalStyle = 'iso_8601'",
    "bytea_output = 'escape'",
    "extra_float_digits = -15",
    "standard_conforming_strings = off",
)


@pytest.fixture(scope="module")
def database(pg_url: str) -> Iterator[str]:
    db = f"dbm{uuid.uuid4().hex[:8]}_settings"
    server = sa.make_url(pg_url)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {db}")
    owner = sa.create_engine(server.set(database=db, drivername="postgresql+psycopg"))
    try:
        with owner.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE public.bookings (id int PRIMARY KEY, guest text, nights interval, "
                "booked date, price double precision, photo bytea)"
            )
            conn.exec_driver_sql(
                "INSERT INTO public.bookings VALUES (1, 'Zoë', '3 days', '2024-03-01', 0.1, '\\x00ff'), "
                "(2, 'Ada', '1 day 2 hours', '2024-12-31', 1234.5678, NULL)"
            )
            for setting in SETTINGS:
                conn.exec_driver_sql(f"ALTER DATABASE {db} SET {setting}")
        yield db
    finally:
        owner.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(scope="module")
def client(database: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("db_settings")
    url = sa.make_url(pg_url).set(database=database, drivername="postgresql+psycopg")
    settings = load_settings(
        database_url=url.render_as_string(hide_password=False),
        data_dir=tmp / "data",
        redis_cache_enabled=False,
        search_backend="keyword",
        schema_check_interval=0,
        data_examples=2,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_the_schema_and_its_sample_rows_are_served(client: TestClient) -> None:
    text = _post(client, "/v1/prompt-items/schema", {"with_examples": True})["text"]
    assert "# public.bookings" in text
    assert "Zoë" in text  # decoded as UTF-8, not as the database's SQL_ASCII bytes


def test_a_preflight_is_planned(client: TestClient) -> None:
    answer = _post(
        client,
        "/v1/preflight",
        {"sql": "SELECT guest FROM public.bookings WHERE booked > DATE '2024-06-01' AND guest <> 'a\\'"},
    )
    assert answer["ok"] is True, answer
    assert answer["plan"][0]["Plan"]["Relation Name"] == "bookings"


def test_readiness_says_ready(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
