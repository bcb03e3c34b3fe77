"""DuckDB introspection: types (STRUCT, LIST, MAP, ENUM), comments, keys, views, fingerprint drift, sample rows,
and the engine the service opens (read-only, no external access)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from dbmeta_app.config import Profile
from dbmeta_app.db.engines import create_profile_engine
from dbmeta_app.schema import introspect, schema_fingerprint
from dbmeta_app.schema.render import render_schema
from dbmeta_app.schema.samples import SAMPLE_VALUE_MAX, sample_rows

duckdb = pytest.importorskip("duckdb")

pytestmark = pytest.mark.integration

DDL = [
    "CREATE TYPE mood AS ENUM ('happy', 'sad')",
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, feeling mood, "
    "address STRUCT(city VARCHAR, zip VARCHAR), tags VARCHAR[], attrs MAP(VARCHAR, INTEGER), note VARCHAR)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id), "
    "total DECIMAL(10, 2), payload BLOB)",
    "CREATE SCHEMA mart",
    "CREATE VIEW mart.big_orders AS SELECT * FROM main.orders WHERE total > 100",
    "COMMENT ON TABLE customers IS 'People who buy'",
    "COMMENT ON COLUMN customers.name IS 'Full name'",
    "INSERT INTO customers VALUES (1, 'Ada', 'happy', {'city': 'London', 'zip': 'N1'}, ['a', 'b'], "
    "MAP {'x': 1}, repeat('n', 500))",
    "INSERT INTO orders VALUES (10, 1, 250.00, '\\xAA\\xBB'::BLOB)",
]


def _write(path: Path, statements: list[str]) -> None:
    conn = duckdb.connect(str(path))
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    _write(path, DDL)
    return path


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = create_profile_engine(Profile(name="duck", database_url=SecretStr(f"duckdb:///{db_path}")))
    yield eng
    eng.dispose()


def test_tables_views_types_comments_and_keys_are_read(engine: Engine) -> None:
    snap = introspect(engine, "duck")
    assert set(snap.tables) == {"main.customers", "main.orders", "mart.big_orders"}
    customers = snap.tables["main.customers"]
    types = {c.name: c.type for c in customers.columns}
    assert types["address"] == "STRUCT(city VARCHAR, zip VARCHAR)"
    assert types["tags"] == "VARCHAR[]"
    assert types["attrs"] == "MAP(VARCHAR, INTEGER)"
    assert types["feeling"] == "ENUM('happy', 'sad')"
    assert customers.comment == "People who buy"
    assert {c.name: c.comment for c in customers.columns}["name"] == "Full name"
    assert customers.primary_key == ("id",)
    assert {c.name: c.nullable for c in customers.columns}["name"] is False
    (fk,) = snap.tables["main.orders"].foreign_keys
    assert fk.columns == ("customer_id",) and fk.ref_table == "main.customers" and fk.ref_columns == ("id",)
    assert snap.tables["mart.big_orders"].kind == "view"
    text = render_schema(snap)
    assert "customer_id INTEGER → main.customers.id" in text


def test_schema_filter(engine: Engine) -> None:
    assert set(introspect(engine, "duck", include_schemas=("mart",)).tables) == {"mart.big_orders"}
    assert "mart.big_orders" not in introspect(engine, "duck", exclude_schemas=("mart",)).tables


def test_fingerprint_changes_on_new_column_changed_comment_and_new_table(db_path: Path) -> None:
    profile = Profile(name="duck", database_url=SecretStr(f"duckdb:///{db_path}"))
    seen = []
    for ddl in (
        None,
        "ALTER TABLE customers ADD COLUMN email VARCHAR",
        "COMMENT ON COLUMN customers.name IS 'Given and family name'",
        "COMMENT ON TABLE orders IS 'Orders'",
        "CREATE TABLE extra (x INTEGER)",
    ):
        if ddl is not None:
            _write(db_path, [ddl])  # the service's engine opens read-only: write while it is closed
        eng = create_profile_engine(profile)
        try:
            seen.append(schema_fingerprint(eng))
            assert seen[-1] == schema_fingerprint(eng)
        finally:
            eng.dispose()
    assert len(set(seen)) == len(seen), seen


def test_sample_rows_cut_values_and_show_binary_as_a_size(engine: Engine) -> None:
    snap = introspect(engine, "duck")
    rows = sample_rows(engine, snap.tables.values(), 2)
    assert "mart.big_orders" not in rows  # views run a query: only when allow-listed
    (customer,) = rows["main.customers"]
    assert len(customer[-1] or "") <= SAMPLE_VALUE_MAX
    (order,) = rows["main.orders"]
    assert order[-1] == "<2 bytes>"


def test_the_service_opens_duckdb_read_only_without_external_access(engine: Engine) -> None:
    with engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.rollback()
        with pytest.raises(sa.exc.DBAPIError, match=r"(?i)permission|external"):
            conn.exec_driver_sql("SELECT * FROM read_csv('/etc/hostname')").fetchall()
        conn.rollback()
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql("SET enable_external_access = true")
