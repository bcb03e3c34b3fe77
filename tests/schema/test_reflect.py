"""Bulk reflection on SQLite, PostgreSQL and MariaDB, with several schemas and hostile identifiers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbmeta_app.schema import introspect
from dbmeta_app.schema.descriptions import Descriptions
from dbmeta_app.schema.models import Snapshot
from dbmeta_app.schema.render import quote_ident, quote_table, render_schema

ODD_COLUMNS = ["Unit Price (USD)", "discount %", "naïve ☃", 'we"ird', "MixedCase"]


@dataclass
class Warehouse:
    engine: Engine
    core: str | None  # schema keys as the snapshot spells them (None: SQLite main)
    odd: str | None
    include: tuple[str, ...]

    def key(self, schema: str | None, table: str) -> str:
        return f"{schema}.{table}" if schema else table


def _pg_ddl(core: str, odd: str) -> list[str]:
    q = sa.dialects.postgresql.dialect().identifier_preparer.quote
    c, o = q(core), q(odd)
    return [
        f"CREATE SCHEMA {c}",
        f"CREATE SCHEMA {o}",
        f'CREATE TABLE {c}.customers (id integer PRIMARY KEY, "CustomerName" varchar(80) NOT NULL)',
        f"COMMENT ON TABLE {c}.customers IS 'People and companies who buy'",
        f"COMMENT ON COLUMN {c}.customers.\"CustomerName\" IS 'Legal name'",
        f'CREATE TABLE {c}."Order Lines" (id bigint PRIMARY KEY, customer_id integer NOT NULL REFERENCES {c}.customers(id),'
        ' "Unit Price (USD)" numeric(10,2), "discount %" numeric(5,2), "naïve ☃" text, "we""ird" text,'
        ' "MixedCase" timestamp with time zone)',
        f'COMMENT ON COLUMN {c}."Order Lines"."discount %" IS \'Percent off list price\'',
        f'CREATE TABLE {o}."Ünïcode Table" (code varchar(10), region integer, label text, PRIMARY KEY (code, region))',
        f"CREATE TABLE {o}.refs (id serial PRIMARY KEY, code varchar(10), region integer,"
        f" customer_id integer REFERENCES {c}.customers(id),"
        f' FOREIGN KEY (code, region) REFERENCES {o}."Ünïcode Table"(code, region))',
        f'CREATE VIEW {c}.v_big_orders AS SELECT id, customer_id FROM {c}."Order Lines" WHERE "Unit Price (USD)" > 100',
        f"INSERT INTO {c}.customers VALUES (1, 'Acme'), (2, 'Globex')",
        f"INSERT INTO {c}.\"Order Lines\" VALUES (1, 1, 120.50, 5, 'x', 'y', now())",
    ]


def _mysql_ddl(core: str, odd: str) -> list[str]:
    q = sa.dialects.mysql.dialect().identifier_preparer.quote
    c, o = q(core), q(odd)
    return [
        f"CREATE DATABASE {c} CHARACTER SET utf8mb4",
        f"CREATE DATABASE {o} CHARACTER SET utf8mb4",
        f"CREATE TABLE {c}.customers (id int PRIMARY KEY, `CustomerName` varchar(80) NOT NULL COMMENT 'Legal name')"
        " COMMENT 'People and companies who buy'",
        f"CREATE TABLE {c}.`Order Lines` (id bigint PRIMARY KEY, customer_id int NOT NULL,"
        " `Unit Price (USD)` decimal(10,2), `discount %` decimal(5,2) COMMENT 'Percent off list price',"
        ' `naïve ☃` text, `we"ird` text, `MixedCase` datetime,'
        f" FOREIGN KEY (customer_id) REFERENCES {c}.customers(id))",
        f"CREATE TABLE {o}.`Ünïcode Table` (code varchar(10), region int, label text, PRIMARY KEY (code, region))",
        f"CREATE TABLE {o}.refs (id int AUTO_INCREMENT PRIMARY KEY, code varchar(10), region int, customer_id int,"
        f" FOREIGN KEY (customer_id) REFERENCES {c}.customers(id),"
        f" FOREIGN KEY (code, region) REFERENCES {o}.`Ünïcode Table`(code, region))",
        f"CREATE VIEW {c}.v_big_orders AS SELECT id, customer_id FROM {c}.`Order Lines` WHERE `Unit Price (USD)` > 100",
        f"INSERT INTO {c}.customers VALUES (1, 'Acme'), (2, 'Globex')",
        f"INSERT INTO {c}.`Order Lines` VALUES (1, 1, 120.50, 5, 'x', 'y', now())",
    ]


def _sqlite_ddl() -> list[str]:
    return [
        'CREATE TABLE customers (id INTEGER PRIMARY KEY, "CustomerName" VARCHAR(80) NOT NULL)',
        'CREATE TABLE "Order Lines" (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),'
        ' "Unit Price (USD)" NUMERIC(10,2), "discount %" NUMERIC(5,2), "naïve ☃" TEXT, "we""ird" TEXT,'
        ' "MixedCase" TIMESTAMP)',
        'CREATE TABLE "Ünïcode Table" (code VARCHAR(10), region INTEGER, label TEXT, PRIMARY KEY (code, region))',
        "CREATE TABLE refs (id INTEGER PRIMARY KEY, code VARCHAR(10), region INTEGER,"
        " customer_id INTEGER REFERENCES customers(id),"
        ' FOREIGN KEY (code, region) REFERENCES "Ünïcode Table"(code, region))',
        'CREATE VIEW v_big_orders AS SELECT id, customer_id FROM "Order Lines" WHERE "Unit Price (USD)" > 100',
        "INSERT INTO customers VALUES (1, 'Acme'), (2, 'Globex')",
        "INSERT INTO \"Order Lines\" VALUES (1, 1, 120.50, 5, 'x', 'y', '2024-01-01')",
    ]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.integration),
        pytest.param("mariadb", marks=pytest.mark.integration),
    ]
)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[Warehouse]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
        with engine.begin() as conn:
            for stmt in _sqlite_ddl():
                conn.exec_driver_sql(stmt)
        yield Warehouse(engine, None, None, ())
        engine.dispose()
        return
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        core, odd = f"dbm{unique}_core", f"dbm{unique} Odd Schéma"
        ddl, drop = _pg_ddl(core, odd), [f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in (odd, core)]
    else:
        url = request.getfixturevalue("mysql_url")
        core, odd = f"dbm{unique}_core", f"dbm{unique} odd"
        ddl, drop = _mysql_ddl(core, odd), [f"DROP DATABASE IF EXISTS `{s}`" for s in (odd, core)]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for stmt in ddl:
            conn.exec_driver_sql(stmt.replace("%", "%%"))
    try:
        yield Warehouse(engine, core, odd, (core, odd))
    finally:
        with engine.begin() as conn:
            for stmt in drop:
                conn.exec_driver_sql(stmt)
        engine.dispose()


def _snap(w: Warehouse, **kwargs: Any) -> Snapshot:
    return introspect(w.engine, "p", include_schemas=w.include, **kwargs)


def test_reads_every_schema_tables_and_views(warehouse: Warehouse) -> None:
    snap = _snap(warehouse)
    w = warehouse
    expected = {
        w.key(w.core, "customers"),
        w.key(w.core, "Order Lines"),
        w.key(w.core, "v_big_orders"),
        w.key(w.odd, "Ünïcode Table"),
        w.key(w.odd, "refs"),
    }
    assert set(snap.tables) == expected
    assert snap.tables[w.key(w.core, "v_big_orders")].kind == "view"
    assert snap.version and len(snap.version) == 16


def test_reads_columns_with_types_nullability_and_odd_names(warehouse: Warehouse) -> None:
    snap = _snap(warehouse)
    lines = snap.tables[warehouse.key(warehouse.core, "Order Lines")]
    names = [c.name for c in lines.columns]
    assert names == ["id", "customer_id", *ODD_COLUMNS]
    by = {c.name: c for c in lines.columns}
    assert by["id"].primary_key and not by["customer_id"].nullable and by["discount %"].nullable
    assert "10" in by["Unit Price (USD)"].type and "2" in by["Unit Price (USD)"].type


def test_reads_primary_and_foreign_keys_across_schemas(warehouse: Warehouse) -> None:
    snap = _snap(warehouse)
    w = warehouse
    refs = snap.tables[w.key(w.odd, "refs")]
    targets = {(fk.columns, fk.ref_table, fk.ref_columns) for fk in refs.foreign_keys}
    assert (("customer_id",), w.key(w.core, "customers"), ("id",)) in targets
    assert (("code", "region"), w.key(w.odd, "Ünïcode Table"), ("code", "region")) in targets
    assert snap.tables[w.key(w.odd, "Ünïcode Table")].primary_key == ("code", "region")
    # Every FK target is a key of the snapshot: rendering and FK expansion rely on it.
    for table in snap.tables.values():
        for fk in table.foreign_keys:
            assert fk.ref_table in snap.tables


def test_reads_database_comments_where_the_dialect_has_them(warehouse: Warehouse) -> None:
    if warehouse.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no comments")
    snap = _snap(warehouse)
    customers = snap.tables[warehouse.key(warehouse.core, "customers")]
    assert customers.comment == "People and companies who buy"
    lines = snap.tables[warehouse.key(warehouse.core, "Order Lines")]
    assert {c.name: c.comment for c in lines.columns}["discount %"] == "Percent off list price"


def test_descriptions_override_comments_and_hide(warehouse: Warehouse) -> None:
    w = warehouse
    desc = Descriptions.model_validate(
        {
            "tables": {
                w.key(w.core, "customers"): {
                    "description": "Buyers",
                    "columns": {"CustomerName": {"description": "Registered name", "examples": ["Acme"]}},
                },
                w.key(w.odd, "refs"): {"hidden": True},
                w.key(w.core, "Order Lines"): {"columns": {"naïve ☃": {"hidden": True}}},
            }
        }
    )
    snap = _snap(w, descriptions=desc)
    customers = snap.tables[w.key(w.core, "customers")]
    assert customers.text == "Buyers"
    assert customers.columns[1].text == "Registered name" and customers.columns[1].examples == ("Acme",)
    assert w.key(w.odd, "refs") not in snap.tables
    assert "naïve ☃" not in [c.name for c in snap.tables[w.key(w.core, "Order Lines")].columns]


def test_whitelist_mode_exposes_only_listed_tables(warehouse: Warehouse) -> None:
    w = warehouse
    desc = Descriptions.model_validate({"whitelist": True, "tables": {w.key(w.core, "customers"): "Buyers"}})
    assert list(_snap(w, descriptions=desc).tables) == [w.key(w.core, "customers")]


def test_sample_rows_are_read_and_truncated(warehouse: Warehouse) -> None:
    snap = _snap(warehouse, data_examples=1)
    customers = snap.tables[warehouse.key(warehouse.core, "customers")]
    assert len(customers.sample_rows) == 1 and customers.sample_rows[0][1] in {"Acme", "Globex"}
    text = render_schema(snap, [customers.key])
    assert "sample rows (CSV):" in text and "id,CustomerName" in text


def test_rendered_identifiers_are_valid_sql_for_the_dialect(warehouse: Warehouse) -> None:
    snap = _snap(warehouse)
    lines = snap.tables[warehouse.key(warehouse.core, "Order Lines")]
    dialect = snap.dialect
    cols = ", ".join(quote_ident(c.name, dialect) for c in lines.columns)
    sql = f"SELECT {cols} FROM {quote_table(lines.key, lines, dialect)}"
    with warehouse.engine.connect() as conn:
        rows = conn.exec_driver_sql(sql.replace("%", "%%") if dialect != "sqlite" else sql).fetchall()
    assert len(rows) == 1
    text = render_schema(snap, [lines.key])
    for col in lines.columns:
        assert quote_ident(col.name, dialect) in text


def test_reflection_uses_a_fixed_number_of_queries_whatever_the_table_count(warehouse: Warehouse) -> None:
    counts = []
    for extra in (0, 12):
        with warehouse.engine.begin() as conn:
            for i in range(extra):
                name = f"extra_{i}"
                table = (
                    f"`{warehouse.core}`.{name}"
                    if warehouse.engine.dialect.name in ("mysql", "mariadb")
                    else (f'"{warehouse.core}".{name}' if warehouse.core else name)
                )
                conn.exec_driver_sql(f"CREATE TABLE {table} (id integer PRIMARY KEY, v text)")
        statements: list[str] = []

        def count(*args: Any, _seen: list[str] = statements) -> None:
            _seen.append(str(args[2]))

        sa.event.listen(warehouse.engine, "before_cursor_execute", count)
        try:
            snap = _snap(warehouse)
        finally:
            sa.event.remove(warehouse.engine, "before_cursor_execute", count)
        assert len(snap.tables) == 5 + extra
        counts.append(len(statements))
    if warehouse.engine.dialect.name == "sqlite":
        # SQLAlchemy's SQLite dialect reads PRAGMAs per table; the other dialects use bulk catalog queries.
        pytest.skip(f"SQLite reflection issued {counts} statements (per-table PRAGMAs)")
    assert counts[0] == counts[1]


def _alter(w: Warehouse, sql_pg: str, sql_my: str, sql_lite: str) -> None:
    name = w.engine.dialect.name
    sql = sql_pg if name == "postgresql" else sql_my if name in ("mysql", "mariadb") else sql_lite
    with w.engine.begin() as conn:
        conn.exec_driver_sql(sql)


def test_the_fingerprint_is_stable_and_changes_with_ddl(warehouse: Warehouse) -> None:
    from dbmeta_app.schema import schema_fingerprint

    w = warehouse
    first = schema_fingerprint(w.engine, w.include)
    assert first and first == schema_fingerprint(w.engine, w.include)
    assert _snap(w).fingerprint == first
    customers = (
        f'"{w.core}".customers'
        if w.core and w.engine.dialect.name == "postgresql"
        else (f"`{w.core}`.customers" if w.core else "customers")
    )
    _alter(
        w,
        f"ALTER TABLE {customers} ADD COLUMN vip boolean",
        f"ALTER TABLE {customers} ADD COLUMN vip boolean",
        f"ALTER TABLE {customers} ADD COLUMN vip boolean",
    )
    second = schema_fingerprint(w.engine, w.include)
    assert second != first
    if w.engine.dialect.name != "sqlite":  # SQLite has no comments
        _alter(
            w,
            f"COMMENT ON TABLE {customers} IS 'Buyers, all of them'",
            f"ALTER TABLE {customers} COMMENT 'Buyers, all of them'",
            "",
        )
        assert schema_fingerprint(w.engine, w.include) != second
