"""POST /v1/prompt-items/schema, health endpoints and error answers, on the sample warehouse and real services."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from redis import Redis

from dbmeta_app.config import Settings
from dbmeta_app.main import create_app
from dbmeta_app.runtime import GIL_SWITCH_INTERVAL
from dbmeta_app.schema.store import schema_cache_key
from tests.conftest import RedisProcess, free_port


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _count_statements(client: TestClient) -> list[str]:
    statements: list[str] = []
    engine = client.app.state.runtime.profile(None).engine  # type: ignore[attr-defined]
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    return statements


@pytest.mark.integration
def test_a_cached_schema_that_does_not_decode_is_read_again_not_a_500(
    settings: Settings, real_redis: Any
) -> None:
    host, port = real_redis
    settings = settings.model_copy(
        update={
            "redis_cache_enabled": True,
            "redis_host": host,
            "redis_port": port,
            "client": f"odd-{uuid.uuid4().hex}",
        }
    )
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "miss"
        runtime = c.app.state.runtime  # type: ignore[attr-defined]
        key = schema_cache_key(settings, runtime.profile(None), False)
    # what another version of the service, or a stray write, could leave under the key
    redis = Redis(host=host, port=port)
    try:
        redis.set(
            key, b'{"profile":"default","dialect":"sqlite","version":"00","fingerprint":"00","tables":7}'
        )
        with TestClient(create_app(settings)) as c:  # a new replica: nothing in its memory yet
            r = c.post("/v1/prompt-items/schema", json={})
            assert r.status_code == 200 and r.json()["metadata"]["cache"] == "miss"
            assert "# orders" in r.json()["text"]
            assert c.post("/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "hit"
    finally:
        redis.delete(key)
        redis.close()


def test_the_app_shortens_the_gil_switch_interval_so_worker_threads_cannot_stall_the_event_loop(
    settings: Settings,
) -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default
    try:
        with TestClient(create_app(settings)):
            assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)
        assert GIL_SWITCH_INTERVAL <= 0.001
    finally:
        sys.setswitchinterval(before)


def test_full_schema_without_a_request(client: TestClient) -> None:
    r = client.post("/v1/prompt-items/schema", json={})
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "db_struct"
    meta = body["metadata"]
    assert len(meta["tables"]) >= 15 and meta["filtered"] is False
    assert meta["cache"] == "miss" and len(meta["schema_version"]) == 16
    assert "# orders" in body["text"] and "→ customers.customer_id" in body["text"]
    # hidden columns of the sample descriptions never reach the prompt
    assert "password_hash" not in body["text"] and "internal_note" not in body["text"]


def test_second_request_is_a_cache_hit_that_does_not_touch_the_database(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dbmeta_app")
    first = client.post("/v1/prompt-items/schema", json={}).json()
    statements = _count_statements(client)
    second = client.post("/v1/prompt-items/schema", json={}).json()
    assert second["metadata"]["cache"] == "hit"
    assert second["text"] == first["text"]
    assert statements == []
    messages = [r.getMessage() for r in caplog.records]
    assert "Schema cache MISS for profile=default, client=default, env=local" in messages
    assert "Schema cache HIT for profile=default, client=default, env=local" in messages
    assert any(m.startswith("Schema cached for profile=default, client=default, env=local") for m in messages)


def test_explicit_tables_filter_the_cached_snapshot_and_are_never_cached(client: TestClient) -> None:
    client.post("/v1/prompt-items/schema", json={})
    cache = client.app.state.runtime.cache  # type: ignore[attr-defined]
    entries = len(cache.memory)
    r = client.post("/v1/prompt-items/schema", json={"tables": ["orders", "main.Customers", "no_such_table"]})
    body = r.json()
    assert r.status_code == 200
    assert body["metadata"]["tables"] == ["orders", "customers"]
    assert body["metadata"]["unknown_tables"] == ["no_such_table"]
    assert body["metadata"]["cache"] == "hit" and body["metadata"]["filtered"] is True
    assert "# orders" in body["text"] and "# products" not in body["text"]
    assert len(cache.memory) == entries


def test_sample_rows_on_request(client: TestClient) -> None:
    body = client.post(
        "/v1/prompt-items/schema", json={"tables": ["currencies"], "with_examples": True}
    ).json()
    assert "sample rows (CSV):" in body["text"]
    assert "USD" in body["text"]


def test_unknown_profile_is_a_clear_404(client: TestClient) -> None:
    r = client.post("/v1/prompt-items/schema", json={"profile": "nope ünï %s"})
    assert r.status_code == 404
    assert r.json()["error"] == "unknown_profile" and "nope ünï %s" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"top_k": 0},
        {"top_k": "many"},
        {"tables": "orders"},
        {"user_request": 42},
        {"profile": "x" * 1000},
        [],
    ],
)
def test_invalid_bodies_are_422_without_echoing_input(client: TestClient, body: Any) -> None:
    r = client.post("/v1/prompt-items/schema", json=body)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request"
    assert "x" * 200 not in r.text


@pytest.mark.parametrize(
    "path", ["/v1/prompt-items/schema", "/v1/prompt-items", "/v1/tables/search", "/v1/preflight"]
)
@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe{}", b"null"])
def test_malformed_bodies_are_422_naming_the_body(client: TestClient, path: str, content: bytes) -> None:
    r = client.post(path, content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert r.json()["detail"][0]["loc"][0] == "body"


def test_field_errors_name_the_field_and_the_bodies_are_documented(client: TestClient) -> None:
    r = client.post("/v1/tables/search", json={"query": "orders", "top_k": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "top_k"]
    spec = client.get("/openapi.json").json()
    wanted = {"/v1/prompt-items/schema": "user_request", "/v1/tables/search": "query", "/v1/preflight": "sql"}
    for path, field in wanted.items():
        body = spec["paths"][path]["post"]["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"]  # a named component
        assert (
            body["required"] and field in spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
        )


def test_huge_bodies_are_refused_with_a_json_413(client: TestClient) -> None:
    r = client.post("/v1/prompt-items/schema", content=b'{"user_request": "' + b"a" * 3_000_000 + b'"}')
    assert r.status_code == 413 and r.headers["x-request-id"]
    assert r.json()["error"] == "payload_too_large" and "3000020 bytes" in r.json()["detail"]


def test_huge_streamed_bodies_are_refused_with_a_json_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_request": "'
        for _ in range(50):
            yield b"a" * 65536
        yield b'"}'

    r = client.post("/v1/prompt-items/schema", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_a_request_filters_the_schema_to_the_relevant_tables(client: TestClient) -> None:
    body = client.post(
        "/v1/prompt-items/schema", json={"user_request": "open support tickets by priority", "top_k": 3}
    ).json()
    meta = body["metadata"]
    assert meta["filtered"] is True and meta["tables"][0] == "tickets" and len(meta["tables"]) <= 3
    assert set(meta["scores"]) == set(meta["tables"]) and body["score"] == max(meta["scores"].values())
    assert "# tickets" in body["text"] and "# orders" not in body["text"]
    assert meta["degraded"] is False  # keyword ranking is this app's configured backend


def test_a_request_that_matches_nothing_gets_the_whole_small_schema(client: TestClient) -> None:
    meta = client.post("/v1/prompt-items/schema", json={"user_request": "zzzz qqqq"}).json()["metadata"]
    assert meta["no_match"] is True and meta["filtered"] is False and len(meta["tables"]) >= 15


def test_health_ready_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"]["ok"] is True
    client.post("/v1/prompt-items/schema", json={})
    metrics = client.get("/metrics").text
    assert "dbmeta_cache_misses_total" in metrics and "dbmeta_introspection_seconds" in metrics
    assert "/v1/prompt-items/schema" in client.get("/openapi.json").json()["paths"]


def test_unknown_paths_and_methods_are_json_errors(client: TestClient) -> None:
    assert client.get("/v1/nope").json()["error"] == "not_found"
    assert client.get("/v1/prompt-items/schema").status_code == 405


def test_database_down_is_a_clear_503_and_not_ready(make_settings: Any) -> None:
    s = make_settings(database_url=f"postgresql://u:s3cret@127.0.0.1:{free_port()}/db")
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/prompt-items/schema", json={})
        assert r.status_code == 503
        assert r.json()["error"] == "upstream_unavailable"
        assert "s3cret" not in r.text and "127.0.0.1" not in r.text
        assert c.get("/readyz").status_code == 503


@pytest.mark.integration
def test_postgres_profile_serves_every_schema_with_hostile_identifiers(
    make_settings: Any, pg_url: str, unique: str
) -> None:
    schema = f"dbm{unique} Ödd %s"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"'.replace("%", "%%"))
        conn.exec_driver_sql(
            f'CREATE TABLE "{schema}"."Order (Lines)" (id int PRIMARY KEY, "Unit Price %" numeric)'.replace(
                "%", "%%"
            )
        )
    try:
        s = make_settings(database_url=pg_url)
        with TestClient(create_app(s)) as c:
            body = c.post("/v1/prompt-items/schema", json={"tables": [f"{schema}.Order (Lines)"]}).json()
            assert body["metadata"]["tables"] == [f"{schema}.Order (Lines)"]
            assert f'"{schema}"."Order (Lines)"' in body["text"]
            assert '"Unit Price %" numeric' in body["text"]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE'.replace("%", "%%"))
        engine.dispose()


@pytest.mark.integration
def test_redis_going_away_mid_run_still_yields_correct_answers(
    make_settings: Any, redis_process: RedisProcess, monkeypatch: Any
) -> None:
    from dbmeta_app.cache import redis_cache

    monkeypatch.setattr(redis_cache, "REDIS_RETRY_AFTER", 0.1)
    s = make_settings(redis_cache_enabled=True, redis_host="127.0.0.1", redis_port=redis_process.port)
    with TestClient(create_app(s)) as c:
        expected = c.post("/v1/prompt-items/schema", json={}).json()
        assert c.post("/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "hit"
        redis_process.stop()
        for _ in range(5):
            r = c.post("/v1/prompt-items/schema", json={})
            assert r.status_code == 200 and r.json()["text"] == expected["text"]
        stats = c.app.state.runtime.cache.stats_json()  # type: ignore[attr-defined]
        assert stats["backend"] == "memory-fallback" and stats["kinds"]["schema"]["errors"] >= 1
        redis_process.start()  # an empty Redis: the next read misses there, is recomputed and stored again
        import time

        time.sleep(0.15)
        r = c.post("/v1/prompt-items/schema", json={})
        assert r.status_code == 200 and r.json()["text"] == expected["text"]
        assert c.post("/v1/prompt-items/schema", json={}).json()["metadata"]["cache"] == "hit"
        stats = c.app.state.runtime.cache.stats_json()  # type: ignore[attr-defined]
        assert stats["backend"] == "redis", stats


def test_a_token_budget_cuts_the_ranked_schema_and_says_what_each_table_omits(client: TestClient) -> None:
    body = client.post(
        "/v1/prompt-items/schema",
        json={"user_request": "open support tickets by priority", "top_k": 5, "max_tokens": 150},
    ).json()
    budget = body["metadata"]["budget"]
    assert budget["truncated"] is True and budget["max_tokens"] == 150 and budget["estimated_tokens"] <= 150
    assert budget["estimator"] == "wordpiece-like-v1"
    first = body["metadata"]["tables"][0]
    assert first == "tickets" and "\npriority TEXT" in body["text"]  # the column the request names is shown
    assert "\nsubject TEXT" not in body["text"]  # one it does not name is left out first
    shown = budget["tables"][first]
    assert shown["omitted"] == shown["columns"] - shown["shown"] > 0
    assert f"… {shown['omitted']} more columns" in body["text"]
    assert set(budget["omitted_tables"]).isdisjoint(body["metadata"]["tables"])


def test_the_default_budget_applies_to_ranked_tables_only_and_zero_lifts_it(make_settings: Any) -> None:
    with TestClient(create_app(make_settings(prompt_max_tokens=60))) as c:
        ranked = c.post("/v1/prompt-items/schema", json={"user_request": "open support tickets"}).json()
        assert ranked["metadata"]["budget"]["truncated"] is True
        unlimited = c.post(
            "/v1/prompt-items/schema", json={"user_request": "open support tickets", "max_tokens": 0}
        ).json()
        assert "budget" not in unlimited["metadata"] and len(unlimited["text"]) > len(ranked["text"])
        named = c.post("/v1/prompt-items/schema", json={"tables": ["tickets", "orders"]}).json()
        assert "budget" not in named["metadata"] and "more columns" not in named["text"]
        cut = c.post(
            "/v1/prompt-items/schema", json={"tables": ["tickets", "orders"], "max_tokens": 40}
        ).json()
        assert cut["metadata"]["budget"]["truncated"] is True
        assert c.post("/v1/prompt-items/schema", json={"max_tokens": -1}).status_code == 422
