"""Many profiles on one Milvus Lite file: builds never race, one profile's failure stays its own.

Real Milvus Lite and the real model; the app in process (TestClient).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymilvus import MilvusException

from dbmeta_app.config import load_settings
from dbmeta_app.main import create_app
from dbmeta_app.search.milvus_index import DocumentIndex

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DDL = """
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT, segment TEXT);
CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                     total REAL, placed_at TEXT);
CREATE TABLE tickets (ticket_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                      priority TEXT, status TEXT);
"""
EXAMPLES = """
examples:
  - id: open-tickets
    request: open support tickets by priority
    response: SELECT priority, count(*) FROM tickets WHERE status = 'open' GROUP BY priority
  - id: big-orders
    request: the largest orders
    response: SELECT * FROM orders ORDER BY total DESC LIMIT 10
"""
ASK = {"user_request": "open support tickets by priority", "items": ["db_struct", "query_examples"]}


def _profiles(root: Path, names: list[str]) -> Path:
    (root / "examples.yml").write_text(EXAMPLES)
    lines = ["profiles:"]
    for name in names:
        db = root / f"{name}.db"
        with sqlite3.connect(db) as conn:
            conn.executescript(DDL)
        lines += [f"  {name}:", f"    database_url: sqlite:///{db}", "    examples_file: examples.yml"]
    (root / "profiles.yml").write_text("\n".join(lines) + "\n")
    return root / "profiles.yml"


def _app(root: Path, names: list[str]) -> TestClient:
    settings = load_settings(
        data_dir=root / "data",
        profiles_file=_profiles(root, names),
        default_profile=names[0],
        redis_cache_enabled=False,
        search_backend="milvus",
        schema_check_interval=0,
    )
    return TestClient(create_app(settings))


def _wait_ready(client: TestClient, timeout: float) -> float:
    started = time.monotonic()
    while (r := client.get("/readyz")).status_code != 200:
        assert time.monotonic() - started < timeout, r.json()["checks"].get("search", {}).get("reason")
        time.sleep(0.5)
    return time.monotonic() - started


def _not_degraded(client: TestClient, profile: str) -> None:
    answer = client.post("/v1/prompt-items", json={**ASK, "profile": profile})
    assert answer.status_code == 200, answer.text
    schema, examples = (item["metadata"] for item in answer.json()["prompt_items"])
    assert schema["degraded"] is False and "tickets" in schema["tables"], (profile, schema)
    assert examples["degraded"] is False and examples["example_ids"][0] == "open-tickets", (profile, examples)


@pytest.mark.timeout(600)
def test_forty_profiles_started_at_once_answer_from_their_indexes_once_ready(tmp_path: Path) -> None:
    # Forty builds racing on one Milvus Lite file at start-up.
    names = [f"w{i}" for i in range(40)]
    with _app(tmp_path, names) as client:
        took = _wait_ready(client, 480)
        for name in names:
            _not_degraded(client, name)
        search = client.get("/readyz").json()["checks"]["search"]
        # every build went through the first time: no rename race, no collection dropped under a listing
        assert {n: (p["attempts"], p["error"]) for n, p in search["profiles"].items() if p["attempts"]} == {}
    print(f"{len(names)} profiles indexed and ready after {took:.1f}s")


@pytest.fixture
def failing_builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Make the first three table builds of profile 'bad' fail as Milvus Lite failed under racing DDL."""
    failures = {"left": 3}
    real = DocumentIndex.sync_groups

    def sync_groups(self: DocumentIndex, *args: Any, **kwargs: Any) -> Any:
        if "_bad_" in self.alias and self.alias.endswith("_tables") and failures["left"] > 0:
            failures["left"] -= 1
            raise MilvusException(message="No such file or directory: 'aliases.json.tmp' -> 'aliases.json'")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DocumentIndex, "sync_groups", sync_groups)
    monkeypatch.setattr("dbmeta_app.search.runtime.RETRY_DELAYS", (0.5, 1.0, 1.5), raising=False)
    monkeypatch.setattr("dbmeta_app.search.runtime.SUPERVISE_INTERVAL", 0.1, raising=False)
    yield failures


def test_a_profile_whose_build_fails_does_not_degrade_the_others_and_is_retried(
    tmp_path: Path, failing_builds: dict[str, int]
) -> None:
    with _app(tmp_path, ["good", "bad"]) as client:
        deadline = time.monotonic() + 120
        while failing_builds["left"] > 0:  # 'bad' fails (and every request for it asks for a build)
            assert time.monotonic() < deadline
            client.post("/v1/tables/search", json={"query": "open tickets", "profile": "bad"})
            time.sleep(0.05)
        for _ in range(5):
            _not_degraded(client, "good")
        _wait_ready(client, 60)  # retried after its failures, with no one asking
        state = client.get("/readyz").json()["checks"]["search"]["profiles"]
        assert state["bad"]["attempts"] == 0 and state["bad"]["state"] == "ready"
        assert state["good"]["breaker"]["times_opened"] == 0
        _not_degraded(client, "bad")


def test_readyz_names_the_failing_profile_and_why_while_it_is_retried(
    tmp_path: Path, failing_builds: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dbmeta_app.search.runtime.RETRY_DELAYS", (30.0,), raising=False)
    failing_builds["left"] = 1
    with _app(tmp_path, ["good", "bad"]) as client:
        deadline = time.monotonic() + 120
        while True:
            r = client.get("/readyz")
            bad = r.json()["checks"]["search"]["profiles"].get("bad", {})
            if bad.get("attempts"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert r.status_code == 503 and r.json()["degraded"] is True
        assert bad["state"] == "failed" and "aliases.json" in bad["error"] and 0 < bad["retry_in_s"] <= 30
        assert "profile bad" in r.json()["checks"]["search"]["reason"]
        _not_degraded(client, "good")
