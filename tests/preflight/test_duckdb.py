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
