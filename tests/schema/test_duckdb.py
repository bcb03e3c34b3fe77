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


# --- hostile databases (audit #18, #17, #1, #2, #13, #16) ----------------------------------------------


def _engine(path: Path) -> Engine:
    return create_profile_engine(Profile(name="duck", database_url=SecretStr(f"duckdb:///{path}")))


def test_macros_shadowing_catalog_functions_and_built_ins_cannot_forge_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "forged.duckdb"
    _write(
        path,
        [
            "CREATE TABLE real_table (id INTEGER, note VARCHAR)",
            "CREATE MACRO duckdb_tables() AS TABLE SELECT 'main' AS schema_name, 'forged' AS table_name, "
            "NULL AS comment, 'x' AS database_name, false AS internal, false AS temporary",
            "CREATE MACRO duckdb_columns() AS TABLE SELECT 'main' AS schema_name WHERE false",
            "CREATE MACRO duckdb_views() AS TABLE SELECT 'main' AS schema_name WHERE false",
            "CREATE MACRO hash(a, b, c) AS 0",
            "CREATE MACRO count_star() AS 0",
        ],
    )
    engine = _engine(path)
    try:
        snap = introspect(engine, "duck")
        before = schema_fingerprint(engine)
    finally:
        engine.dispose()
    assert set(snap.tables) == {"main.real_table"}
    assert [c.name for c in snap.tables["main.real_table"].columns] == ["id", "note"]
    _write(path, ["CREATE TABLE another (x INTEGER)"])
    engine = _engine(path)
    try:
        assert schema_fingerprint(engine) != before
    finally:
        engine.dispose()


def test_a_left_macro_never_runs_in_the_sample_read(tmp_path: Path) -> None:
    """The sample read called ``left()``: a macro of that name ran for each value and its output was served."""
    from dbmeta_app.config import Profile
    from dbmeta_app.profiles import open_profile
    from dbmeta_app.schema.samples import read_samples

    path = tmp_path / "left.duckdb"
    _write(
        path,
        [
            "CREATE TABLE t (id INTEGER, s VARCHAR)",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "CREATE MACRO \"left\"(a, n) AS 'MACRO-RAN:' || length(repeat(a, 1000))",
        ],
    )
    engine = _engine(path)
    rt = open_profile(Profile(name="duck", database_url=f"duckdb:///{path}"), engine=engine)
    try:
        snap = introspect(engine, "duck")
        read = read_samples(engine, snap.tables.values(), 2, rt.sample_policy())  # as the service reads
    finally:
        engine.dispose()
    assert "MACRO-RAN" not in repr(read.rows), read.rows
    assert "main.t" not in read.rows
    # and the answer says why it has no sample rows
    assert read.unsampled["main.t"].startswith("not sampled: refused: macro left() of the database")


def test_virtual_generated_columns_are_not_computed_by_the_sample_read(tmp_path: Path) -> None:
    path = tmp_path / "generated.duckdb"
    _write(
        path,
        [
            "CREATE TABLE g (id INTEGER, s VARCHAR, big VARCHAR GENERATED ALWAYS AS (repeat(s, 3)) VIRTUAL)",
            "INSERT INTO g (id, s) VALUES (1, 'ab')",
        ],
    )
    engine = _engine(path)
    try:
        rows = sample_rows(engine, introspect(engine, "duck").tables.values(), 2)
    finally:
        engine.dispose()
    assert rows["main.g"] == (("1", "ab", "<generated>"),)


def test_the_service_s_duckdb_connections_have_a_memory_limit(engine: Engine) -> None:
    """A 300 MB stored value (compressed to 800 KB) was loaded whole by the sample read: DuckDB's allocations are
    bounded on every connection the service opens (a read over the bound fails, the table is not sampled)."""
    from dbmeta_app.db.engines import DUCKDB_MEMORY_LIMIT

    with engine.connect() as conn:
        limit = conn.exec_driver_sql("SELECT current_setting('memory_limit')").scalar()
        spill = conn.exec_driver_sql("SELECT current_setting('temp_directory')").scalar()
    assert str(limit).endswith("MiB") and float(str(limit).split()[0]) <= DUCKDB_MEMORY_LIMIT / 2**20, limit
    assert spill == ""  # nothing spilled next to the database file


def test_comments_and_type_names_are_cut_in_the_catalog_query(tmp_path: Path) -> None:
    from dbmeta_app.schema.introspect import duckdb as duck_introspect
    from dbmeta_app.schema.models import COMMENT_MAX

    labels = ", ".join(f"'label_{i:05d}'" for i in range(3000))
    path = tmp_path / "long.duckdb"
    _write(
        path,
        [
            f"CREATE TYPE wide AS ENUM ({labels})",
            "CREATE TABLE t (id INTEGER, w wide)",
            "CREATE VIEW v AS SELECT id FROM t",
            f"COMMENT ON TABLE t IS '{'c' * 50_000}'",
            f"COMMENT ON COLUMN t.id IS '{'d' * 50_000}'",
            f"COMMENT ON VIEW v IS '{'e' * 50_000}'",
        ],
    )
    engine = _engine(path)
    try:
        with engine.connect() as conn:
            tables = {t.name: t for t in duck_introspect.reflect(conn, (), ())}
    finally:
        engine.dispose()
    t, v = tables["t"], tables["v"]
    assert t.comment is not None and len(t.comment) <= COMMENT_MAX + 1
    assert v.comment is not None and len(v.comment) <= COMMENT_MAX + 1
    columns = {c.name: c for c in t.columns}
    assert columns["id"].comment is not None and len(columns["id"].comment) <= COMMENT_MAX + 1
    assert len(columns["w"].type) <= duck_introspect.TYPE_NAME_MAX + 1, len(columns["w"].type)
    assert columns["w"].type.startswith("ENUM('label_00000'") and columns["w"].type.endswith("…")


def test_nested_and_enum_values_are_never_printed_whole_by_the_sample_read(tmp_path: Path) -> None:
    """Audit B #1: ``left(CAST(l AS TEXT), 63)`` of a LIST of a long-label ENUM built the whole text (400 MB a row
    for a 536 KB file) outside memory_limit. Nested values are shown by their size; flat values are cut."""
    from dbmeta_app.schema.samples import _statement

    label = "L" * 2000
    path = tmp_path / "nested.duckdb"
    _write(
        path,
        [
            f"CREATE TYPE long_e AS ENUM ('{label}', 'b')",
            "CREATE TYPE short_e AS ENUM ('happy', 'sad')",
            "CREATE TABLE t (id INTEGER, l long_e[], le long_e, se short_e, s STRUCT(k VARCHAR, v INTEGER), "
            "m MAP(VARCHAR, INTEGER), u UNION(i INTEGER, s VARCHAR), a INTEGER[3], li INTEGER[], "
            "v VARCHAR, d DECIMAL(10, 2), ts TIMESTAMP, n INTEGER[], sl short_e[])",
            f"INSERT INTO t VALUES (1, list_transform(range(100), lambda x: '{label}'::long_e), '{label}', 'sad', "
            "{'k': 'x', 'v': 1}, MAP {'a': 1, 'b': 2}, 'w', [1, 2, 3], [4, 5], 'plain', 1.5, "
            "TIMESTAMP '2024-01-02 03:04:05', NULL, ['sad', 'happy'])",
        ],
    )
    engine = _engine(path)
    try:
        snap = introspect(engine, "duck")
        rows = sample_rows(engine, snap.tables.values(), 2)
        sql = _statement(snap.tables["main.t"], 2, engine.dialect)
    finally:
        engine.dispose()
    ((*values,),) = rows["main.t"]
    assert values == [
        "1",
        "<enum>",  # its type name is cut (ENUM('LLL…): a list or not, of labels of any length
        "<enum>",
        "sad",
        "<struct>",
        "<map of 2 entries>",
        "<union>",
        "<list of 3 elements>",
        "<list of 2 elements>",
        "plain",
        "1.50",
        "2024-01-02 03:04:05",
        None,
        "<list of 2 elements>",
    ], values
    assert all(v is None or len(v) <= SAMPLE_VALUE_MAX for v in values)
    for nested in ('"l"', '"le"', '"s"', '"m"', '"u"', '"a"', '"li"', '"sl"'):
        assert f"CAST(t.{nested} AS TEXT)" not in sql and f"CAST({nested} AS TEXT)" not in sql, sql
