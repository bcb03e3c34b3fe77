"""EXPLAIN QUERY PLAN preflight on SQLite: plans, timeouts, and a provably unchanged database file."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbmeta_app.db.session import _Watchdog
from dbmeta_app.preflight.explain import _error_result, run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.suggest import suggest_names
from tests._scratch import run_child

from .test_guard import SQLITE_HOSTILE, SQLITE_LEGIT

#: The service's SQLite heap limit (db/engines.py SQLITE_HARD_HEAP_LIMIT), in MiB.
HEAP_LIMIT_MB = 256
# Files the hostile corpus would create (writefile, VACUUM INTO, ATTACH) if anything got through.
STRAY_FILES = [Path("/tmp/dbmeta_x"), Path("/tmp/dbmeta_copy.db"), Path("/tmp/dbmeta_evil.db")]


def _slow_to_plan_query(parts: int) -> str:
    """A compound of dense 64-way self-joins: SQLite needs tens of milliseconds to plan each part."""
    tables = ", ".join(f"orders t{i}" for i in range(64))
    joins = " AND ".join(
        f"t{i}.customer_id = t{j}.id" for i in range(64) for j in range(i + 1, min(64, i + 8))
    )
    return " UNION ALL ".join([f"SELECT 1 FROM {tables} WHERE {joins}"] * parts)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE sentinel (id INTEGER PRIMARY KEY, note TEXT);
            INSERT INTO sentinel VALUES (1, 'one'), (2, 'two'), (3, 'three');
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, region TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers,
                                 amount NUMERIC, status TEXT, created_at TEXT, data TEXT);
            CREATE INDEX orders_customer ON orders (customer_id);
            CREATE TABLE "odd % table" ("order total %" INTEGER, "naïve größe" TEXT);
            CREATE TABLE pages (url TEXT, file TEXT, input TEXT);
            WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < 50)
            INSERT INTO customers SELECT v, 'customer ' || v, 'eu' FROM g;
            """
        )
    conn.close()
    return path


@pytest.fixture
def engine(db_path: Path) -> Iterator[sa.Engine]:
    """One pooled connection, so before/after compare the same SQLite connection."""
    engine = sa.create_engine(f"sqlite+pysqlite:///{db_path}", pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def database_state(db_path: Path) -> dict[str, Any]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        state = {
            "sentinel": conn.execute(
                "SELECT count(*), group_concat(id || ':' || note) FROM sentinel"
            ).fetchone(),
            "objects": conn.execute("SELECT count(*) FROM sqlite_master").fetchone(),
        }
    conn.close()
    state["file_sha256"] = hashlib.sha256(db_path.read_bytes()).hexdigest()
    state["stray_files"] = [path for path in STRAY_FILES if path.exists()]
    return state


def session_state(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        state = {
            "connection": id(raw),
            "query_only": conn.exec_driver_sql("PRAGMA query_only").scalar(),
            "foreign_keys": conn.exec_driver_sql("PRAGMA foreign_keys").scalar(),
            "in_transaction": raw.in_transaction,
            "total_changes": raw.total_changes,
        }
        conn.rollback()
    return state


def test_hostile_corpus_is_refused_and_the_database_is_unchanged(db_path: Path, engine: sa.Engine) -> None:
    database_before, session_before = database_state(db_path), session_state(engine)
    accepted: list[str] = []
    for case_id, sql in SQLITE_HOSTILE:
        verdict = check_sql(sql, "sqlite")
        if verdict.ok and verdict.statement is not None:
            accepted.append(case_id)
            run_explain(engine, verdict.statement, timeout_ms=1000)
        direct = run_explain(engine, sql, timeout_ms=1000)
        assert not direct.ok and direct.error and direct.error_kind in ("unsafe", "sql", "limit"), case_id
    assert accepted == []
    assert database_state(db_path) == database_before
    assert session_state(engine) == session_before


def test_legitimate_reads_return_a_plan_without_estimates(engine: sa.Engine) -> None:
    for case_id, sql in SQLITE_LEGIT:
        verdict = check_sql(sql, "sqlite")
        assert verdict.statement is not None, case_id
        result = run_explain(engine, verdict.statement)
        assert result.ok, (case_id, result.error)
        assert isinstance(result.plan, list) and result.plan, case_id
        assert all(isinstance(step["detail"], str) for step in result.plan)
        assert (result.estimated_rows, result.estimated_cost) == (None, None)


def test_plan_names_the_index_it_would_use(engine: sa.Engine) -> None:
    result = run_explain(engine, "SELECT * FROM orders WHERE customer_id = 7")
    assert any("orders_customer" in step["detail"] for step in result.plan)


def test_session_state_is_unchanged_on_the_same_pooled_connection(engine: sa.Engine) -> None:
    before = session_state(engine)
    assert run_explain(engine, "SELECT * FROM orders").ok
    assert run_explain(engine, "SELECT * FROM no_such_table").error_kind == "sql"
    assert (
        run_explain(engine, _slow_to_plan_query(4), timeout_ms=5, max_length=200_000).error_kind == "timeout"
    )
    assert session_state(engine) == before
    assert before["query_only"] == 0


def test_query_only_that_was_already_on_stays_on(db_path: Path) -> None:
    engine = sa.create_engine(f"sqlite+pysqlite:///{db_path}", pool_size=1, max_overflow=0)

    @sa.event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")

    try:
        assert run_explain(engine, "SELECT 1").ok
        assert session_state(engine)["query_only"] == 1
    finally:
        engine.dispose()


def test_too_slow_to_plan_is_a_timeout_and_the_pool_stays_healthy(engine: sa.Engine) -> None:
    query = _slow_to_plan_query(4)
    result = run_explain(engine, query, timeout_ms=5, max_length=200_000)
    assert (result.ok, result.error_kind) == (False, "timeout"), result.error
    assert result.error is not None and "5 ms limit" in result.error
    assert run_explain(engine, "SELECT count(*) FROM orders").ok


def test_statement_over_budget_while_parsing_is_a_timeout(engine: sa.Engine) -> None:
    # Either sqlite3_interrupt() lands while the long IN list is parsed, or the overrun is reported.
    values = ", ".join(str(i) for i in range(15_000))
    result = run_explain(engine, f"SELECT * FROM orders WHERE id IN ({values})", timeout_ms=1)
    assert result.error_kind == "timeout", result.error
    assert run_explain(engine, "SELECT 1").ok


def test_watchdog_fires_once_after_its_delay() -> None:
    calls: list[float] = []
    started = time.monotonic()
    with _Watchdog(0.05, lambda: calls.append(time.monotonic() - started)) as watchdog:
        time.sleep(0.2)
    assert watchdog.fired and len(calls) == 1 and calls[0] >= 0.05


def test_watchdog_never_fires_once_exited() -> None:
    calls: list[int] = []
    with _Watchdog(0.05, lambda: calls.append(1)) as watchdog:
        pass
    time.sleep(0.15)
    assert (watchdog.fired, calls) == (False, [])


def test_watchdog_exit_waits_for_a_running_action() -> None:
    finished: list[float] = []

    def slow_action() -> None:
        time.sleep(0.2)
        finished.append(time.monotonic())

    with _Watchdog(0.01, slow_action):
        time.sleep(0.05)  # the action is now running
    exited = time.monotonic()
    assert finished and finished[0] <= exited


def test_unknown_table_is_a_sql_error_with_a_did_you_mean(engine: sa.Engine) -> None:
    result = run_explain(engine, "SELECT id FROM ordrs")
    assert (result.ok, result.error_kind) == (False, "sql")
    assert result.error == "no such table: ordrs"
    assert suggest_names(result.error, ["orders", "customers", "sentinel"], {}) == "did you mean orders?"


def test_unknown_column_is_a_sql_error_with_a_did_you_mean(engine: sa.Engine) -> None:
    verdict = check_sql("SELECT amout FROM orders", "sqlite")
    assert verdict.statement is not None
    result = run_explain(engine, verdict.statement)
    assert result.error == "no such column: amout"
    columns = {"orders": ["id", "customer_id", "amount"], "customers": ["id", "name"]}
    hint = suggest_names(result.error, list(columns), columns, referenced_tables=verdict.tables)
    assert hint == "did you mean amount (orders)?"


def test_missing_database_file_is_a_connection_error(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite+pysqlite:///{tmp_path}/missing/dir/db.sqlite")
    try:
        result = run_explain(engine, "SELECT 1")
    finally:
        engine.dispose()
    assert (result.ok, result.error_kind) == (False, "connection")
    assert result.error is not None and str(tmp_path) not in result.error


def test_a_check_runs_inside_the_read_only_transaction_and_can_refuse(engine: sa.Engine) -> None:
    seen: list[Any] = []

    def check(conn: sa.Connection) -> str | None:
        seen.append(conn.exec_driver_sql("PRAGMA query_only").scalar())
        return "reaches a routine that is not allowed"

    result = run_explain(engine, "SELECT * FROM sentinel", check=check)
    assert (result.ok, result.error_kind, result.plan) == (False, "unsafe", None)
    assert result.error == "refused: reaches a routine that is not allowed"
    assert seen == [1]
    assert run_explain(engine, "SELECT * FROM sentinel", check=lambda conn: None).ok


def test_the_database_gets_only_what_is_left_of_the_time_limit(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing, queueing and checking count against the one limit: a spent deadline never reaches the database."""
    from dbmeta_app.preflight import explain

    engine = sa.create_engine(f"sqlite:///{db_path}")
    asked: list[int] = []
    real = explain.read_only_session

    def spy(engine: sa.Engine, timeout_ms: int, **kw: Any) -> Any:
        asked.append(timeout_ms)
        return real(engine, timeout_ms, **kw)

    monkeypatch.setattr(explain, "read_only_session", spy)
    spent = run_explain(engine, "SELECT 1", timeout_ms=5000, deadline=time.monotonic() - 0.1)
    assert (spent.ok, spent.error_kind) == (False, "timeout")
    assert "spent before the database was asked" in (spent.error or "")
    assert asked == []

    left = run_explain(engine, "SELECT 1", timeout_ms=5000, deadline=time.monotonic() + 1.0)
    assert left.ok, left.error
    assert len(asked) == 1 and 50 <= asked[0] <= 1000
    engine.dispose()


def test_a_timeout_the_driver_reports_as_interrupted_still_names_the_limit() -> None:
    # sqlite3_interrupt() can land while the plan is computed: the driver says only "interrupted".
    exc = sa.exc.OperationalError("EXPLAIN QUERY PLAN …", None, sqlite3.OperationalError("interrupted"))
    result = _error_result(exc, "sqlite", 5, timed_out=True)
    assert (result.ok, result.error_kind) == (False, "timeout")
    assert result.error == "statement timed out: interrupted (the 5 ms limit)"


# --- audit B #4: the planner running out of memory is a verdict, never a 500 ------------------------------

_BOMB = r"""
import sqlite3, sys, json
from pydantic import SecretStr
from dbmeta_app.config import Profile
from dbmeta_app.db.engines import create_profile_engine
from dbmeta_app.preflight.explain import run_explain

path = sys.argv[1]
with sqlite3.connect(path) as conn:  # 3 chains of views that read the one below twice: 3 x 2^15 copies
    for j in range(3):
        conn.execute(f"CREATE VIEW b{j}_0 AS SELECT 1 AS x")
        for k in range(1, 16):
            below = f"b{j}_{k - 1}"
            conn.execute(f"CREATE VIEW b{j}_{k} AS SELECT 1 AS x WHERE 1 IN {below} AND 1 IN {below}")
    conn.execute("CREATE VIEW top AS " + " UNION ALL ".join(f"SELECT x FROM b{j}_15" for j in range(3)))
conn.close()
engine = create_profile_engine(Profile(name="p", database_url=SecretStr(f"sqlite:///{path}")), preflight=True)
result = run_explain(engine, "SELECT x FROM top", timeout_ms=60_000)  # no view check: SQLite is asked
again = run_explain(engine, "SELECT 1 AS one", timeout_ms=60_000)
# VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's size across exec (a full test run's 1.1 GB)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) // 1024
print(json.dumps({"ok": result.ok, "kind": result.error_kind, "error": result.error, "again": again.ok, "peak_mb": peak}))
"""


def test_a_planning_bomb_fails_cleanly_within_the_sqlite_heap_limit(tmp_path: Path) -> None:
    """SQLite expands 3 x 2^15 view copies (about 1 GB): under the service's heap limit that is a "limit" verdict at a bounded
    size, the next statement is planned as usual. (The child's address space is capped at 3 GB, so without
    the heap limit the test fails with a MemoryError instead of taking the machine down.)"""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3_000_000_000, 3_000_000_000))

    answer = run_child(_BOMB, str(tmp_path / "bomb.db"), preexec_fn=cap)
    assert answer["ok"] is False and answer["kind"] == "limit", answer
    assert "ran out of memory" in answer["error"], answer
    assert answer["again"] is True, answer
    assert answer["peak_mb"] < 200 + 2 * HEAP_LIMIT_MB, answer


def test_the_service_sets_a_hard_heap_limit_on_its_sqlite_connections(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from dbmeta_app.config import Profile
    from dbmeta_app.db.engines import SQLITE_HARD_HEAP_LIMIT, create_profile_engine

    assert SQLITE_HARD_HEAP_LIMIT == HEAP_LIMIT_MB * 2**20
    engine = create_profile_engine(
        Profile(name="p", database_url=SecretStr(f"sqlite:///{tmp_path / 'h.db'}"))
    )
    try:
        with engine.connect() as conn:
            limit = conn.exec_driver_sql("PRAGMA hard_heap_limit").scalar()
        assert limit is not None and 0 < limit <= SQLITE_HARD_HEAP_LIMIT
    finally:
        engine.dispose()


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("boom"), RecursionError()])
def test_any_exception_while_planning_is_a_verdict(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    from dbmeta_app.preflight import explain

    def fail(*_args: object, **_kwargs: object) -> object:
        raise error

    monkeypatch.setattr(explain, "_explain_sqlite", fail)
    result = run_explain(engine, "SELECT id FROM customers")
    assert not result.ok and result.error
    if isinstance(error, MemoryError):
        assert result.error_kind == "limit" and "ran out of memory" in result.error, result
    else:
        assert result.error_kind == "unsafe" and "boom" not in result.error, result
    assert run_explain(engine, "SELECT id FROM customers").ok is False  # still patched: still a verdict
    monkeypatch.undo()
    assert run_explain(engine, "SELECT id FROM customers").ok  # the pooled connection is usable


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("boom")])
def test_an_exception_out_of_the_explain_is_an_answer_over_http_not_a_500(
    make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    from fastapi.testclient import TestClient

    from dbmeta_app.items import preflight as items_preflight
    from dbmeta_app.main import create_app

    def fail(*_args: object, **_kwargs: object) -> object:
        raise error

    with TestClient(create_app(make_settings())) as client:
        assert client.post("/v1/preflight", json={"sql": "SELECT 1"}).status_code == 200
        monkeypatch.setattr(items_preflight, "run_explain", fail)
        response = client.post("/v1/preflight", json={"sql": "SELECT 2 AS two"})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["ok"] is False and answer["error_kind"] in ("limit", "unsafe"), answer
        if isinstance(error, MemoryError):
            assert answer["error_kind"] == "limit" and "ran out of memory" in answer["error"], answer
        # not cached: the same statement is asked again once the failure is gone
        monkeypatch.undo()
        again = client.post("/v1/preflight", json={"sql": "SELECT 2 AS two"}).json()
        assert again["ok"] is True and again["cached"] is False, again
