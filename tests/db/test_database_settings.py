"""The database's own session defaults (ALTER DATABASE … SET) cannot break the service's answers.

A database chooses the encoding, date and interval styles, byte and float output of every session that
connects to it. The service decodes what the driver gives it: a database that sets ``client_encoding`` to
``SQL_ASCII`` made psycopg hand back bytes, and SQLAlchemy's first query (the server version) failed with a
TypeError: every route answered 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests._scratch import pg_database, service

pytestmark = pytest.mark.integration

SETTINGS = (
    "client_encoding = 'SQL_ASCII'",
    "DateStyle = 'SQL, DMY'",
    "IntervalStyle = 'iso_8601'",
    "bytea_output = 'escape'",
    "extra_float_digits = -15",
    "standard_conforming_strings = off",
)


SETUP: tuple[str, ...] = (
    "CREATE TABLE public.bookings (id int PRIMARY KEY, guest text, nights interval, "
    "booked date, price double precision, photo bytea)",
    "INSERT INTO public.bookings VALUES (1, 'Zoë', '3 days', '2024-03-01', 0.1, '\\x00ff'), "
    "(2, 'Ada', '1 day 2 hours', '2024-12-31', 1234.5678, NULL)",
    *(f"ALTER DATABASE {{db}} SET {setting}" for setting in SETTINGS),
)


@pytest.fixture(scope="module")
def client(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    for engine in pg_database(pg_url, SETUP, "settings"):
        with service(engine, tmp_path_factory.mktemp("db_settings"), data_examples=2) as c:
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
