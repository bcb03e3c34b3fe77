"""What the guard records a query reaches by name: functions, operators, casts, relations (CTE scopes)."""

from __future__ import annotations

import pytest

from dbmeta_app.preflight.guard import check_sql
from dbmeta_app.preflight.reach import Name, Reach


def _pg(sql: str) -> Reach:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok and verdict.reach is not None, verdict.reason
    return verdict.reach


def _my(sql: str) -> Reach:
    verdict = check_sql(sql, "mysql")
    assert verdict.ok and verdict.reach is not None, verdict.reason
    return verdict.reach


def test_postgres_functions_are_recorded_with_their_schema() -> None:
    reach = _pg("SELECT ops.kill_idle('x'), lower(a), count(*) FROM t")
    assert {Name("ops", "kill_idle"), Name(None, "lower"), Name(None, "count")} <= set(reach.functions)


def test_a_refused_query_records_nothing() -> None:
    assert check_sql("DELETE FROM t", "postgresql").reach is None


def test_a_cte_reference_is_not_a_relation_but_a_same_named_table_in_another_scope_is() -> None:
    reach = _pg("SELECT * FROM (WITH v AS (SELECT 1) SELECT * FROM v) a CROSS JOIN v")
    assert reach.relations == (Name(None, "v"),)
    inner_only = _pg("WITH v AS (SELECT 1) SELECT * FROM v")
    assert inner_only.relations == ()


def test_a_cte_sees_only_earlier_ctes_unless_recursive() -> None:
    # b's body names a: a table, since a is defined after b
    reach = _pg("WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM a, b")
    assert reach.relations == (Name(None, "a"),)
    recursive = _pg(
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r"
    )
    assert recursive.relations == ()


def test_schema_qualified_relations_are_never_cte_references() -> None:
    assert _pg("WITH t AS (SELECT 1) SELECT * FROM s.t").relations == (Name("s", "t"),)


def test_operators_are_recorded_by_symbol_and_between_by_its_comparisons() -> None:
    reach = _pg("SELECT 1 WHERE a OPERATOR(ops.===) b AND c @@ d AND e BETWEEN 1 AND 2 AND f IN (SELECT 1)")
    assert {Name("ops", "==="), Name(None, "@@"), Name(None, ">="), Name(None, "<=")} <= set(reach.operators)
    assert _pg("SELECT * FROM t ORDER BY a USING ~<~").operators == (Name(None, "~<~"),)


def test_cast_targets_include_typed_literals_and_function_style_casts() -> None:
    reach = _pg("SELECT 'a'::s.mood, CAST(x AS s.tag[]), mytype 'lit', s.other(y) FROM t")
    assert {Name("s", "mood"), Name("s", "tag"), Name(None, "mytype"), Name("s", "other")} <= set(reach.types)


def test_fields_after_a_dot_may_be_attribute_notation_calls() -> None:
    reach = _pg("SELECT t.kill_me, (t).other, s.t.c FROM s.t")
    assert {"kill_me", "other", "t", "c"} <= set(reach.attributes)


def test_names_the_query_defines_are_aliases() -> None:
    reach = _pg("SELECT a AS out1 FROM (SELECT 1) x (col1) , LATERAL (SELECT 2 AS out2) y")
    assert {"out1", "col1", "out2"} <= set(reach.aliases)


def test_tablesample_methods_are_functions() -> None:
    assert Name(None, "bernoulli") in _pg("SELECT * FROM t TABLESAMPLE bernoulli (5)").functions


def test_mysql_calls_come_from_the_text_sent_with_qualifier_and_quoting() -> None:
    reach = _my("SELECT `db`.`fn`(1), d.f2(x), f3(y), `f4`(z), IFNULL(a, b) FROM db.t")
    found = {(n.schema, n.name.lower(), n.quoted) for n in reach.functions}
    assert {("db", "fn", True), ("d", "f2", False), (None, "f3", False), (None, "f4", True)} <= found
    assert (None, "coalesce", False) in found  # sqlglot sends COALESCE for IFNULL: the name sent counts
    assert reach.relations == (Name("db", "t"),)


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE r (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        "WITH a (x) AS (SELECT 1), b (y) AS (SELECT 2) SELECT * FROM a, b",
        "SELECT * FROM (SELECT 1) AS d (z)",
        "SELECT CAST(x AS CHAR(10)) FROM t",
    ],
)
def test_mysql_cte_names_and_alias_column_lists_are_not_calls(sql: str) -> None:
    names = {n.name.lower() for n in _my(sql).functions}
    assert not names & {"r", "a", "b", "d", "char"}


def test_mysql_calls_inside_a_cte_body_and_after_a_cte_are_found() -> None:
    names = {
        n.name.lower() for n in _my("WITH c (k) AS (SELECT f1(2)) SELECT f2(1) AS x, f3(3) FROM c").functions
    }
    assert {"f1", "f2", "f3"} <= names
