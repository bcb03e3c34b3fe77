"""Preflight answers over HTTP and MCP: one shape for every outcome, `limit` for plan bombs, `busy` with
Retry-After for a flood (another profile unaffected), truncated plans, and a service that does not grow."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from dbmeta_app.api.models import PreflightErrorKind, PreflightResponse
from dbmeta_app.items.preflight import ERROR_KINDS, PREFLIGHT_KEYS
from dbmeta_app.main import create_app
from tests.conftest import free_port
from tests.preflight.test_budget import cte_chain

README = Path(__file__).resolve().parents[2] / "README.md"
# Planned for seconds (an immutable function folded on a large constant): holds a slot until the timeout.
SLOW_TO_PLAN = "SELECT 1 WHERE 'x' = length(regexp_replace(repeat('ab', {n}), '(a)(b)', '\\2\\1', 'g'))::text"


def test_the_answer_keys_are_the_same_in_the_code_the_model_and_the_readme() -> None:
    assert tuple(PreflightResponse.model_fields) == PREFLIGHT_KEYS
    assert tuple(kind.value for kind in PreflightErrorKind) == ERROR_KINDS
    text = README.read_text(encoding="utf-8")
    listed = re.search(r"Preflight answers are verdicts.*?`\{(.*?)\}`", text, flags=re.S)
    assert listed is not None
    assert tuple(re.findall(r'"(\w+)"', listed.group(1))) == PREFLIGHT_KEYS
    for kind in ERROR_KINDS:
        assert f"`{kind}`" in text


@pytest.fixture
def client(make_settings: Any, tmp_path: Path) -> Iterator[TestClient]:
    profiles = tmp_path / "profiles.yml"
    db = tmp_path / "data" / "sample_warehouse.db"
    profiles.write_text(
        "profiles:\n"
        f"  default: {{database_url: 'sqlite:///{db}'}}\n"
        f"  tiny_plans: {{database_url: 'sqlite:///{db}', preflight: {{max_plan_bytes: 1024}}}}\n"
    )
    with TestClient(create_app(make_settings())) as warm:  # materialises the sample warehouse at db
        warm.post("/v1/preflight", json={"sql": "SELECT 1"})
    with TestClient(create_app(make_settings(profiles_file=profiles))) as c:
        yield c


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT count(*) FROM orders", None),
        ("SELEC 1", "sql"),
        ("SELECT * FROM order_itemz", "sql"),
        ("SELECT * FROM orders; DELETE FROM orders", "unsafe"),
        ("SELECT load_extension('x')", "unsafe"),
        (cte_chain(18), "limit"),
        ("SELECT '" + "a" * 200_000 + "'", "limit"),
    ],
    ids=["ok", "syntax", "unknown_table", "two_statements", "denied_function", "cte_bomb", "too_long"],
)
def test_every_answer_has_every_documented_key_whatever_the_outcome(
    client: TestClient, sql: str, kind: str | None
) -> None:
    client.post("/v1/preflight", json={"sql": "SELECT 1"})  # a schema is held: refusals can name its version
    for attempt in range(2):  # the first answer, then a cached one where answers are cached
        r = client.post("/v1/preflight", json={"sql": sql})
        assert r.status_code == 200 and "retry-after" not in r.headers
        body = r.json()
        assert tuple(body) == PREFLIGHT_KEYS, (attempt, body)
        assert body["error_kind"] == kind and body["ok"] is (kind is None)
        assert body["profile"] == "default" and body["dialect"] == "sqlite" and body["schema_version"]
        assert PreflightResponse.model_validate(body).error_kind == kind
        assert (body["plan_truncated"] is None) == (body["plan"] is None)
    if kind == "sql" and "itemz" in sql:
        assert body["suggestion"] == "did you mean order_items?"


def test_sqlite_plan_bombs_are_refused_at_once_and_the_service_does_not_grow(client: TestClient) -> None:
    # The issue's case: 18 chained CTEs took 5.4 s and 1 GB in the service (SQLite plans in process).
    gc.collect()
    before = _rss_mb()
    started = time.perf_counter()
    for links in (14, 18, 22, 30):
        body = client.post("/v1/preflight", json={"sql": cte_chain(links)}).json()
        assert body["error_kind"] == "limit" and "over the limit" in body["error"]
    assert time.perf_counter() - started < 3.0
    gc.collect()
    assert _rss_mb() - before < 50


def test_a_plan_over_the_profiles_size_limit_is_truncated_with_its_totals(client: TestClient) -> None:
    sql = " UNION ALL ".join(f"SELECT order_id FROM orders WHERE status = 's{i}'" for i in range(200))
    full = client.post("/v1/preflight", json={"sql": sql}).json()
    cut = client.post("/v1/preflight", json={"sql": sql, "profile": "tiny_plans"}).json()
    assert full["ok"] and full["plan_truncated"] is False
    assert cut["ok"] and cut["plan_truncated"] is True
    assert 0 < len(cut["plan"]) < len(full["plan"]) and cut["plan"] == full["plan"][: len(cut["plan"])]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- PostgreSQL: timeouts and a flood ---------------------------------------------------------------


@pytest.fixture
def pg_profiles(pg_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    schema = f"dbm{uuid.uuid4().hex[:8]}_flood"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(f"CREATE TABLE {schema}.t (id int PRIMARY KEY, a int)")
    profiles = tmp_path / "profiles.yml"
    common = f"database_url: '{pg_url}', include_schemas: [{schema}]"
    profiles.write_text(
        "profiles:\n"
        # the slow query folds an 18 MB constant (bounded at ~110 MB): within these profiles' budget
        f"  flood: {{{common}, preflight: {{timeout_ms: 2500, concurrency: 2, queue: 2, queue_wait_ms: 300,"
        " max_constant_bytes: 200000000}}\n"
        f"  other: {{{common}, preflight: {{timeout_ms: 2500, max_constant_bytes: 200000000}}}}\n"
    )
    try:
        yield profiles, schema
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


@pytest.mark.integration
def test_a_flood_of_slow_plans_gets_busy_at_once_and_another_profile_answers_promptly(
    make_settings: Any, pg_profiles: tuple[Path, str]
) -> None:
    profiles, schema = pg_profiles
    settings = make_settings(profiles_file=profiles, default_profile="flood")
    with TestClient(create_app(settings)) as client:
        for name in ("flood", "other"):  # schemas loaded: only the EXPLAINs are measured below
            assert client.post("/v1/preflight", json={"sql": "SELECT 1", "profile": name}).json()["ok"]

        def slow(i: int) -> tuple[float, int, dict[str, Any], str | None]:
            started = time.perf_counter()
            r = client.post("/v1/preflight", json={"sql": SLOW_TO_PLAN.format(n=8_000_000 + i)})
            return time.perf_counter() - started, r.status_code, r.json(), r.headers.get("retry-after")

        with ThreadPoolExecutor(max_workers=12) as pool:
            flood = [pool.submit(slow, i) for i in range(12)]
            time.sleep(0.5)  # the flood holds both slots and fills the queue
            started = time.perf_counter()
            other = client.post(
                "/v1/preflight", json={"sql": f"SELECT count(*) FROM {schema}.t", "profile": "other"}
            )
            other_took = time.perf_counter() - started
            answers = [f.result() for f in flood]
    assert other.status_code == 200 and other.json()["ok"] is True
    assert other_took < 1.5  # measured ~0.05 s; its pool and slots are its own
    kinds = sorted(body["error_kind"] for _, _, body, _ in answers)
    assert all(status == 200 for _, status, _, _ in answers)  # no 503 from an exhausted pool
    assert kinds.count("timeout") >= 2 and kinds.count("busy") >= 6, kinds
    for took, _, body, retry_after in answers:
        assert tuple(body) == PREFLIGHT_KEYS
        if body["error_kind"] == "busy":
            assert retry_after == "3" and "preflight.concurrency" in body["error"]
            assert "queue_wait_ms" in body["error"]  # a wait that ran out is busy too, not only a full queue
            assert took < 1.5  # queue_wait_ms is 300: busy is prompt, not a wait for the pool
        else:
            assert took < 2.5 * 1.5 + 1.0  # its own timeout (a queued one also waited up to 0.3 s)


@pytest.mark.integration
async def test_mcp_answers_have_the_same_keys_and_busy_is_a_clear_result(
    make_settings: Any, pg_profiles: tuple[Path, str]
) -> None:
    profiles, schema = pg_profiles
    settings = make_settings(profiles_file=profiles, default_profile="flood", schema_check_interval=0)
    server, thread, port = await asyncio.to_thread(_serve, create_app(settings))
    try:
        async with (
            streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for sql, kind in (
                (f"SELECT count(*) FROM {schema}.t", None),
                ("SELEC 1", "sql"),
                (f"DELETE FROM {schema}.t", "unsafe"),
                (cte_chain(20), "limit"),
            ):
                result = await session.call_tool("preflight_query", {"sql": sql})
                assert not result.is_error and isinstance(result.structured_content, dict)
                assert tuple(result.structured_content) == PREFLIGHT_KEYS
                assert result.structured_content["error_kind"] == kind
            # hold both slots and the queue from plain HTTP, then ask over MCP
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                flood = [
                    asyncio.create_task(
                        http.post("/v1/preflight", json={"sql": SLOW_TO_PLAN.format(n=8_000_000 + i)})
                    )
                    for i in range(4)
                ]
                await asyncio.sleep(0.5)
                result = await session.call_tool("preflight_query", {"sql": SLOW_TO_PLAN.format(n=9_000_000)})
                await asyncio.gather(*flood)
            assert not result.is_error and isinstance(result.structured_content, dict)
            assert result.structured_content["error_kind"] == "busy"
            assert tuple(result.structured_content) == PREFLIGHT_KEYS
            text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
            assert text.startswith("Preflight BUSY")
    finally:
        server.should_exit = True
        thread.join(10)


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, port
