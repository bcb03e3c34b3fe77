"""The HTTP service on ClickHouse (chDB) and DuckDB profiles: search, schema, preflight, readiness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.config import SAMPLE_CLICKHOUSE_DIR
from dbmeta_app.main import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def clickhouse(make_settings: Any, chdb_url: str) -> Iterator[TestClient]:
    settings = make_settings(database_url=chdb_url)
    with TestClient(create_app(settings)) as client:
        yield client


def test_clickhouse_profile_serves_search_schema_and_preflight(clickhouse: TestClient) -> None:
    found = clickhouse.post(
        "/v1/tables/search", json={"query": "daily revenue by country", "top_k": 3}
    ).json()
    assert "analytics.daily_revenue" in [t["name"] for t in found["tables"]]

    item = clickhouse.post("/v1/prompt-items/schema", json={"user_request": None}).json()
    assert item["type"] == "db_struct"
    assert "# analytics.events" in item["text"]
    assert "ORDER BY (event_type, toDate(event_time), intHash32(user_id))" in item["text"]
    assert "no foreign keys declared" in item["text"]

    ok = clickhouse.post(
        "/v1/preflight",
        json={"sql": "SELECT event_type, count() FROM analytics.events GROUP BY event_type WITH TOTALS"},
    ).json()
    assert ok["ok"] is True and ok["dialect"] == "chdb" and ok["estimated_rows"] == 30_000
    assert ok["plan"]["estimate"][0]["table"] == "analytics.events"

    refused = clickhouse.post("/v1/preflight", json={"sql": "SELECT * FROM s3('https://b/x.csv')"})
    assert refused.status_code == 200
    assert refused.json()["ok"] is False and refused.json()["error_kind"] == "unsafe"

    ready = clickhouse.get("/readyz").json()
    assert ready["checks"]["database"]["ok"] is True


def test_duckdb_profile_serves_schema_and_preflight(make_settings: Any, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "w.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE events (id INTEGER, kind VARCHAR, props MAP(VARCHAR, VARCHAR))")
    conn.execute("COMMENT ON TABLE events IS 'Clickstream events'")
    conn.close()
    with TestClient(create_app(make_settings(database_url=f"duckdb:///{path}"))) as client:
        item = client.post("/v1/prompt-items/schema", json={"user_request": None}).json()
        assert "# main.events — Clickstream events" in item["text"]
        assert "props MAP(VARCHAR, VARCHAR)" in item["text"]
        ok = client.post(
            "/v1/preflight", json={"sql": "SELECT kind, count(*) FROM events GROUP BY kind"}
        ).json()
        assert ok["ok"] is True and ok["dialect"] == "duckdb"
        refused = client.post("/v1/preflight", json={"sql": "SELECT * FROM read_csv('/etc/passwd')"}).json()
        assert refused["ok"] is False and refused["error_kind"] == "unsafe"


def test_sample_warehouse_clickhouse_is_one_setting(make_settings: Any) -> None:
    settings = make_settings(sample_warehouse="clickhouse")
    profile = settings.profile(None)
    url = profile.database_url.get_secret_value()
    assert profile.sample and profile.dialect == "chdb"
    assert url == f"chdb:///{(settings.data_dir / SAMPLE_CLICKHOUSE_DIR).resolve()}"
