"""SQLite: a preflight is refused before SQLite expands views whose expansion is over the planned-relations bound.

Audit finding #4: 16 chains of views that double at every level made `SELECT x FROM top` take 23 s to plan
(SQLite cannot be interrupted while it expands views). The bound is the PostgreSQL one: at most
PLANNED_RELATIONS_PER_RELATION x the profile's preflight.max_relations relations, views' included.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight.budget import Budget
from dbmeta_app.preflight.explain import ExplainResult, run_explain
from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import PLANNED_RELATIONS_PER_RELATION, RoutineGate, sample_refusals
from dbmeta_app.preflight.reach import Name
from dbmeta_app.schema import sqlite_views

MAX_RELATIONS = 10  # a lowered preflight.max_relations: the bound is 30 planned relations
# b_0 opens 2 relations (itself, t), b_k 1 + 2 x b_{k-1}: b_3 23, b_6 191; top 1 + 2 x 191 = 383


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    path = tmp_path / "views.db"
    with sqlite3.connect(path) as conn:
        for j in range(2):
            conn.execute(f"CREATE TABLE t{j} (x INTEGER)")
            conn.execute(f"CREATE VIEW b{j}_0 AS SELECT x FROM t{j}")
            for k in range(1, 7):
                conn.execute(
                    f"CREATE VIEW b{j}_{k} AS SELECT x FROM b{j}_{k - 1} UNION ALL SELECT x FROM main.B{j}_{k - 1}"
                )
        conn.execute("CREATE VIEW top AS SELECT x FROM b0_6 UNION ALL SELECT x FROM b1_6")
        # the doubling hidden in CTEs: each one is copied into every reference before SQLite plans
        conn.execute(
            "CREATE VIEW ctes AS WITH c1 AS (SELECT x FROM b0_2), c2 AS (SELECT x FROM c1 UNION ALL SELECT x FROM c1),"
            " c3 AS (SELECT x FROM c2 UNION ALL SELECT x FROM c2) SELECT x FROM c3 UNION ALL SELECT x FROM c3"
        )
        values = ", ".join(str(i) for i in range(25_000))  # over the definition length the service parses
        conn.execute(f"CREATE VIEW broken AS SELECT x FROM t0 WHERE x NOT IN ({values})")
    conn.close()
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _gate() -> RoutineGate:
    return RoutineGate("sqlite", max_planned_relations=PLANNED_RELATIONS_PER_RELATION * MAX_RELATIONS)


def _preflight(engine: sa.Engine, sql: str, gate: RoutineGate | None = None) -> ExplainResult:
    budget = Budget(max_relations=MAX_RELATIONS)
    verdict = check_sql(sql, "sqlite", budget=budget)
    assert verdict.ok and verdict.statement is not None, verdict.reason
    gate = gate or _gate()
    return run_explain(
        engine, verdict.statement, budget=budget, check=gate.checker(verdict.reach, verdict.statement)
    )


def test_a_view_tree_over_the_bound_is_refused_before_sqlite_expands_it(engine: sa.Engine) -> None:
    result = _preflight(engine, "SELECT x FROM top")
    assert not result.ok and result.error_kind == "unsafe", result
    assert result.error is not None
    assert "the planner would open 383 relations" in result.error
    assert "over the limit of 30" in result.error and "preflight.max_relations" in result.error


def test_views_under_the_bound_are_explained(engine: sa.Engine) -> None:
    result = _preflight(engine, "SELECT x FROM b0_2 UNION ALL SELECT x FROM t1")
    assert result.ok, result.error


def test_references_multiply_through_the_statement_and_its_ctes(engine: sa.Engine) -> None:
    # b0_3 opens 15 relations: once fits, twice through a CTE referenced twice does not
    assert _preflight(engine, "SELECT x FROM b0_3").ok
    result = _preflight(
        engine, "WITH c AS NOT MATERIALIZED (SELECT x FROM b0_3) SELECT x FROM c UNION ALL SELECT x FROM c"
    )
    assert not result.ok and "the planner would open" in (result.error or ""), result
    result = _preflight(engine, "SELECT x FROM ctes")
    assert not result.ok and "the planner would open" in (result.error or ""), result


def test_a_view_the_service_cannot_parse_is_refused(engine: sa.Engine) -> None:
    result = _preflight(engine, "SELECT x FROM broken")
    assert not result.ok and result.error_kind == "unsafe", result
    assert "broken" in (result.error or "") and "cannot check" in (result.error or "")


def test_definitions_are_parsed_once_per_text(engine: sa.Engine) -> None:
    gate = _gate()
    _preflight(engine, "SELECT x FROM top", gate)
    parsed = len(gate.sqlite_views)
    assert parsed >= 14
    assert not _preflight(engine, "SELECT x FROM top WHERE x = 1", gate).ok
    assert len(gate.sqlite_views) == parsed


def test_sample_rows_of_a_view_over_the_bound_are_not_read(engine: sa.Engine) -> None:
    refused = sample_refusals(engine, _gate(), [Name(None, "top"), Name(None, "b0_1"), Name(None, "t0")])
    assert set(refused) == {Name(None, "top")}
    assert "would open 383 relations" in refused[Name(None, "top")]


# --- audit B #5: SQLite's `x IN name` form reads the relation `name` (sqlglot parses the name as a column) ----


@pytest.fixture
def in_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """Views that read the one below twice through ``IN name``, in each spelling SQLite takes.

    i_0 opens 2 relations (itself, t), i_k 1 + 2 x i_{k-1}: i_2 11, i_6 191; itop 1 + t + i_6 = 193."""
    path = tmp_path / "in_views.db"
    spellings = ["{v}", "'{v}'", "main.{v}", '"{v}"', "main.'{v}'", "{V}"]
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.execute("CREATE VIEW i0 AS SELECT x FROM t")
        for k in range(1, 7):
            ref = spellings[k - 1].format(v=f"i{k - 1}", V=f"I{k - 1}")
            conn.execute(f"CREATE VIEW i{k} AS SELECT 1 AS x WHERE 1 IN {ref} AND 2 NOT IN {ref}")
        conn.execute("CREATE VIEW itop AS SELECT x FROM t WHERE x IN i6")
        # each spelling, checked by SQLite itself: it reads the view (i_0 reads t, and i_k has no FROM)
        for k in range(1, 7):
            plan = conn.execute(f"EXPLAIN QUERY PLAN SELECT x FROM i{k}").fetchall()
            assert any(str(row[-1]) == "SCAN t" for row in plan), (k, plan)
    conn.close()
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def test_views_read_as_in_a_name_are_counted(in_engine: sa.Engine) -> None:
    result = _preflight(in_engine, "SELECT x FROM itop")
    assert not result.ok and result.error_kind == "unsafe", result
    assert "the planner would open 193 relations" in (result.error or ""), result


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 AS x WHERE 1 IN i6",
        "SELECT 1 AS x WHERE 1 NOT IN main.i6",
        "SELECT 1 AS x WHERE 1 IN 'i6'",
        'SELECT 1 AS x WHERE (1) IN "I6"',
        "SELECT 1 AS x WHERE 1 IN i6()",
    ],
)
def test_the_statements_own_in_a_name_is_counted(in_engine: sa.Engine, sql: str) -> None:
    result = _preflight(in_engine, sql)
    assert not result.ok and "the planner would open" in (result.error or ""), (sql, result)


def test_small_views_read_through_in_are_explained(in_engine: sa.Engine) -> None:
    result = _preflight(in_engine, "SELECT x FROM i2 WHERE 1 IN i1")
    assert result.ok, result.error


def test_sample_rows_of_a_view_reading_in_a_name_over_the_bound_are_not_read(in_engine: sa.Engine) -> None:
    refused = sample_refusals(in_engine, _gate(), [Name(None, "itop"), Name(None, "i2"), Name(None, "t")])
    assert set(refused) == {Name(None, "itop")}
    assert "would open 193 relations" in refused[Name(None, "itop")]


def test_reads_of_counts_a_name_on_the_right_of_in_as_a_relation() -> None:
    tree = sqlite_views.parse_view(
        "SELECT 1 WHERE 1 IN a AND 1 NOT IN main.b AND 1 IN 'c' AND 1 IN \"D\" AND 1 IN e() AND 1 IN a"
    )
    assert tree is not None
    reads = sqlite_views.reads_of(tree)
    assert {name: reads[name] for name in "abcde"} == {"a": 2, "b": 1, "c": 1, "d": 1, "e": 1}


def test_a_view_name_anywhere_in_the_text_counts_and_qualifiers_do_not() -> None:
    views = {
        "v": "CREATE VIEW v AS SELECT x FROM t UNION ALL SELECT x FROM t",
        "w": "CREATE VIEW w AS SELECT 1",
    }
    sizes = sqlite_views.expansion_sizes(views, sqlite_views.ReadsMemo())
    assert sizes == {"v": 3, "w": 1}

    def planned(sql: str) -> int | None:
        tree = sqlite_views.parse_view(sql)
        assert tree is not None
        return sqlite_views.statement_relations(sqlite_views.reads_of(tree), sizes)

    # a qualifier names a FROM item, never a second read: an ordinary query counts what it reads once
    assert planned("SELECT v.x, v.x, main.v.x FROM v") == 3
    assert planned("SELECT t.x FROM t") == 1
    # an identifier that names a view is counted as a read wherever sqlglot put it (fail closed)
    assert planned("SELECT v FROM t") == 1 + 3
    assert planned("SELECT x FROM t WHERE x = 1") == 1


def test_a_callers_cte_chain_read_as_in_a_name_is_counted_without_any_view(tmp_path: Path) -> None:
    """Audit B #4: the caller's own CTE doubling chain (``IN c_k``), on a database with no view at all."""
    path = tmp_path / "plain.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)
    try:
        ctes = ["c0 AS (SELECT 1 AS x)"] + [
            f"c{k} AS (SELECT 1 AS x WHERE 1 IN c{k - 1} AND 1 IN c{k - 1})" for k in range(1, 7)
        ]
        chain = "WITH " + ", ".join(ctes) + " SELECT x FROM c6"
        # the view-expansion check counts it on its own, whatever the complexity budget says (budget.py)
        with engine.connect() as conn:
            problem = _gate().check(conn, None, chain)
            assert problem is not None and "the planner would open 127 relations" in problem, problem
            assert _gate().check(conn, None, "WITH c AS (SELECT 1 AS x) SELECT x FROM t WHERE x IN c") is None
        budget = Budget(max_relations=MAX_RELATIONS)
        result = run_explain(engine, chain, budget=budget, check=_gate().checker(None, chain))
        assert not result.ok and result.error_kind in ("unsafe", "limit"), result
        assert _preflight(engine, "WITH c AS (SELECT 1 AS x) SELECT x FROM t WHERE x IN c").ok
    finally:
        engine.dispose()
