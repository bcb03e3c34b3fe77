"""POST /v1/preflight: verdicts for unsafe and invalid SQL, plans for valid SQL, caching, and the database untouched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbmeta_app.config import Settings
from dbmeta_app.main import create_app
from tests.conftest import free_port

VALID = "SELECT c.company_name, count(*) FROM orders o JOIN customers c ON c.customer_id = o.customer_id GROUP BY 1"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _orders(client: TestClient) -> int:
    engine = client.app.state.runtime.profile(None).engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one())


def test_a_valid_read_gets_a_plan_and_is_cached(client: TestClient) -> None:
    first = client.post("/v1/preflight", json={"sql": VALID}).json()
    assert first["ok"] is True and first["error"] is None and first["plan"]
    assert first["cached"] is False and first["dialect"] == "sqlite"
    second = client.post("/v1/preflight", json={"sql": "  " + VALID.lower() + "  "}).json()
    assert second["cached"] is True and second["plan"] == first["plan"]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("DELETE FROM orders", "unsafe"),
        ("SELECT 1; DELETE FROM orders", "unsafe"),
        ("WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x", "unsafe"),
        ("COMMIT; DELETE FROM orders", "unsafe"),
        ("EXPLAIN ANALYZE DELETE FROM orders", "unsafe"),
        ("", "sql"),
        ("SELECT load_extension('x')", "unsafe"),
        ("SELECT 1\x00; DELETE FROM orders", "unsafe"),
        ("SELECT '" + "a" * 1_000_000 + "'", "limit"),
    ],
)
def test_refused_sql_is_a_200_verdict_and_changes_nothing(client: TestClient, sql: str, kind: str) -> None:
    before = _orders(client)
    r = client.post("/v1/preflight", json={"sql": sql})
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and body["error_kind"] == kind
    assert body["error"].startswith("refused:") == (kind == "unsafe")
    assert body["cached"] is False and body["plan"] is None
    assert _orders(client) == before


def test_an_unknown_table_gets_a_did_you_mean(client: TestClient) -> None:
    body = client.post("/v1/preflight", json={"sql": "SELECT * FROM order_itemz"}).json()
    assert body["ok"] is False and body["error_kind"] == "sql"
    assert body["suggestion"] == "did you mean order_items?"


def test_sql_errors_are_cached_briefly(client: TestClient) -> None:
    client.post("/v1/preflight", json={"sql": "SELECT nope FROM orders"})
    again = client.post("/v1/preflight", json={"sql": "SELECT nope FROM orders"}).json()
    assert again["cached"] is True and again["error_kind"] == "sql"


@pytest.mark.parametrize("body", [{}, {"sql": 42}, {"sql": None}, {"sql": "SELECT 1", "profile": 7}])
def test_malformed_requests_are_422(client: TestClient, body: Any) -> None:
    assert client.post("/v1/preflight", json=body).status_code == 422


def test_unknown_profile_is_404(client: TestClient) -> None:
    assert client.post("/v1/preflight", json={"sql": "SELECT 1", "profile": "nope"}).status_code == 404


def test_database_down_is_503_and_nothing_is_cached(make_settings: Any) -> None:
    s = make_settings(database_url=f"postgresql://u:pw@127.0.0.1:{free_port()}/db")
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/preflight", json={"sql": "SELECT 1"})
        assert r.status_code == 503 and r.json()["error"] == "upstream_unavailable"
        # unsafe SQL is still refused without the database
        assert c.post("/v1/preflight", json={"sql": "DROP TABLE x"}).json()["error_kind"] == "unsafe"


@pytest.mark.integration
def test_postgres_estimates_and_profile_limits(
    make_settings: Any, pg_url: str, tmp_path: Any, unique: str
) -> None:
    schema = f"dbm{unique}_pf"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(
            f"CREATE TABLE {schema}.big AS SELECT g AS id, mod(g, 10) AS k FROM generate_series(1, 20000) g"
        )
        conn.exec_driver_sql(f"ANALYZE {schema}.big")
    profiles = tmp_path / "profiles.yml"
    profiles.write_text(
        "profiles:\n"
        f"  pg: {{database_url: '{pg_url}', include_schemas: [{schema}]}}\n"
        f"  capped: {{database_url: '{pg_url}', include_schemas: [{schema}], preflight: {{max_estimated_rows: 1000}}}}\n"
    )
    try:
        s = make_settings(profiles_file=profiles, default_profile="pg")
        with TestClient(create_app(s)) as c:
            body = c.post("/v1/preflight", json={"sql": f"SELECT * FROM {schema}.big"}).json()
            assert body["ok"] is True and body["estimated_rows"] == pytest.approx(20000, rel=0.2)
            assert body["estimated_cost"] > 0 and body["plan"][0]["Plan"]["Node Type"] == "Seq Scan"
            pct = c.post(
                "/v1/preflight", json={"sql": f"SELECT id % 3, k FROM {schema}.big WHERE k::text LIKE '1%'"}
            )
            assert pct.json()["ok"] is True, pct.json()
            capped = c.post(
                "/v1/preflight", json={"sql": f"SELECT * FROM {schema}.big", "profile": "capped"}
            ).json()
            assert capped["ok"] is False and capped["error_kind"] == "limit" and "1,000" in capped["error"]
            with engine.connect() as conn:
                assert conn.execute(sa.text(f"SELECT count(*) FROM {schema}.big")).scalar() == 20000
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()
