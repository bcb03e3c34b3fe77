"""EXPLAIN preflight on PostgreSQL: plans, estimates, warnings, timeouts, and a provably unchanged database."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight.budget import Budget
from dbmeta_app.preflight.explain import (
    ExplainResult,
    apply_limits,
    postgres_estimates,
    postgres_warnings,
    run_explain,
)
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.suggest import suggest_names
from tests.conftest import free_port

from .test_guard import PG_HOSTILE, PG_LEGIT

PG_URL = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LOCK_KEY = 734501

# A plan-time constant fold (immutable functions on constants) that takes seconds of CPU.
SLOW_TO_PLAN = (
    "SELECT id FROM sentinel WHERE note = "
    "length(regexp_replace(repeat('ab', 4000000), '(a)(b)', '\\2\\1', 'g'))::text"
)
# It folds an 8 MB constant (bounded at 48 MB): allowed here, where the timeout is what is tested.
ROOMY = Budget(max_constant_bytes=100_000_000)


# --- pure: plan fixtures ---------------------------------------------------------------------------


def _scan(alias: str, rows: int, **extra: Any) -> dict[str, Any]:
    return {"Node Type": "Seq Scan", "Relation Name": alias, "Alias": alias, "Plan Rows": rows, **extra}


def _plan(top: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"Plan": top}]


def test_estimates_come_from_the_top_plan_node() -> None:
    plan = _plan({"Node Type": "Limit", "Plan Rows": 10, "Total Cost": 12.5, "Plans": [_scan("o", 5000)]})
    assert postgres_estimates(plan) == (10, 12.5)


def test_estimates_of_an_unrecognised_plan_are_none() -> None:
    assert postgres_estimates("not a plan") == (None, None)
    assert postgres_estimates([]) == (None, None)


def test_nested_loop_without_any_condition_is_a_cartesian_product() -> None:
    plan = _plan(
        {
            "Node Type": "Nested Loop",
            "Plan Rows": 500_000,
            "Plans": [
                _scan("a", 1000),
                {"Node Type": "Materialize", "Plan Rows": 500, "Plans": [_scan("b", 500)]},
            ],
        }
    )
    warnings = postgres_warnings(plan)
    assert any("cartesian" in warning and "a" in warning and "b" in warning for warning in warnings)


def test_parameterised_nested_loop_is_not_a_cartesian_product() -> None:
    inner = {
        "Node Type": "Index Scan",
        "Relation Name": "customers",
        "Alias": "c",
        "Plan Rows": 2,
        "Index Cond": "(id = o.customer_id)",
    }
    plan = _plan({"Node Type": "Nested Loop", "Plan Rows": 1000, "Plans": [_scan("o", 1000), inner]})
    assert not any("cartesian" in warning for warning in postgres_warnings(plan))


def test_memoized_nested_loop_keyed_on_the_outer_side_is_not_a_cartesian_product() -> None:
    inner = {
        "Node Type": "Memoize",
        "Plan Rows": 2,
        "Cache Key": "o.customer_id",
        "Plans": [
            {"Node Type": "Index Scan", "Alias": "c", "Plan Rows": 2, "Index Cond": "(id = o.customer_id)"}
        ],
    }
    plan = _plan({"Node Type": "Nested Loop", "Plan Rows": 1000, "Plans": [_scan("o", 1000), inner]})
    assert postgres_warnings(plan) == ()


def test_nested_loop_with_join_filter_is_not_a_cartesian_product() -> None:
    plan = _plan(
        {
            "Node Type": "Nested Loop",
            "Plan Rows": 100,
            "Join Filter": "(a.x < b.y)",
            "Plans": [_scan("a", 1000), _scan("b", 500)],
        }
    )
    assert postgres_warnings(plan) == ()


def test_cross_join_with_a_single_row_side_is_not_flagged() -> None:
    plan = _plan(
        {"Node Type": "Nested Loop", "Plan Rows": 1000, "Plans": [_scan("a", 1000), _scan("one", 1)]}
    )
    assert postgres_warnings(plan) == ()


def test_alias_that_is_a_suffix_of_another_name_does_not_hide_a_cartesian_product() -> None:
    plan = _plan(
        {
            "Node Type": "Nested Loop",
            "Plan Rows": 100_000,
            "Plans": [_scan("a", 1000), _scan("b", 100, Filter="(b.ida > 1)")],
        }
    )
    assert any("cartesian" in warning for warning in postgres_warnings(plan))


def test_seq_scan_of_a_large_table_is_flagged_at_the_threshold() -> None:
    plan = _plan(
        {"Node Type": "Aggregate", "Plan Rows": 1, "Plans": [_scan("events", 250_000, Schema="app")]}
    )
    assert postgres_warnings(plan) == ("full scan of app.events (about 250,000 rows estimated)",)
    assert postgres_warnings(plan, large_table_rows=300_000) == ()


def _ok(rows: int | None, cost: float | None) -> ExplainResult:
    return ExplainResult(
        ok=True, error=None, error_kind=None, plan=[], estimated_rows=rows, estimated_cost=cost
    )


def test_apply_limits_keeps_a_plan_within_limits() -> None:
    result = _ok(100, 50.0)
    assert apply_limits(result, max_rows=100, max_cost=50.0) is result
    assert apply_limits(result, max_rows=None, max_cost=None) is result


def test_apply_limits_rejects_too_many_rows_with_a_reason() -> None:
    limited = apply_limits(_ok(2_000_000, 10.0), max_rows=1_000_000, max_cost=None)
    assert (limited.ok, limited.error_kind) == (False, "limit")
    # README: a limit verdict names the measure, its value, the limit and the setting
    assert limited.error == (
        "estimated 2,000,000 rows exceeds the limit of 1,000,000 (the profile's preflight.max_estimated_rows)"
    )
    assert limited.plan == [] and limited.estimated_rows == 2_000_000


def test_apply_limits_rejects_too_high_a_cost() -> None:
    limited = apply_limits(_ok(1, 1e7), max_rows=None, max_cost=1e6)
    assert limited.error_kind == "limit"
    assert (
        limited.error
        == "estimated cost 10,000,000.00 exceeds the limit of 1,000,000.00 (the profile's preflight.max_cost)"
    )


def test_apply_limits_leaves_failures_alone() -> None:
    failed = ExplainResult(
        ok=False, error="x", error_kind="sql", plan=None, estimated_rows=None, estimated_cost=None
    )
    assert apply_limits(failed, max_rows=1, max_cost=1.0) is failed


# --- integration: a throwaway schema on the real server --------------------------------------------


@pytest.fixture(scope="module")
def admin() -> Iterator[sa.Engine]:
    # no_parameters: the DDL below uses % as an operator, which psycopg would read as a placeholder.
    engine = sa.create_engine(PG_URL, execution_options={"no_parameters": True})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({type(exc.orig).__name__})")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def schema(admin: sa.Engine) -> Iterator[str]:
    name = f"dbmeta_guard_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        conn.exec_driver_sql(f"SET LOCAL search_path = {name}")
        for ddl in (
            "CREATE TABLE sentinel (id int PRIMARY KEY, note text)",
            "INSERT INTO sentinel VALUES (1, 'one'), (2, 'two'), (3, 'three')",
            "CREATE SEQUENCE sentinel_seq",
            "CREATE TABLE customers (id int PRIMARY KEY, name text, region text)",
            "INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END "
            "FROM generate_series(1, 200) g",
            "CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, amount numeric, "
            "status text, created_at timestamptz, data jsonb)",
            "INSERT INTO orders SELECT g, 1 + g % 200, g % 97, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'open' END, "
            "now() - g * interval '1 hour', jsonb_build_object('k', g) FROM generate_series(1, 5000) g",
            "CREATE INDEX ON orders (customer_id)",
            'CREATE TABLE "odd % table" ("order total %" int, "naïve größe" text)',
            "CREATE TABLE pages (url text, file text, input text)",
            # Writers hidden behind IMMUTABLE wrappers: the planner folds them while planning, which is
            # exactly what only the read-only transaction can stop.
            "CREATE FUNCTION write_inner() RETURNS int LANGUAGE plpgsql VOLATILE AS "
            "$$BEGIN INSERT INTO sentinel VALUES (100, 'written'); RETURN 1; END$$",
            "CREATE FUNCTION sentinel_write() RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
            "$$BEGIN PERFORM write_inner(); RETURN 1; END$$",
            "CREATE FUNCTION bump_inner() RETURNS int LANGUAGE sql VOLATILE AS $$SELECT nextval('sentinel_seq')::int$$",
            "CREATE FUNCTION sentinel_bump() RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
            "$$BEGIN PERFORM bump_inner(); RETURN 1; END$$",
            f"CREATE FUNCTION grab_lock() RETURNS int LANGUAGE plpgsql STABLE AS "
            f"$$BEGIN PERFORM pg_advisory_lock({LOCK_KEY}); RETURN 1; END$$",
            "ANALYZE",
        ):
            conn.exec_driver_sql(ddl)
    yield name
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def engine(schema: str) -> Iterator[sa.Engine]:
    """One pooled connection with its own session settings, so before/after compare the same session."""
    options = f"-c search_path={schema} -c statement_timeout=123456 -c lock_timeout=654321"
    engine = sa.create_engine(PG_URL, pool_size=1, max_overflow=0, connect_args={"options": options})
    yield engine
    engine.dispose()


def database_state(admin: sa.Engine, schema: str) -> dict[str, Any]:
    with admin.connect() as conn:

        def one(sql: str) -> tuple[Any, ...]:
            return tuple(conn.exec_driver_sql(sql).one())

        return {
            "sentinel": one(
                f"SELECT count(*), string_agg(id || ':' || note, ',' ORDER BY id) FROM {schema}.sentinel"
            ),
            "objects": one(
                f"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = '{schema}'"
            ),
            "functions": one(
                f"SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE nspname = '{schema}'"
            ),
            "sequence": one(f"SELECT last_value, is_called FROM {schema}.sentinel_seq"),
            "advisory_locks": one(
                f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid IN (42, {LOCK_KEY})"
            ),
            "prepared_xacts": one("SELECT count(*) FROM pg_prepared_xacts"),
        }


def session_state(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        state = {
            setting: conn.exec_driver_sql(f"SHOW {setting}").scalar()
            for setting in (
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "transaction_read_only",
                "default_transaction_read_only",
                "search_path",
                "standard_conforming_strings",
            )
        }
        state["pid"] = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        state["advisory_locks"] = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).scalar()
        conn.rollback()
    return state


@pytest.mark.integration
def test_hostile_corpus_is_refused_and_the_database_is_unchanged(
    admin: sa.Engine, schema: str, engine: sa.Engine
) -> None:
    database_before, session_before = database_state(admin, schema), session_state(engine)
    accepted: list[str] = []
    for case_id, sql in PG_HOSTILE:
        verdict = check_sql(sql, "postgresql")
        if verdict.ok and verdict.statement is not None:
            accepted.append(case_id)
            run_explain(engine, verdict.statement, timeout_ms=1000)
        # The executor re-checks, so raw hostile SQL handed straight to it is refused too.
        direct = run_explain(engine, sql, timeout_ms=1000)
        assert not direct.ok and direct.error and direct.error_kind in ("unsafe", "sql", "limit"), case_id
    assert accepted == []
    assert database_state(admin, schema) == database_before
    assert session_state(engine) == session_before


@pytest.mark.integration
def test_legitimate_reads_return_a_plan_with_estimates(engine: sa.Engine) -> None:
    for case_id, sql in PG_LEGIT:
        verdict = check_sql(sql, "postgresql")
        assert verdict.statement is not None, case_id
        result = run_explain(engine, verdict.statement)
        assert result.ok, (case_id, result.error)
        assert isinstance(result.plan, list) and "Plan" in result.plan[0]
        assert isinstance(result.estimated_rows, int) and result.estimated_rows >= 0, case_id
        assert isinstance(result.estimated_cost, float), case_id


@pytest.mark.integration
def test_session_settings_are_unchanged_on_the_same_pooled_connection(engine: sa.Engine) -> None:
    before = session_state(engine)
    assert run_explain(engine, "SELECT * FROM orders WHERE amount > 1").ok
    assert run_explain(engine, "SELECT * FROM no_such_table").error_kind == "sql"
    assert run_explain(engine, SLOW_TO_PLAN, timeout_ms=100, budget=ROOMY).error_kind == "timeout"
    after = session_state(engine)
    assert after == before
    assert after["statement_timeout"] == "123456ms" and after["transaction_read_only"] == "off"


@pytest.mark.integration
def test_slow_to_plan_query_is_stopped_by_the_timeout_and_the_pool_stays_healthy(engine: sa.Engine) -> None:
    started = time.perf_counter()
    result = run_explain(engine, SLOW_TO_PLAN, timeout_ms=200, budget=ROOMY)
    elapsed = time.perf_counter() - started
    assert (result.ok, result.error_kind) == (False, "timeout"), result.error
    assert elapsed < 2.0
    assert result.error is not None and "statement timeout" in result.error
    assert run_explain(engine, "SELECT count(*) FROM orders").ok


@pytest.mark.integration
def test_waiting_for_a_lock_is_bounded_by_the_timeout(
    admin: sa.Engine, schema: str, engine: sa.Engine
) -> None:
    with admin.connect() as holder:
        holder.exec_driver_sql(f"LOCK TABLE {schema}.sentinel IN ACCESS EXCLUSIVE MODE")
        started = time.perf_counter()
        result = run_explain(engine, "SELECT * FROM sentinel", timeout_ms=300)
        elapsed = time.perf_counter() - started
        holder.rollback()
    assert result.error_kind == "timeout", result.error
    assert elapsed < 2.0
    assert run_explain(engine, "SELECT * FROM sentinel").ok


@pytest.mark.integration
def test_write_folded_in_at_plan_time_is_blocked_by_the_read_only_transaction(
    admin: sa.Engine, schema: str, engine: sa.Engine
) -> None:
    before = database_state(admin, schema)
    for sql in (
        "SELECT * FROM sentinel WHERE id = sentinel_write()",
        "SELECT * FROM sentinel WHERE id = sentinel_bump()",
    ):
        verdict = check_sql(sql, "postgresql")
        assert verdict.ok and verdict.statement is not None  # unknown user functions pass the guard
        result = run_explain(engine, verdict.statement)
        assert result.error_kind == "sql"
        assert result.error is not None and "read-only transaction" in result.error
    assert database_state(admin, schema) == before


@pytest.mark.integration
def test_advisory_lock_taken_while_planning_is_released_before_pooling(
    admin: sa.Engine, schema: str, engine: sa.Engine
) -> None:
    # Prove the premise: a bare EXPLAIN really does take the lock while planning, and keeps it.
    with admin.connect() as conn:
        conn.exec_driver_sql(f"EXPLAIN SELECT * FROM {schema}.sentinel WHERE id = {schema}.grab_lock()")
        conn.rollback()
        held = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).scalar()
        conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
        conn.rollback()
    assert held == 1
    result = run_explain(engine, "SELECT * FROM sentinel WHERE id = grab_lock()")
    assert result.ok, result.error
    assert session_state(engine)["advisory_locks"] == 0
    assert database_state(admin, schema)["advisory_locks"] == (0,)


@pytest.mark.integration
def test_autocommit_engine_still_explains_inside_a_read_only_transaction(
    admin: sa.Engine, schema: str
) -> None:
    options = f"-c search_path={schema}"
    engine = sa.create_engine(
        PG_URL, pool_size=1, max_overflow=0, isolation_level="AUTOCOMMIT", connect_args={"options": options}
    )
    try:
        before = database_state(admin, schema)
        blocked = run_explain(engine, "SELECT * FROM sentinel WHERE id = sentinel_write()")
        assert blocked.error is not None and "read-only transaction" in blocked.error
        assert run_explain(engine, "SELECT * FROM orders").ok
        pid = session_state(engine)["pid"]
        assert database_state(admin, schema) == before
        with admin.connect() as conn:
            state = conn.exec_driver_sql(
                f"SELECT state FROM pg_stat_activity WHERE pid = {int(pid)}"
            ).scalar()
        assert state == "idle"
    finally:
        engine.dispose()


@pytest.mark.integration
def test_unknown_table_is_a_sql_error_with_a_did_you_mean(schema: str, engine: sa.Engine) -> None:
    result = run_explain(engine, "SELECT id FROM ordrs")
    assert (result.ok, result.error_kind) == (False, "sql")
    assert result.error == 'relation "ordrs" does not exist'
    keys = [f"{schema}.orders", f"{schema}.customers", f"{schema}.sentinel"]
    assert suggest_names(result.error, keys, {}) == f"did you mean {schema}.orders?"


@pytest.mark.integration
def test_unknown_column_is_a_sql_error_with_a_did_you_mean(schema: str, engine: sa.Engine) -> None:
    verdict = check_sql("SELECT amout FROM orders", "postgresql")
    assert verdict.statement is not None
    result = run_explain(engine, verdict.statement)
    assert result.error_kind == "sql"
    assert result.error is not None and result.error.startswith('column "amout" does not exist')
    columns = {
        f"{schema}.orders": ["id", "customer_id", "amount", "status"],
        f"{schema}.customers": ["id", "name"],
    }
    hint = suggest_names(result.error, list(columns), columns, referenced_tables=verdict.tables)
    assert hint == f"did you mean amount ({schema}.orders)?"


@pytest.mark.integration
def test_real_plan_warns_about_cartesian_product_and_full_scan(engine: sa.Engine) -> None:
    result = run_explain(engine, "SELECT * FROM orders a, customers b", large_table_rows=1000)
    assert result.ok, result.error
    assert any("cartesian" in warning for warning in result.warnings), result.warnings
    assert any(warning.startswith("full scan of orders") for warning in result.warnings), result.warnings
    joined = run_explain(engine, "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id")
    assert not any("cartesian" in warning for warning in joined.warnings)


@pytest.mark.integration
def test_limits_apply_to_real_estimates(engine: sa.Engine) -> None:
    result = run_explain(engine, "SELECT * FROM orders")
    assert result.estimated_rows is not None and result.estimated_rows >= 4000
    limited = apply_limits(result, max_rows=1000, max_cost=None)
    assert (limited.ok, limited.error_kind) == (False, "limit")


def test_unreachable_server_is_a_connection_error_without_connection_details() -> None:
    port = free_port()  # nothing listens there
    engine = sa.create_engine(f"postgresql+psycopg://secretuser@127.0.0.1:{port}/secretdb")
    try:
        result = run_explain(engine, "SELECT 1")
    finally:
        engine.dispose()
    assert (result.ok, result.error_kind) == (False, "connection")
    assert result.error is not None
    for detail in ("127.0.0.1", str(port), "secretuser", "secretdb"):
        assert detail not in result.error


@pytest.mark.integration
def test_an_estimate_beyond_64_bits_is_clamped_so_the_answer_can_be_encoded(engine: sa.Engine) -> None:
    """A cross join of a few large tables is estimated at more rows than a 64-bit integer holds; the answer (and
    the cache, which encodes it with orjson) must still carry it."""
    import orjson

    sql = "SELECT 1 FROM " + ", ".join(f"orders o{i}" for i in range(8))
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason
    result = run_explain(engine, verdict.statement)
    assert result.ok, result.error
    assert result.estimated_rows == 2**63 - 1  # 5000^8 ≈ 3.9e29
    orjson.dumps({"plan": result.plan, "rows": result.estimated_rows})
