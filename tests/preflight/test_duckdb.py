"""DuckDB preflight: file readers, replacement scans, COPY/ATTACH/INSTALL/LOAD/PRAGMA/SET refused; analytical SQL
planned with estimates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from dbmeta_app.config import Profile
from dbmeta_app.db.engines import create_profile_engine
from dbmeta_app.preflight.explain import run_explain
from dbmeta_app.preflight.guard import check_sql

HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('x.csv')",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "SELECT * FROM read_json('x.json')",
    "SELECT * FROM read_json_auto('x.json')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM parquet_scan('x.parquet')",
    "SELECT * FROM sqlite_scan('x.db', 't')",
    "SELECT * FROM postgres_scan('host=db', 'public', 't')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM 'data.csv'",
    'SELECT * FROM "https://example.com/x.parquet"',
    "SELECT * FROM orders o JOIN read_csv('x.csv') r ON true",
    "SELECT getenv('HOME')",
    "COPY orders TO '/tmp/x.csv'",
    "COPY orders FROM '/tmp/x.csv'",
    "ATTACH 'other.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "DELETE FROM orders",
    "SELECT 1; DROP TABLE orders",
]
LEGIT = [
    "SELECT customer_id, sum(total) FROM orders GROUP BY ALL",
    "SELECT * FROM range(10)",
    "SELECT unnest(tags) FROM customers",
    "SELECT address.city, attrs['x'] FROM customers",
    "SELECT id, row_number() OVER (ORDER BY total DESC) FROM orders",
    "WITH t AS (SELECT * FROM orders) SELECT count(*) FROM t",
    "SELECT * FROM orders ORDER BY total DESC LIMIT 5",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_duckdb_sql_is_refused(sql: str) -> None:
    verdict = check_sql(sql, "duckdb")
    assert not verdict.ok and verdict.statement is None, sql


@pytest.mark.parametrize("sql", LEGIT)
def test_legitimate_duckdb_sql_passes_the_guard(sql: str) -> None:
    assert check_sql(sql, "duckdb").ok


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "p.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, tags VARCHAR[], "
        "address STRUCT(city VARCHAR), attrs MAP(VARCHAR, INTEGER))"
    )
    conn.execute(
        "CREATE TABLE orders AS SELECT range AS id, range % 100 AS customer_id, range * 1.5 AS total "
        "FROM range(200000)"
    )
    conn.close()
    eng = create_profile_engine(Profile(name="duck", database_url=SecretStr(f"duckdb:///{path}")))
    yield eng
    eng.dispose()


@pytest.mark.integration
@pytest.mark.parametrize("sql", LEGIT)
def test_legitimate_sql_is_planned_by_duckdb(engine: Engine, sql: str) -> None:
    result = run_explain(engine, sql)
    assert result.ok, result.error
    assert result.plan


@pytest.mark.integration
def test_explain_estimates_rows_and_warns_about_unfiltered_scans(engine: Engine) -> None:
    full = run_explain(engine, "SELECT * FROM orders", large_table_rows=1000)
    assert full.ok and full.estimated_rows == 200_000
    assert any("full scan" in w and "orders" in w for w in full.warnings)
    filtered = run_explain(engine, "SELECT * FROM orders WHERE id = 5", large_table_rows=1000)
    assert filtered.ok and not filtered.warnings


@pytest.mark.integration
def test_an_unknown_column_is_a_sql_error(engine: Engine) -> None:
    result = run_explain(engine, "SELECT nosuch FROM orders")
    assert not result.ok and result.error_kind == "sql" and "nosuch" in (result.error or "")


def test_constants_duckdb_would_fold_in_this_process_are_refused_before_it_plans(engine: Engine) -> None:
    """DuckDB folds constant calls while planning, in the service's own process: 400 MB here (1.2 GB RSS)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_explain(engine, "SELECT * FROM orders WHERE status = repeat('x', 400000000)")
    assert not result.ok and result.error_kind == "limit", result.error
    assert "bytes of constants" in (result.error or "")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB more
    small = run_explain(engine, "SELECT * FROM orders WHERE CAST(id AS VARCHAR) = repeat('7', 8)")
    assert small.ok, small.error


# --- macros and views stored in the database ---------------------------------------------------------


@pytest.fixture
def hostile_engine(tmp_path: Path) -> Iterator[Engine]:
    """A database file holding macros (one shadows the built-in upper), views that call them (directly, through
    another view, from another schema, as a table macro), a generated column that calls one, a view of a
    300 MB constant, and views over built-ins only (internal macros such as list_sum and date_add included)."""
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "hostile.duckdb"
    conn = duckdb.connect(str(path))
    for statement in (
        "CREATE TABLE t (x VARCHAR, n INTEGER)",
        "CREATE MACRO big(n) AS repeat('x', n)",
        "CREATE MACRO tm(n) AS TABLE SELECT * FROM range(n)",
        "CREATE MACRO upper(s) AS 'shadowed ' || s",
        "CREATE VIEW v_big AS SELECT big(300000000) AS s",
        "CREATE VIEW v_v_big AS SELECT * FROM v_big",
        "CREATE VIEW v_tm AS SELECT * FROM tm(3)",
        "CREATE SCHEMA s",
        "CREATE VIEW s.v_big2 AS SELECT main.big(300000000) AS s",
        "CREATE TABLE g (x INTEGER, y VARCHAR AS (big(300000000)))",
        "CREATE VIEW v_const AS SELECT repeat('x', 300000000) AS s",
        "CREATE VIEW v_ok AS SELECT x, lower(x) AS l, list_sum([n, 1]) AS total, "
        "date_add(DATE '2020-01-01', INTERVAL 1 DAY) AS d FROM t",
        "CREATE VIEW v_v_ok AS SELECT * FROM v_ok",
        "CREATE TABLE g_ok (x INTEGER, y INTEGER AS (x + 1))",
    ):
        conn.execute(statement)
    conn.close()
    eng = create_profile_engine(Profile(name="hostile", database_url=SecretStr(f"duckdb:///{path}")))
    yield eng
    eng.dispose()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT * FROM t WHERE x = big(300000000)", "macro big() of the database"),
        ("SELECT * FROM t WHERE x = BIG(300000000)", "macro big() of the database"),
        ("SELECT * FROM t WHERE x = main.big(3)", "macro big() of the database"),
        ("SELECT upper(x) FROM t", "macro upper() of the database"),  # shadows the built-in
        ("SELECT * FROM v_big", "view main.v_big calls macro big() of the database"),
        ("SELECT * FROM v_v_big", "view main.v_big calls macro big() of the database"),
        ("SELECT * FROM s.v_big2", "view s.v_big2 calls macro big() of the database"),
        ("SELECT * FROM v_tm", "view main.v_tm calls table macro tm() of the database"),
        ("SELECT * FROM tm(3)", "table function tm() is not allowed"),  # the guard, before any catalog read
        # a non-recursive CTE's body reads the view of the same name, not itself
        ("WITH v_big AS (SELECT * FROM v_big) SELECT * FROM v_big", "view main.v_big calls macro big()"),
        ("SELECT x FROM g WHERE y = 'a'", "generated column main.g.y calls macro big() of the database"),
        ("SELECT * FROM v_const", "view main.v_const"),
    ],
)
def test_a_macro_or_a_huge_constant_stored_in_the_database_is_refused_before_duckdb_plans(
    hostile_engine: Engine, sql: str, why: str
) -> None:
    """Planning folds what a macro, view or generated column builds in this process: 300 MB each here."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_explain(hostile_engine, sql)
    assert not result.ok and result.error_kind in ("unsafe", "limit"), result
    assert why in (result.error or ""), result.error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB more


@pytest.mark.integration
def test_a_macro_refusal_says_the_service_cannot_vouch_for_it(hostile_engine: Engine) -> None:
    result = run_explain(hostile_engine, "SELECT * FROM t WHERE x = big(300000000)")
    assert result.error_kind == "unsafe"
    assert result.error == (
        "refused: macro big() of the database is not allowed in a preflight query: "
        "the service cannot vouch for what it runs"
    )


@pytest.mark.integration
def test_built_in_macros_and_views_over_built_ins_are_still_planned(hostile_engine: Engine) -> None:
    for sql in (
        "SELECT list_sum([1, 2, 3]), date_add(DATE '2020-01-01', INTERVAL 1 DAY)",  # built-in (internal) macros
        "SELECT x, l, total, d FROM v_v_ok",
        "SELECT y FROM g_ok WHERE x = 1",
        "SELECT lower(x) FROM t WHERE x = repeat('7', 8)",
    ):
        result = run_explain(hostile_engine, sql)
        assert result.ok, (sql, result.error)
