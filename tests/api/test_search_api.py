"""Table search through the service with the real model and Milvus Lite: hybrid retrieval, degraded paths."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dbmeta_app.main import create_app
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def _wait_ready(client: TestClient, profile: str = "default", timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get("/readyz").json()["checks"]["search"]["profiles"].get(profile, {})
        if state.get("state") == "ready" and state["examples"]["state"] == "ready":
            return dict(state)
        time.sleep(0.2)
    raise AssertionError(f"index of {profile} not ready: {state}")


@pytest.fixture(scope="module")
def search_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from dbmeta_app.config import load_settings

    data = tmp_path_factory.mktemp("search")
    settings = load_settings(
        data_dir=data, redis_cache_enabled=False, search_backend="milvus", schema_check_interval=0
    )
    with TestClient(create_app(settings)) as client:
        _wait_ready(client)
        yield client


def test_search_returns_snapshot_keys_best_first(search_client: TestClient) -> None:
    r = search_client.post(
        "/v1/tables/search", json={"query": "open support tickets and their events", "top_k": 4}
    )
    body = r.json()
    assert r.status_code == 200 and body["profile"] == "default" and body["degraded"] is False
    # a small index on Milvus Lite: both halves from the in-process mirror
    assert (body["dense"], body["lexical"]) == ("process", "process")
    names = [t["name"] for t in body["tables"]]
    assert len(names) == 4 and {"tickets", "ticket_events"} <= set(names)
    scores = [t["score"] for t in body["tables"]]
    assert scores == sorted(scores, reverse=True)
    keys = set(search_client.post("/v1/prompt-items/schema", json={}).json()["metadata"]["tables"])
    assert set(names) <= keys  # exactly the snapshot's keys, so filtering never comes out empty


def test_the_schema_item_for_a_request_is_filtered_to_the_retrieved_tables(search_client: TestClient) -> None:
    body = search_client.post(
        "/v1/prompt-items/schema", json={"user_request": "salary of each employee by department", "top_k": 5}
    ).json()
    meta = body["metadata"]
    assert meta["filtered"] is True and meta["degraded"] is False and len(meta["tables"]) <= 5
    assert {"employees", "salaries"} <= set(meta["tables"])
    assert all(f"# {t}" in body["text"] for t in meta["tables"])
    assert set(meta["scores"]) == set(meta["tables"])


def test_a_repeated_request_is_embedded_once(search_client: TestClient) -> None:
    stats = search_client.app.state.runtime.cache.stats  # type: ignore[attr-defined]
    before = stats.of("embedding").misses
    answers = [
        search_client.post("/v1/tables/search", json={"query": "warehouse stock of each product"}).json()
        for _ in range(3)
    ]
    assert stats.of("embedding").misses == before + 1
    assert answers[0] == answers[1] == answers[2] and answers[0]["tables"][0]["name"] == "stock_levels"


def test_one_call_embeds_the_request_once_for_schema_and_examples(
    search_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = search_client.app.state.runtime.search.embedder  # type: ignore[attr-defined]
    encoded: list[str] = []
    real = embedder.encode
    monkeypatch.setattr(embedder, "encode", lambda texts: encoded.extend(texts) or real(texts))
    body = search_client.post(
        "/v1/prompt-items", json={"user_request": "late invoice payments by customer"}
    ).json()
    # the schema search and the example search wait for one embedding of the request
    assert encoded == ["late invoice payments by customer"]
    meta = body["prompt_items"][1]["metadata"]
    assert meta["retrieval"] == "milvus" and meta["degraded"] is False  # from the example collection
    examples = meta["example_ids"]
    assert examples and any("pay" in e or "invoice" in e for e in examples)


def _change_schema(client: TestClient, ddl: str) -> None:
    """Run DDL on the sample database and let the drift check notice it (it schedules the re-index)."""
    from dbmeta_app.runtime import check_profile

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    url = runtime.profile(None).profile.database_url.get_secret_value()
    with sqlite3.connect(Path(url.split(":///", 1)[1])) as conn:
        conn.execute(ddl)
    client.portal.call(check_profile, runtime, runtime.profile(None))  # type: ignore[union-attr]


def test_a_schema_change_reindexes_only_the_changed_table(search_client: TestClient) -> None:
    _change_schema(search_client, "ALTER TABLE suppliers ADD COLUMN sustainability_rating TEXT")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = search_client.get("/readyz").json()["checks"]["search"]["profiles"]["default"]
        if state["last_sync"] and state["last_sync"]["updated"] == 1:
            break
        time.sleep(0.2)
    assert state["last_sync"]["updated"] == 1 and state["last_sync"]["added"] == 0
    assert state["last_sync"]["unchanged"] >= 20
    hits = search_client.post(
        "/v1/tables/search", json={"query": "supplier sustainability rating", "top_k": 3}
    ).json()
    assert hits["tables"][0]["name"] == "suppliers"


def test_an_example_that_no_longer_fits_is_flagged_at_index_time_and_never_retrieved(
    search_client: TestClient,
) -> None:
    ask = {"user_request": "payments received per payment method", "items": ["query_examples"]}
    before = search_client.post("/v1/prompt-items", json=ask).json()["prompt_items"][0]["metadata"]
    assert before["retrieval"] == "milvus" and before["example_ids"][0] == "payments-by-method"
    _change_schema(search_client, "ALTER TABLE payments RENAME COLUMN method TO payment_method")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        examples = _wait_ready(search_client)["examples"]
        if "payments-by-method" in (examples["last_sync"] or {}).get("stale", []):
            break
        time.sleep(0.2)
    assert examples["last_sync"]["stale"] == ["payments-by-method"]
    assert examples["last_sync"]["embedded"] == 1  # only the example that moved
    after = search_client.post("/v1/prompt-items", json=ask).json()["prompt_items"][0]["metadata"]
    assert after["retrieval"] == "milvus" and after["degraded"] is False
    assert "payments-by-method" not in after["example_ids"] and after["example_ids"]
    assert after["stale_reasons"] == {"payments-by-method": "unknown columns: method"}


def test_milvus_unavailable_gives_a_degraded_but_correct_answer(make_settings: Any) -> None:
    settings = make_settings(search_backend="milvus", milvus_uri=f"http://127.0.0.1:{free_port()}")
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/tables/search", json={"query": "open support tickets by priority", "top_k": 3})
        assert r.status_code == 200
        body = r.json()
        assert body["degraded"] is True and "unavailable" in body["reason"]
        assert (body["dense"], body["lexical"]) == (None, "process")  # keyword ranking, labelled
        assert body["tables"][0]["name"] == "tickets"
        item = client.post("/v1/prompt-items/schema", json={"user_request": "open support tickets"}).json()
        assert item["metadata"]["degraded"] is True and "tickets" in item["metadata"]["tables"]
        ask = {"user_request": "open support tickets per agent", "items": ["query_examples"]}
        examples = client.post("/v1/prompt-items", json=ask).json()["prompt_items"][0]["metadata"]
        assert examples["degraded"] is True and examples["retrieval"] == "keyword"
        assert "agent-workload" in examples["example_ids"]
        # Answers are degraded: not ready. A load balancer's probe (allow_degraded) keeps the pod serving
        # once start-up has given Milvus its first attempts: degraded answers beat none.
        strict = client.get("/readyz")
        assert strict.status_code == 503 and strict.json()["degraded"] is True
        assert "unavailable" in strict.json()["checks"]["search"]["reason"]
        deadline = time.monotonic() + 20
        while (lenient := client.get("/readyz?allow_degraded=true")).status_code != 200:
            assert time.monotonic() < deadline, lenient.json()
            time.sleep(0.2)
        assert lenient.json()["degraded"] is True and lenient.json()["checks"]["search"]["warming"] is False


def test_index_requests_need_a_token_and_stream_progress_then_the_report(search_client: TestClient) -> None:
    runtime = search_client.app.state.runtime  # type: ignore[attr-defined]
    record = json.loads((runtime.settings.data_dir / "milvus.db.owner.json").read_text())
    missing = search_client.post("/v1/admin/index", json={})
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert "x-request-id" in missing.headers
    wrong = search_client.post("/v1/admin/index", json={}, headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    local = {"authorization": f"Bearer {record['token']}"}  # what the CLI reads beside the index
    unknown = search_client.post("/v1/admin/index", json={"profile": "nosuch"}, headers=local)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_profile"

    r = search_client.post("/v1/admin/index", json={"profile": "default", "rebuild": True}, headers=local)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    events = [json.loads(line) for line in r.text.splitlines()]
    assert [e["event"] for e in events[:1] + events[-1:]] == ["start", "done"]
    progress = [(e["done"], e["total"]) for e in events if e["event"] == "progress"]
    assert len(progress) >= 2 and progress[-1][0] == progress[-1][1] and progress == sorted(progress)
    report = events[-1]["report"]
    assert report["tables"]["updated"] == 24 and report["tables"]["rebuilt"] is True
    assert report["examples"]["updated"] == 37 and report["examples_error"] is None
    hits = search_client.post("/v1/tables/search", json={"query": "open support tickets", "top_k": 1}).json()
    assert hits["degraded"] is False and hits["tables"][0]["name"] == "tickets"


def test_an_index_request_to_a_keyword_server_is_a_clear_409(make_settings: Any) -> None:
    with TestClient(create_app(make_settings())) as client:
        token = client.app.state.runtime.anchor.record.token  # type: ignore[attr-defined]
        r = client.post("/v1/admin/index", json={}, headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 409 and r.json()["error"] == "no_index" and "keyword" in r.json()["detail"]
