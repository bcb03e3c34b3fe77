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
