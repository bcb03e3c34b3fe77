"""Admin endpoints need the token; invalidate, warm and drift checks do what they say."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.main import create_app

TOKEN = "t0k3n-for-tests-only-3c5e9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(make_settings: Any) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(admin_token=TOKEN, schema_check_interval=0))) as c:
        yield c


def _sample_db(client: TestClient) -> Path:
    url = client.app.state.runtime.profile(None).profile.database_url.get_secret_value()  # type: ignore[attr-defined]
    return Path(url.split(":///", 1)[1])


@pytest.mark.parametrize("path", ["/v1/admin/cache/warm", "/v1/admin/schema/check"])
def test_admin_endpoints_are_off_without_a_configured_token(make_settings: Any, path: str) -> None:
    with TestClient(create_app(make_settings())) as c:
        r = c.post(path, json={}, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"] == "admin_disabled"


@pytest.mark.parametrize("path", ["/v1/admin/cache/invalidate", "/v1/admin/index"])
def test_index_and_invalidate_without_a_configured_token_take_only_the_local_owner_token(
    make_settings: Any, path: str
) -> None:
    with TestClient(create_app(make_settings())) as c:
        assert c.post(path, json={}).status_code == 401
        r = c.post(path, json={}, headers=AUTH)  # not the owner's token (none here: no index owner)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    "path", ["/v1/admin/cache/invalidate", "/v1/admin/cache/warm", "/v1/admin/schema/check"]
)
def test_missing_token_is_401_and_wrong_token_is_403(client: TestClient, path: str) -> None:
    missing = client.post(path, json={})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert client.post(path, json={}, headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.post(path, json={}, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post(path, json={}, headers=AUTH).status_code == 200


def test_cache_stats_are_public_json(client: TestClient) -> None:
    client.post("/v1/prompt-items/schema", json={})
    stats = client.get("/v1/cache/stats").json()
    assert stats["backend"] == "memory" and stats["kinds"]["schema"]["misses"] >= 1


def test_warm_then_invalidate_the_schema_of_a_profile(client: TestClient) -> None:
    warmed = client.post("/v1/admin/cache/warm", json={"profile": "default"}, headers=AUTH).json()
    assert warmed["profiles"]["default"]["cache"] == "miss" and warmed["profiles"]["default"]["tables"] >= 15
    assert client.post("/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "hit"
    dropped = client.post("/v1/admin/cache/invalidate", json={"kind": "schema"}, headers=AUTH).json()
    assert dropped["dropped"]["default/schema"] >= 1
    assert client.post("/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "miss"


def test_invalidating_explain_results_forces_a_new_explain(client: TestClient) -> None:
    sql = {"sql": "SELECT count(*) FROM orders"}
    client.post("/v1/preflight", json=sql)
    assert client.post("/v1/preflight", json=sql).json()["cached"] is True
    client.post("/v1/admin/cache/invalidate", json={"profile": "default", "kind": "explain"}, headers=AUTH)
    assert client.post("/v1/preflight", json=sql).json()["cached"] is False


def test_invalid_admin_bodies_are_422_and_unknown_profiles_404(client: TestClient) -> None:
    assert (
        client.post("/v1/admin/cache/invalidate", json={"kind": "everything"}, headers=AUTH).status_code
        == 422
    )
    assert client.post("/v1/admin/cache/warm", json={"profile": "nope"}, headers=AUTH).status_code == 404


def test_a_ddl_change_is_detected_on_demand_and_yields_a_new_version(client: TestClient) -> None:
    before = client.post("/v1/prompt-items/schema", json={"tables": ["orders"]}).json()
    sql = {"sql": "SELECT order_id FROM orders"}
    client.post("/v1/preflight", json=sql)
    unchanged = client.post("/v1/admin/schema/check", json={}, headers=AUTH).json()["profiles"][0]
    assert unchanged["status"] == "unchanged"
    with sqlite3.connect(_sample_db(client)) as conn:
        conn.execute("ALTER TABLE orders ADD COLUMN gift_wrap BOOLEAN")
    result = client.post("/v1/admin/schema/check", json={}, headers=AUTH).json()["profiles"][0]
    assert result["status"] == "changed" and result["changed_tables"] == ["orders"]
    after = client.post("/v1/prompt-items/schema", json={"tables": ["orders"]}).json()
    assert (
        after["metadata"]["schema_version"]
        == result["schema_version"]
        != before["metadata"]["schema_version"]
    )
    assert "gift_wrap BOOLEAN" in after["text"] and after["metadata"]["cache"] == "hit"
    # preflight results belong to a schema version: the old verdict is not reused
    assert client.post("/v1/preflight", json=sql).json()["cached"] is False


def test_a_fingerprint_change_without_a_schema_change_is_unchanged_and_read_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbmeta_app.schema import store

    reads = []
    real = store._introspect_blocking
    monkeypatch.setattr(store, "_introspect_blocking", lambda *a: reads.append(1) or real(*a))
    before = client.post("/v1/prompt-items/schema", json={"tables": ["orders"]}).json()["metadata"]
    with sqlite3.connect(_sample_db(client)) as conn:  # bumps SQLite's schema_version twice, changes nothing
        conn.execute("CREATE TABLE scratch (a INTEGER)")
        conn.execute("DROP TABLE scratch")
    for _ in range(2):
        result = client.post("/v1/admin/schema/check", json={}, headers=AUTH).json()["profiles"][0]
        assert result == {
            "profile": "default",
            "status": "unchanged",
            "schema_version": before["schema_version"],
        }
    assert len(reads) == 2  # the first request's, then one re-read; the new fingerprint was kept
    after = client.post("/v1/prompt-items/schema", json={"tables": ["orders"]}).json()["metadata"]
    assert after["schema_version"] == before["schema_version"] and after["cache"] == "hit"


def test_the_drift_watcher_notices_a_change_by_itself(make_settings: Any) -> None:
    with TestClient(create_app(make_settings(schema_check_interval=0.2))) as c:
        first = c.post("/v1/prompt-items/schema", json={}).json()["metadata"]["schema_version"]
        with sqlite3.connect(_sample_db(c)) as conn:
            conn.execute("CREATE TABLE loyalty_points (customer_id INTEGER PRIMARY KEY, points INTEGER)")
        deadline = time.monotonic() + 5
        meta = first
        while time.monotonic() < deadline:
            body = c.post("/v1/prompt-items/schema", json={}).json()
            meta = body["metadata"]["schema_version"]
            if meta != first:
                break
            time.sleep(0.1)
        assert meta != first and "# loyalty_points" in body["text"]


def test_schema_version_is_the_schemas_alone_with_or_without_sample_rows(make_settings: Any) -> None:
    """Sample rows are data: asking for them, or a change of the data they show, is no schema change."""
    settings = make_settings(admin_token=TOKEN, schema_check_interval=0, data_examples=2)
    with TestClient(create_app(settings)) as client:

        def versions() -> set[str]:
            plain = client.post("/v1/prompt-items/schema", json={"tables": ["orders"]}).json()
            sampled = client.post(
                "/v1/prompt-items/schema", json={"tables": ["orders"], "with_examples": True}
            ).json()
            assert "sample rows" in sampled["text"] and "sample rows" not in plain["text"]
            preflight = client.post("/v1/preflight", json={"sql": "SELECT 1 FROM orders"}).json()
            return {plain["metadata"]["schema_version"], sampled["metadata"]["schema_version"]} | {
                preflight["schema_version"]
            }

        before = versions()
        assert len(before) == 1, before
        with sqlite3.connect(_sample_db(client)) as conn:  # a change of data only
            conn.execute("UPDATE orders SET required_date = '2031-01-01'")
        client.post("/v1/admin/cache/invalidate", json={}, headers=AUTH)
        assert versions() == before
