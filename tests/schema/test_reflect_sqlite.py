"""SQLite reflection reads columns with PRAGMA table_xinfo and never lets a view expansion or a regex run unbounded.

Audit findings #4 (views that double at every level: PRAGMA table_xinfo of each view expanded them all) and
#12 (SQLAlchemy's per-generated-column regex over the CREATE TABLE text: a comment before the column made it
super-quadratic). Costs are compared with a control file of the same shape in the same test, never with
absolute seconds.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbmeta_app.db.engines import sample_file
from dbmeta_app.schema import reflect
from dbmeta_app.schema.models import Table
from dbmeta_app.schema.reflect import reflect_tables


def _file(path: Path, statements: list[str]) -> sa.Engine:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return sa.create_engine(f"sqlite:///{path}")


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _views(chains: int, levels: int, *, doubling: bool) -> list[str]:
    out = []
    for j in range(chains):
        out.append(f"CREATE TABLE t{j} (x INTEGER)")
        out.append(f"CREATE VIEW b{j}_0 AS SELECT x FROM t{j}")
        for k in range(1, levels + 1):
            second = f"b{j}_{k - 1}" if doubling else f"t{j}"
            out.append(f"CREATE VIEW b{j}_{k} AS SELECT x FROM b{j}_{k - 1} UNION ALL SELECT x FROM {second}")
    out.append(
        "CREATE VIEW top AS " + " UNION ALL ".join(f"SELECT x FROM b{j}_{levels}" for j in range(chains))
    )
    return out


def _by_name(tables: list[Table]) -> dict[str, Table]:
    return {t.name: t for t in tables}


def test_views_that_double_at_every_level_are_reflected_without_expanding_them(tmp_path: Path) -> None:
    control = _file(tmp_path / "control.db", _views(2, 14, doubling=False))
    hostile = _file(tmp_path / "hostile.db", _views(2, 14, doubling=True))
    reflect_tables(control)  # warm imports and caches alike
    control_s = _timed(lambda: reflect_tables(control))
    hostile_s = _timed(lambda: reflect_tables(hostile))
    tables = _by_name(reflect_tables(hostile))
    assert hostile_s < 3 * control_s + 0.5, (hostile_s, control_s)
    # A view whose expansion is over the bound keeps its name and select list, with a label saying why.
    top = tables["top"]
    assert top.kind == "view" and [c.name for c in top.columns] == ["x"]
    assert top.comment and "not expanded" in top.comment
    # Small views are reflected as before (types from SQLite).
    assert [(c.name, c.type) for c in tables["b0_3"].columns] == [("x", "INTEGER")]
    assert tables["b0_3"].comment is None


def test_a_comment_before_a_generated_column_costs_no_regex_backtracking(tmp_path: Path) -> None:
    words = "a " * 10_000
    control = _file(tmp_path / "control.db", [f"CREATE TABLE t (x INT /* {words} */, b INT)"])
    hostile = _file(
        tmp_path / "hostile.db",
        [f"CREATE TABLE t (x INT /* {words} */, a INT GENERATED ALWAYS AS (x + 1) VIRTUAL)"],
    )
    reflect_tables(control)
    control_s = _timed(lambda: reflect_tables(control))
    hostile_s = _timed(lambda: reflect_tables(hostile))
    assert hostile_s < 5 * control_s + 0.3, (hostile_s, control_s)
    [table] = reflect_tables(hostile)
    assert [(c.name, c.type, c.nullable) for c in table.columns] == [
        ("x", "INTEGER", True),
        ("a", "INTEGER", True),
    ]


ODD_DDL = [
    'CREATE TABLE customers (id INTEGER PRIMARY KEY, "CustomerName" VARCHAR(80) NOT NULL, born DATE, '
    "score DOUBLE PRECISION, raw BLOB, weird STRANGE(3, 4), untyped, amount DECIMAL(10,2))",
    'CREATE TABLE "Order Lines" (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),'
    ' "Unit Price (USD)" NUMERIC(10,2), "discount %" NUMERIC(5,2), "naïve ☃" TEXT, "we""ird" TEXT,'
    ' "MixedCase" TIMESTAMP, total REAL GENERATED ALWAYS AS ("Unit Price (USD)" * 2) STORED,'
    " half INT GENERATED ALWAYS AS (id / 2))",
    'CREATE TABLE "Ünïcode Table" (code VARCHAR(10), region INTEGER, label TEXT, PRIMARY KEY (region, code))',
    "CREATE TABLE refs (id INTEGER PRIMARY KEY, code VARCHAR(10), region INTEGER,"
    " customer_id INTEGER REFERENCES customers, owner INTEGER CONSTRAINT fk_owner REFERENCES CUSTOMERS (id),"
    ' CONSTRAINT fk_code FOREIGN KEY (code, region) REFERENCES "Ünïcode Table"(code, region))',
    "CREATE TABLE nokey (a TEXT, b TEXT)",
    "CREATE TABLE wr (k TEXT PRIMARY KEY, v INT) WITHOUT ROWID",
    "CREATE TABLE dangling (id INTEGER, gone_id INTEGER REFERENCES nowhere)",
    'CREATE VIEW v_big_orders AS SELECT id, customer_id, "Unit Price (USD)" * 2 AS doubled FROM "Order Lines"',
    "CREATE VIEW v_all AS SELECT * FROM customers",
    "CREATE VIEW v_cols(a, b) AS SELECT id, born FROM customers",
]


@pytest.mark.parametrize("source", ["odd", "warehouse"])
def test_the_snapshot_is_the_one_sqlalchemy_reflected(tmp_path: Path, source: str) -> None:
    path = tmp_path / "w.db"
    if source == "warehouse":
        with sqlite3.connect(path) as conn:
            conn.executescript(sample_file("warehouse.sql").read_text(encoding="utf-8"))
        conn.close()
        engine = sa.create_engine(f"sqlite:///{path}")
    else:
        engine = _file(path, ODD_DDL)
    with engine.connect() as conn:
        before = reflect._reflect_generic(conn, [], [])
    after = reflect_tables(engine)
    assert after == before
    assert any(t.kind == "view" for t in after) and any(t.foreign_keys for t in after)


def test_views_that_read_each_other_as_in_a_name_are_not_expanded(tmp_path: Path) -> None:
    """Audit B #5: ``x IN view`` reads the view (sqlglot parses the name as a column): 2^13 relations here."""
    statements = ["CREATE TABLE t (x INTEGER)", "CREATE VIEW b0 AS SELECT x FROM t"]
    statements += [
        f"CREATE VIEW b{k} AS SELECT 1 AS x WHERE 1 IN b{k - 1} AND 1 IN b{k - 1}" for k in range(1, 13)
    ]
    statements.append("CREATE VIEW top AS SELECT x FROM t WHERE x IN b12")
    tables = _by_name(reflect_tables(_file(tmp_path / "in.db", statements)))
    assert tables["top"].comment and "not expanded" in tables["top"].comment, tables["top"]
    assert tables["b12"].comment and "not expanded" in tables["b12"].comment
    assert tables["b2"].comment is None  # small ones are reflected as before
