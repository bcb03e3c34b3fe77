"""Partitions cost the planner what tables do: a query is bounded by the relations the planner opens.

The complexity budget counts the relations a query's text names; PostgreSQL expands each reference of a
partitioned (or inherited) table into every partition it does not prune, and a view into what it reads. A
table of 2,000 partitions read six times (a 1 kB query) took a backend from 17 to 528 MB. The routine policy counts
each reference with its partitions and children, transitively, and through views.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.policy import RoutineGate
from tests._scratch import pg_database

pytestmark = pytest.mark.integration

PARTITIONS = 120


SETUP: list[str] = [
    "CREATE TABLE events (id int, day int, what text) PARTITION BY LIST (day)",
    *(
        f"CREATE TABLE events_{day} PARTITION OF events FOR VALUES IN ({day})"
        for day in range(PARTITIONS - 2)
    ),
    # a sub-partitioned partition: its own partitions count too
    f"CREATE TABLE events_late PARTITION OF events FOR VALUES IN ({PARTITIONS}, {PARTITIONS + 1}) "
    "PARTITION BY LIST (day)",
    f"CREATE TABLE events_late_a PARTITION OF events_late FOR VALUES IN ({PARTITIONS})",
    "CREATE TABLE plain (id int PRIMARY KEY)",
    "CREATE VIEW recent AS SELECT id, what FROM events WHERE day > 10",
]


@pytest.fixture(scope="module")
def engine(pg_url: str) -> Iterator[sa.Engine]:
    yield from pg_database(pg_url, SETUP, "parts")


def _check(engine: sa.Engine, sql: str, limit: int) -> str | None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.error
    with engine.connect() as conn:
        reason = RoutineGate("postgresql", max_planned_relations=limit).check(conn, verdict.reach, sql)
        conn.rollback()
    return reason


def test_each_reference_of_a_partitioned_table_counts_its_partitions(engine: sa.Engine) -> None:
    # events opens itself, 118 partitions, events_late and its one partition: 121 relations per reference
    assert _check(engine, "SELECT id FROM events", 121) is None
    twice = "SELECT id FROM events UNION ALL SELECT id FROM events"
    assert _check(engine, twice, 242) is None
    reason = _check(engine, twice, 241)
    assert reason is not None and "242 relations" in reason and "preflight.max_relations" in reason


def test_a_cte_of_the_query_counts_its_reads_once_per_reference(engine: sa.Engine) -> None:
    """An inlined CTE is planned at each reference: three references of a CTE over events open it three times."""
    sql = (
        "WITH c AS NOT MATERIALIZED (SELECT id FROM events), d AS (SELECT x.id FROM c x JOIN c y USING (id)) "
        "SELECT a.id FROM d a JOIN c b USING (id)"
    )
    assert _check(engine, sql, 363) is None  # events (121) three times: twice through d, once directly
    reason = _check(engine, sql, 362)
    assert reason is not None and "363 relations" in reason, reason
    recursive = "WITH RECURSIVE r AS (SELECT id FROM events UNION ALL SELECT r.id FROM r) SELECT id FROM r"
    reason = _check(engine, recursive, 241)
    assert reason is not None and "242 relations" in reason, reason  # a recursive body counts twice


def test_a_view_counts_what_it_reads(engine: sa.Engine) -> None:
    sql = "SELECT r.id FROM recent r JOIN plain p ON p.id = r.id"
    assert _check(engine, sql, 123) is None  # the view, events (121) and plain
    reason = _check(engine, sql, 122)
    assert reason is not None and "123 relations" in reason


def test_plain_tables_count_once_per_reference(engine: sa.Engine) -> None:
    sql = "SELECT e.id FROM events e JOIN plain a ON a.id = e.id JOIN plain b ON b.id = e.id"
    assert _check(engine, sql, 123) is None  # events (121) and plain twice
    assert _check(engine, sql, 122) is not None
    # a query of plain tables alone opens what its text names: the complexity budget counted that
    assert _check(engine, "SELECT a.id FROM plain a JOIN plain b ON a.id = b.id", 1) is None


FANOUT_SETUP: list[str] = [
    "CREATE VIEW fan0 AS SELECT id FROM plain",
    *(
        f"CREATE VIEW fan{i} AS SELECT a.id FROM fan{i - 1} a JOIN fan{i - 1} b USING (id)"
        for i in range(1, 5)
    ),
    # the same chain through a CTE read twice: the planner inlines a CTE once per reference
    "CREATE VIEW cte0 AS SELECT id FROM plain",
    *(
        f"CREATE VIEW cte{i} AS WITH c AS NOT MATERIALIZED (SELECT id FROM cte{i - 1}) "
        "SELECT a.id FROM c a JOIN c b USING (id)"
        for i in range(1, 5)
    ),
    # a CTE read twice by another read twice (plain 4 times); an outer CTE read by sublinks (3 times)
    "CREATE VIEW nested_cte AS WITH c AS (SELECT id FROM plain), d AS (SELECT a.id FROM c a JOIN c b USING (id)) "
    "SELECT x.id FROM d x JOIN d y USING (id)",
    "CREATE VIEW sublink_cte AS WITH c AS (SELECT id FROM plain) "
    "SELECT (SELECT max(id) FROM c) AS id, (SELECT min(z.id) FROM c z) AS lo FROM c",
    # a CTE inside a CTE's body read twice there, the outer one read twice (plain 4 times)
    "CREATE VIEW inner_cte AS WITH d AS (WITH c AS (SELECT id FROM plain) SELECT a.id FROM c a JOIN c b USING (id)) "
    "SELECT x.id FROM d x JOIN d y USING (id)",
    # a recursive CTE: its body (plain twice) counts twice
    "CREATE VIEW rec_cte AS WITH RECURSIVE r(id) AS (SELECT id FROM plain UNION ALL "
    "SELECT p.id FROM r JOIN plain p ON p.id = r.id + 1) SELECT id FROM r",
    # one view reading a table three times: a self-join and a subquery
    "CREATE VIEW thrice AS SELECT a.id FROM plain a JOIN plain b USING (id) "
    "WHERE a.id IN (SELECT c.id FROM plain c)",
]


@pytest.fixture(scope="module")
def fanout(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        for statement in FANOUT_SETUP:
            conn.exec_driver_sql(statement)
    return engine


def test_a_view_reading_a_relation_several_times_counts_each_read(fanout: sa.Engine) -> None:
    assert _check(fanout, "SELECT id FROM thrice", 4) is None  # the view and plain three times
    reason = _check(fanout, "SELECT id FROM thrice", 3)
    assert reason is not None and "4 relations" in reason, reason


def test_views_that_read_a_view_twice_multiply_through_the_chain(fanout: sa.Engine) -> None:
    # fan0 = 1 + plain = 2; fan_i = 1 + 2 × fan_{i-1}: 5, 11, 23, 47 (the planner opens 2^4 scans of plain)
    assert _check(fanout, "SELECT id FROM fan4", 47) is None
    reason = _check(fanout, "SELECT id FROM fan4", 46)
    assert reason is not None and "47 relations" in reason, reason
    reason = _check(fanout, "SELECT a.id FROM fan4 a JOIN fan2 b USING (id)", 57)
    assert reason is not None and "58 relations" in reason, reason


def test_a_cte_counts_what_it_reads_once_per_reference(fanout: sa.Engine) -> None:
    # cte_i = c a JOIN c b with c reading cte_{i-1}: the planner inlines c twice, 2^4 scans of plain in cte4
    assert _check(fanout, "SELECT id FROM cte4", 47) is None
    reason = _check(fanout, "SELECT id FROM cte4", 46)
    assert reason is not None and "47 relations" in reason, reason


@pytest.mark.parametrize(
    ("view", "planned"),
    [("nested_cte", 5), ("sublink_cte", 4), ("inner_cte", 5), ("rec_cte", 5)],
)
def test_ctes_nested_referenced_by_ctes_sublinks_and_recursive_count_each_read(
    fanout: sa.Engine, view: str, planned: int
) -> None:
    sql = f"SELECT id FROM {view}"
    assert _check(fanout, sql, planned) is None
    reason = _check(fanout, sql, planned - 1)
    assert reason is not None and f"{planned} relations" in reason, reason
