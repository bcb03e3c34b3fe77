"""The complexity budget: plan bombs are refused with `limit` before they reach a database, real
analytical SQL stays accepted, and qualified column names are never read as calls."""

from __future__ import annotations

import time

import pglast
import pytest
import sqlglot

from dbmeta_app.preflight.budget import (
    Budget,
    Measures,
    glot_view_outputs,
    may_size_rows,
    measure_postgres,
    measure_sqlglot,
    settle_view_outputs,
)
from dbmeta_app.preflight.guard import LIMIT, SQL, UNSAFE, MySQLFamily, check_sql

DIALECTS = ("postgresql", "mysql", "sqlite")


def cte_chain(links: int, refs: int = 2, materialized: str = "NOT MATERIALIZED") -> str:
    """`links` CTEs, each reading the previous one `refs` times: 2**links copies once inlined."""
    parts = [f"c0 AS {materialized} (SELECT 1 AS x)"]
    for i in range(1, links):
        sources = ", ".join(f"c{i - 1} t{j}" for j in range(refs))
        parts.append(f"c{i} AS {materialized} (SELECT t0.x FROM {sources})")
    return "WITH " + ", ".join(parts) + f" SELECT * FROM c{links - 1}"


def union_all(branches: int) -> str:
    return " UNION ALL ".join(f"SELECT id, amount FROM orders WHERE status = 's{i}'" for i in range(branches))


def long_expression(terms: int) -> str:
    return "SELECT " + " + ".join(f"amount * {i}" for i in range(terms)) + " AS total FROM orders"


def for_dialect(sql: str, dialect: str) -> str:
    # MySQL has no [NOT] MATERIALIZED on CTEs: it is taken as inlined everywhere (the stricter reading).
    return sql.replace(" NOT MATERIALIZED", "").replace(" MATERIALIZED", "") if dialect == "mysql" else sql


# --- bombs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("links", [12, 18, 22, 30])
def test_chained_ctes_that_double_when_inlined_are_refused_with_limit(dialect: str, links: int) -> None:
    started = time.perf_counter()
    verdict = check_sql(for_dialect(cte_chain(links), dialect), dialect)
    assert time.perf_counter() - started < 1.0  # measured on the parse tree, never expanded
    assert not verdict.ok and verdict.kind == LIMIT and verdict.statement is None
    assert (
        verdict.reason is not None and "over the limit" in verdict.reason and "preflight." in verdict.reason
    )


def test_the_limit_verdict_says_which_measure_and_by_how_much() -> None:
    verdict = check_sql(cte_chain(12), "postgresql")
    assert verdict.measures is not None and verdict.measures.relations == 4095
    assert verdict.reason is not None
    assert "4,095 range-table entries" in verdict.reason and "2,000" in verdict.reason
    assert "2.0x" in verdict.reason and "preflight.max_relations" in verdict.reason


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_materialised_ctes_are_planned_once_and_stay_small(dialect: str) -> None:
    # Referenced twice without NOT MATERIALIZED: PostgreSQL materialises each CTE once. SQLite copies every
    # reference first (test_sqlite_counts_every_cte_reference).
    for sql in (cte_chain(30, materialized=""), cte_chain(30, materialized="MATERIALIZED")):
        verdict = check_sql(sql.replace(" AS  (", " AS ("), dialect)
        assert verdict.ok, verdict.reason
        assert verdict.measures is not None and verdict.measures.relations < 100


def test_mysql_counts_every_cte_reference_as_inlined() -> None:
    assert check_sql(cte_chain(8, materialized=""), "mysql").ok
    verdict = check_sql(cte_chain(12, materialized="").replace(" AS  (", " AS ("), "mysql")
    assert not verdict.ok and verdict.kind == LIMIT


def test_a_cte_referenced_once_is_counted_once_even_inside_a_copied_one() -> None:
    # b is referenced once (inlined), inside a, which is NOT MATERIALIZED and referenced 3 times.
    sql = (
        "WITH b AS (SELECT id FROM orders), a AS NOT MATERIALIZED (SELECT * FROM b) "
        "SELECT * FROM a x, a y, a z"
    )
    single = measure_postgres(
        pglast.parse_sql("SELECT * FROM (SELECT * FROM (SELECT id FROM orders) b) x")[0].stmt
    )
    measures = measure_postgres(pglast.parse_sql(sql)[0].stmt)
    assert measures.relations == 3 * single.relations


def test_a_shadowed_cte_name_resolves_to_the_cte_in_scope() -> None:
    # Inside `inner`, `bomb` is not yet the later sibling: it is the outer, doubled-up CTE.
    bomb = cte_chain(12)[len("WITH ") :].split(" SELECT * FROM c11")[0]
    sql = (
        f"WITH {bomb}, bomb AS NOT MATERIALIZED (SELECT * FROM c11) "
        "SELECT * FROM (WITH inner_q AS (SELECT * FROM bomb), bomb AS (SELECT 1 AS x) "
        "SELECT * FROM inner_q) s"
    )
    verdict = check_sql(sql, "postgresql")
    assert not verdict.ok and verdict.kind == LIMIT


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nesting_deeper_than_the_budget_is_refused_with_limit_not_a_recursion_error(dialect: str) -> None:
    nested = "SELECT * FROM " + "(SELECT * FROM " * 1000 + "orders" + ") AS s" * 1000
    expression = "SELECT " + "-".join(["(-amount)"] * 6000) + " FROM orders"
    for sql in (nested, expression):
        verdict = check_sql(sql, dialect)
        assert not verdict.ok and verdict.kind in (LIMIT, SQL), (
            verdict.reason
        )  # SQL: the server's own parser limit
        assert verdict.reason is not None and "could not be checked" not in verdict.reason


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wide_from_clauses_are_bounded(dialect: str) -> None:
    tables = ", ".join(f"t{i}" for i in range(150))
    verdict = check_sql(f"SELECT count(*) FROM {tables}", dialect)
    assert not verdict.ok and verdict.kind == LIMIT
    assert verdict.reason is not None and "entries in one FROM clause" in verdict.reason


def test_every_limit_is_configurable() -> None:
    sql = union_all(100)
    assert check_sql(sql, "postgresql").ok
    for budget, needle in (
        (Budget(max_relations=50), "range-table entries"),
        (Budget(max_nodes=300), "expression nodes"),
        (Budget(max_depth=20), "nesting depth"),
        (Budget(max_query_depth=0), "nested queries"),
    ):
        verdict = check_sql(sql, "postgresql", budget=budget)
        assert verdict.kind == LIMIT and verdict.reason is not None and needle in verdict.reason, budget
    assert check_sql("SELECT * FROM a, b, c", "mysql", budget=Budget(max_from_items=2)).kind == LIMIT


# Constants the planner folds: PostgreSQL evaluates a call of constants while planning, so EXPLAIN alone
# builds its result (repeat('x', 200000000): a 427 MB backend). (name, SQL, bytes at least)
FOLDING_BOMBS: list[tuple[str, str, int]] = [
    ("repeat", "SELECT length(repeat('x', 200000000))", 200_000_000),
    ("repeat_in_a_where", "SELECT id FROM orders WHERE status = repeat('ab', 50000000)", 100_000_000),
    ("lpad", "SELECT lpad('', 300000000, 'x')", 300_000_000),
    ("array_fill", "SELECT array_fill(1, ARRAY[10000, 10000])", 100_000_000),
    ("array_fill_literal_dims", "SELECT array_fill(7, '{100000000}')", 100_000_000),
    ("replace", "SELECT replace('" + "a" * 20_000 + "', 'a', '" + "b" * 2_000 + "')", 40_000_000),
    ("format_width", "SELECT format('%900000000s', 'x')", 900_000_000),
    ("nested_encode", "SELECT " + "encode(convert_to(" * 14 + "'abcdefgh'" + ", 'UTF8'), 'hex')" * 14, 10**9),
    ("nested_to_json", "SELECT " + "to_json(" * 12 + "'a\\b'::text" + ")::text" * 12, 10**9),
    ("count_not_a_literal", "SELECT repeat('x', 20000 * 20000)", 10**15),
    # built-ins of variable-size result with no reviewed bound: unbounded when called on constants
    (
        "jsonpath_subscript_lists",
        "SELECT jsonb_path_query_array('1', '$" + "[0,0,0,0,0,0,0,0,0,0]" * 6 + "[0,0,0,0,0]')",
        10**15,
    ),
    ("polygon_points", "SELECT polygon(100000000, circle '((0,0),1)')", 10**15),
    # a fixed-length type pads its value: 20 x 10 MB
    ("char_padding", "SELECT " + ", ".join("length('x'::char(10485760))" for _ in range(20)), 200_000_000),
    ("bit_padding_repeated", "SELECT length(repeat((B'1'::bit(83886080))::text, 10))", 300_000_000),
    (
        "concat_ws_separator",
        "SELECT concat_ws('" + "x" * 50_000 + "', " + ", ".join(["'a'"] * 2_000) + ")",
        10**8,
    ),
    (
        "inlined_cte_copies",
        "WITH c AS NOT MATERIALIZED (SELECT repeat('x', 1000000) AS v) SELECT "
        + ", ".join("(SELECT v FROM c)" for _ in range(40)),
        40_000_000,
    ),
    # a column whose value is a constant is that constant: the planner pulls the subquery up and folds
    ("derived_table_column", "SELECT length(repeat('x', x)) FROM (SELECT 150000000 AS x) AS d", 150_000_000),
    ("cte_column", "WITH c AS (SELECT 150000000 AS n) SELECT length(repeat('x', n)) FROM c", 150_000_000),
    ("values_column", "SELECT length(repeat('x', n)) FROM (VALUES (150000000)) AS v(n)", 150_000_000),
    (
        "column_of_a_column",
        "SELECT length(repeat('x', m)) FROM (SELECT n AS m FROM (SELECT 150000000 AS n) a) b",
        150_000_000,
    ),
    ("renamed_by_alias_list", "SELECT repeat('x', k) FROM (SELECT 150000000) AS d(k)", 150_000_000),
    # names the planner gives, names given twice, a star renamed, a function in FROM
    ("unnamed_output", "SELECT repeat('x', d.\"?column?\") FROM (SELECT 150000000) d", 150_000_000),
    ("named_by_its_function", "SELECT repeat('x', d.int4) FROM (SELECT int4(150000000)) d", 150_000_000),
    (
        "the_same_name_twice",
        "SELECT repeat('x', b.n) FROM (SELECT 1 AS n) a, (SELECT 150000000 AS n) b",
        150_000_000,
    ),
    (
        "star_renamed",
        "SELECT repeat('x', b.m) FROM (SELECT * FROM (SELECT 150000000 AS n) a) b(m)",
        150_000_000,
    ),
    ("function_in_from", "SELECT repeat('x', n) FROM int4(150000000) n", 150_000_000),
    # a numeric is up to ~147,500 digits whatever the few characters it is made from: repeat of its text took a
    # backend to 194 MB at 700 while the literal counted 8 bytes
    ("numeric_literal_text", "SELECT repeat('1e130000'::numeric::text, 700)", 90_000_000),
    ("numeric_constant_text", "SELECT repeat(1e130000::text, 700)", 90_000_000),
    ("numeric_power_text", "SELECT repeat((10::numeric ^ 130000)::text, 700)", 90_000_000),
    ("numeric_factorial_text", "SELECT repeat(factorial(30000)::text, 700)", 90_000_000),
    ("jsonb_number_text", "SELECT repeat('1e130000'::jsonb::text, 700)", 90_000_000),  # 194 MB seen
    ("numeric_array_text", "SELECT repeat('{1e130000}'::numeric[]::text, 700)", 90_000_000),
    # the same digits read from text by any other route (170-200 MB seen against a 16 MB bound): a range's
    # bounds, a composite's attribute, a text computed from constants, a json field, a literal the query's
    # context makes numeric (ARRAY[amount] = '{…}' reads each element as a numeric)
    ("numrange_bound_text", "SELECT repeat(upper('[1e130000,1e130001]'::numrange)::text, 700)", 90_000_000),
    (
        "composite_numeric_attribute",
        "SELECT repeat((('(1,x,1e130000)'::sales.plain).amt)::text, 700)",
        90_000_000,
    ),
    ("numeric_of_computed_text", "SELECT repeat((('1e1' || '30000')::numeric)::text, 700)", 90_000_000),
    ("jsonb_function_style", "SELECT repeat(jsonb('[1e1' || '30000]')::text, 700)", 90_000_000),
    (
        "json_field_numeric",
        "SELECT repeat(((('{\"a\": \"1e1' || '30000\"}')::json ->> 'a')::numeric)::text, 700)",
        90_000_000,
    ),
    (
        "computed_text_to_a_user_type",
        "SELECT repeat(((('(1,x,1e1' || '30000)')::sales.plain).amt)::text, 700)",
        90_000_000,
    ),
    (
        "untyped_literal_read_as_numerics",
        "SELECT id FROM orders WHERE ARRAY[amount] = '{" + ",".join(["1e130000"] * 200) + "}'",
        26_000_000,
    ),
    # format() writes an argument once per specifier, and a position may be reused: 319 MB seen
    ("format_reused_position", "SELECT format('" + "%1$s" * 1_500 + "', repeat('x', 100000))", 150_000_000),
]


@pytest.mark.parametrize(("sql", "least"), [b[1:] for b in FOLDING_BOMBS], ids=[b[0] for b in FOLDING_BOMBS])
def test_constants_the_planner_would_build_are_bounded(sql: str, least: int) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "bytes of constants the planner would build" in verdict.reason
    assert "preflight.max_constant_bytes" in verdict.reason
    assert verdict.measures is not None and verdict.measures.constant_bytes >= least


@pytest.mark.parametrize("dialect", ["duckdb", "mysql", "clickhouse", "sqlite"])
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM orders WHERE status = repeat('x', 400000000)",
        "SELECT lpad('a', 300000000, 'b')",
        "SELECT printf('%900000000d', 1)",
        "SELECT replace('" + "a" * 20_000 + "', 'a', '" + "b" * 2_000 + "')",
        "SELECT repeat('x', 1000 * 1000000)",
        "SELECT * FROM orders WHERE status = repeat('x', (SELECT 300000000))",  # a scalar subquery of a constant
        # a column of a derived table, CTE or VALUES whose value is a constant
        "SELECT length(repeat('x', x)) FROM (SELECT 300000000 AS x) AS d",
        "WITH c AS (SELECT 300000000 AS n) SELECT length(repeat('x', n)) FROM c",
        "SELECT * FROM orders, (SELECT 300000000 AS n) AS d WHERE status <> repeat('1', d.n)",
        "SELECT length(repeat('x', n)) FROM (VALUES (300000000)) AS v(n)",
        "SELECT * FROM orders, (SELECT 300000000 AS n) a, (SELECT 1 AS n) b WHERE status = repeat('x', a.n)",
        "SELECT * FROM orders, (SELECT * FROM (SELECT 300000000 AS n) a) b(m) WHERE status = repeat('x', b.m)",
    ],
)
def test_other_engines_bound_folded_constants_too(sql: str, dialect: str) -> None:
    verdict = check_sql(sql, dialect)
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "bytes of constants the planner would build" in verdict.reason
    small = check_sql("SELECT repeat('-', 80), lpad(status, 100000000, '0') FROM orders", dialect)
    assert small.ok, small.reason


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        # a red team's: 40 such terms took mariadbd's Memory_used +600 MB ("Impossible WHERE": evaluated)
        (
            "SELECT 1 FROM t WHERE "
            + " OR ".join(f"CAST('a' AS BINARY(15000000)) = 'z{i}'" for i in range(3)),
            "mysql",
        ),
        ("SELECT WEIGHT_STRING('a' AS CHAR(20000000))", "mysql"),
        ("SELECT WEIGHT_STRING('a' AS BINARY(20000000))", "mysql"),
        ("SELECT CAST('a' AS FixedString(20000000))", "clickhouse"),
    ],
)
def test_a_cast_that_pads_to_a_length_builds_that_length(sql: str, dialect: str) -> None:
    verdict = check_sql(sql, dialect)
    assert verdict.kind == LIMIT and verdict.reason is not None and "bytes of constants" in verdict.reason, (
        verdict
    )
    assert check_sql(
        "SELECT CAST(id AS BINARY(16)), CAST(name AS CHAR(10)), WEIGHT_STRING(name) FROM t", dialect
    ).ok


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        # a red team's twenty terms over a 100 KB row ran 51 s past the timeout and KILL, +270 MB
        ("SELECT id FROM big WHERE id = 1 AND REPLACE(big.b, 's', REPEAT('x', 150)) = 'k0'", True),
        ("SELECT REPLACE(b, 's', 'xxxxxxxxxx') FROM t", True),
        ("SELECT REGEXP_REPLACE(b, 'a', 'bbbbbbbbbb') FROM t", True),
        ("SELECT REPLACE(b, 's', b) FROM t", True),
        ("SELECT REPLACE(name, ' ', '_'), REPLACE(phone, '-', ''), REPLACE(n, , '') FROM t", False),
        ("SELECT REGEXP_REPLACE(b, '\\s+', ' '), REGEXP_REPLACE(b, '[^0-9]', '') FROM t", False),
    ],
)
def test_a_replacement_that_grows_a_row_many_times_counts_where_the_optimiser_reads_rows(
    sql: str, refused: bool
) -> None:
    tree = sqlglot.parse_one(sql, read=MySQLFamily)
    assert (measure_sqlglot(tree, "mysql", rows=True).constant_bytes >= 10**15) is refused
    assert may_size_rows(sql)
    assert measure_sqlglot(tree, "mysql").constant_bytes < 10**15  # the guard leaves rows to the gate


def test_a_row_padded_to_a_length_counts_where_the_optimiser_reads_rows() -> None:
    sql = "SELECT 1 FROM big WHERE id = 1 AND " + " OR ".join(
        f"CAST(big.b AS BINARY(15000000)) = 'z{i}'" for i in range(3)
    )
    tree = sqlglot.parse_one(sql, read=MySQLFamily)
    assert measure_sqlglot(tree, "mysql", rows=True).constant_bytes >= 45_000_000
    assert may_size_rows(sql)
    assert check_sql(sql, "mysql").ok  # the guard cannot tell; the routine gate measures with rows


@pytest.mark.parametrize(
    "sql",
    [
        # a red team's: +405 MB of mariadbd's Memory_used with 10 such terms (15 MB each, 16 MB max_allowed_packet)
        "SELECT 1 FROM t WHERE id = 2 AND (SELECT LENGTH(REPEAT('x1', a * 750000)) FROM t WHERE id = 1) > 0",
        "SELECT LPAD('x', (SELECT n FROM t WHERE id = 1), 'y')",
        "SELECT SPACE(t.n) FROM t WHERE t.id = 1",
    ],
)
def test_mysql_sizes_taken_from_a_row_are_any_size(sql: str) -> None:
    """MariaDB reads the row a unique key finds and evaluates some constant subqueries while planning: a count
    taken from a row is a value of the data, of any size there (the routine gate measures so, ``rows``, after
    reading the views' constant columns; PostgreSQL never folds a column)."""

    def measured(text: str, rows: bool) -> int:
        return measure_sqlglot(sqlglot.parse_one(text, read=MySQLFamily), "mysql", rows=rows).constant_bytes

    assert measured(sql, rows=True) >= 10**15
    assert may_size_rows(sql)  # the routine gate measures it again
    plain = (
        "SELECT c.name, SUM(o.amount) FROM c JOIN o ON o.c_id = c.id WHERE o.status = 'paid' GROUP BY c.name"
    )
    assert not may_size_rows(plain) and measured(plain, rows=True) == measured(plain, rows=False)
    assert measured(sql, rows=False) < 1_000  # the guard cannot tell a view's constant column from a table's
    assert check_sql(sql, "mysql").ok
    assert (
        measured("SELECT LPAD(name, 10, '0'), REPEAT('-', 3), CONCAT(name, name) FROM t", rows=True) < 1_000
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT repeat('-', 80) AS rule, lpad('7', 3, '0'), rpad('x', 20), format('%-12s|', 'name')",
        "SELECT lpad(status, 100000000, '0'), repeat(status, 1000000000), replace(status, 'a', 'bb') FROM orders",
        "SELECT to_json(o), array_fill(id, ARRAY[3]), encode(sha256('x'), 'hex') FROM orders o",
        "SELECT string_agg(status, ',') FROM orders WHERE status IN ('paid', 'sent')",
        "SELECT repeat('x', 10000000)",  # 10 MB: within the default 16 MB
        "SELECT 1.5::numeric * 3, '12.50'::numeric, 2.75e3, power(2, 10), round(2.345, 2)",  # small numerics
        "SELECT '{\"a\": 1.5e3, \"b\": [2e2]}'::jsonb, '{1e2,2.5}'::numeric[]",
        "SELECT repeat('-'::text, 500000), repeat(CAST('=' AS varchar), 500000)",  # 1 MB: a cast keeps its bytes
        "SELECT format('%s-%s: %L', 'a', 'b', 'c'), format('%1$s %1$s', 'x'), ('12' || '.5')::numeric",
        "SELECT (('{\"a\": \"1.5\"}'::json ->> 'a')::numeric), '[1.5,2.5)'::numrange, (1.5 * 3)::numeric",
        "SELECT id FROM orders WHERE ARRAY[amount] = '{1.5,2e3}' AND amount > '1e3'",
        # constants of derived tables used as constants: small
        "SELECT repeat('-', n), lpad(status, w, ' ') FROM orders, (SELECT 80 AS n, 12 AS w) AS layout",
        "SELECT g, repeat('*', g) FROM generate_series(1, 10) AS g",  # a set is not folded: a bar chart
        "WITH params AS (SELECT DATE '2024-01-01' AS since) SELECT count(*) FROM orders, params WHERE day >= since",
        # aggregates, window functions and sets are not evaluated while planning, whatever their arguments
        "SELECT count(1), sum(2), max(3) OVER (), percentile_cont(0.5) WITHIN GROUP (ORDER BY id) FROM orders",
        "SELECT g FROM generate_series(1, 1000000000) AS g",
        # what text-to-SQL writes on constants
        "SELECT date_trunc('month', now()), to_char(now(), 'YYYY-MM'), lower('A'), trim(' x '), round(1.5, 2),"
        " concat('a', 'b'), substring('abc' from 1 for 2), split_part('a,b', ',', 1), make_date(2024, 1, 1),"
        " to_date('2024-01-01', 'YYYY-MM-DD'), 'x'::varchar(255), 'ab'::char(8), md5('a'),"
        " string_to_array('a,b', ','), jsonb_build_object('a', 1), extract(year from now())",
    ],
)
def test_calls_of_columns_and_small_constants_are_accepted(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason
    assert check_sql(sql, "postgresql", budget=Budget(max_constant_bytes=1_000)).ok == (
        verdict.measures is not None and verdict.measures.constant_bytes <= 1_000
    )


def test_the_constant_bound_is_configurable() -> None:
    sql = "SELECT repeat('x', 10000000)"
    assert check_sql(sql, "postgresql").ok
    refused = check_sql(sql, "postgresql", budget=Budget(max_constant_bytes=1_000_000))
    assert refused.kind == LIMIT and refused.reason is not None and "10,000,049 bytes" in refused.reason


# --- legitimate SQL stays accepted ----------------------------------------------------------------

STAR_SCHEMA_Q41 = """
SELECT d.d_year, c.c_nation, sum(lo.lo_revenue - lo.lo_supplycost) AS profit
FROM lineorder lo
JOIN dates d ON lo.lo_orderdate = d.d_datekey
JOIN customer c ON lo.lo_custkey = c.c_custkey
JOIN supplier s ON lo.lo_suppkey = s.s_suppkey
JOIN part p ON lo.lo_partkey = p.p_partkey
WHERE c.c_region = 'AMERICA' AND s.s_region = 'AMERICA' AND (p.p_mfgr = 'MFGR#1' OR p.p_mfgr = 'MFGR#2')
GROUP BY d.d_year, c.c_nation ORDER BY d.d_year, c.c_nation
"""
TPCH_Q8 = """
SELECT o_year, sum(CASE WHEN nation = 'BRAZIL' THEN volume ELSE 0 END) / sum(volume) AS mkt_share
FROM (SELECT extract(year FROM o.o_orderdate) AS o_year, l.l_extendedprice * (1 - l.l_discount) AS volume,
             n2.n_name AS nation
      FROM part p, supplier s, lineitem l, orders o, customer c, nation n1, nation n2, region r
      WHERE p.p_partkey = l.l_partkey AND s.s_suppkey = l.l_suppkey AND l.l_orderkey = o.o_orderkey
        AND o.o_custkey = c.c_custkey AND c.c_nationkey = n1.n_nationkey AND n1.n_regionkey = r.r_regionkey
        AND r.r_name = 'AMERICA' AND s.s_nationkey = n2.n_nationkey
        AND o.o_orderdate BETWEEN DATE '1995-01-01' AND DATE '1996-12-31' AND p.p_type = 'ECONOMY ANODIZED STEEL'
     ) AS all_nations
GROUP BY o_year ORDER BY o_year
"""
TPCDS_LIKE = """
WITH customer_total_return AS (
  SELECT sr.sr_customer_sk AS ctr_customer_sk, sr.sr_store_sk AS ctr_store_sk, sum(sr.sr_return_amt) AS ctr_total_return
  FROM store_returns sr JOIN date_dim d ON sr.sr_returned_date_sk = d.d_date_sk WHERE d.d_year = 2000
  GROUP BY sr.sr_customer_sk, sr.sr_store_sk),
ranked AS (
  SELECT ctr.*, rank() OVER (PARTITION BY ctr.ctr_store_sk ORDER BY ctr.ctr_total_return DESC) AS rnk,
         avg(ctr.ctr_total_return) OVER (PARTITION BY ctr.ctr_store_sk) AS store_avg
  FROM customer_total_return ctr)
SELECT c.c_customer_id FROM ranked r1 JOIN store s ON s.s_store_sk = r1.ctr_store_sk
JOIN customer c ON r1.ctr_customer_sk = c.c_customer_sk
WHERE r1.ctr_total_return > (SELECT avg(ctr_total_return) * 1.2 FROM customer_total_return r2
                             WHERE r1.ctr_store_sk = r2.ctr_store_sk)
  AND s.s_state = 'TN' AND r1.rnk <= 10
ORDER BY c.c_customer_id LIMIT 100
"""
RECURSIVE = """
WITH RECURSIVE tree(id, parent_id, depth) AS (
  SELECT id, parent_id, 0 FROM categories WHERE parent_id IS NULL
  UNION ALL SELECT c.id, c.parent_id, t.depth + 1 FROM categories c JOIN tree t ON c.parent_id = t.id)
SELECT depth, count(*) FROM tree GROUP BY depth
"""
LATERAL = """
SELECT c.name, top.amount FROM customers c CROSS JOIN LATERAL
  (SELECT o.amount FROM orders o WHERE o.customer_id = c.id ORDER BY o.amount DESC LIMIT 3) top
"""
GROUPING_SETS = """
SELECT region, status, count(*), sum(amount) FROM orders o JOIN customers c ON c.id = o.customer_id
GROUP BY GROUPING SETS ((region, status), (region), ())
"""
DBT_CHAIN = (
    "WITH "
    + ", ".join(
        ["s0 AS (SELECT id, amount, status FROM orders)"]
        + [
            f"s{i} AS (SELECT id, amount * 1.01 AS amount, status FROM s{i - 1} WHERE amount > {i})"
            for i in range(1, 40)
        ]
    )
    + " SELECT status, sum(amount) FROM s39 GROUP BY status"
)

LEGIT: list[tuple[str, str]] = [
    ("star_schema_q41", STAR_SCHEMA_Q41),
    ("tpch_q8_eight_way_join", TPCH_Q8),
    ("tpcds_like_ctes_windows", TPCDS_LIKE),
    ("recursive_cte", RECURSIVE),
    ("lateral", LATERAL),
    ("grouping_sets", GROUPING_SETS),
    ("forty_cte_chain", DBT_CHAIN),
    ("union_all_100", union_all(100)),
    ("union_all_1000", union_all(1000)),
    ("expression_2000_terms", long_expression(2000)),
    ("in_list_5000", "SELECT * FROM orders WHERE id IN (" + ", ".join(str(i) for i in range(5000)) + ")"),
    (
        "case_200_branches",
        "SELECT CASE " + " ".join(f"WHEN id = {i} THEN 'v{i}'" for i in range(200)) + " END FROM orders",
    ),
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", [sql for _, sql in LEGIT], ids=[name for name, _ in LEGIT])
def test_realistic_analytical_sql_is_accepted(sql: str, dialect: str) -> None:
    if dialect != "postgresql" and ("GROUPING SETS" in sql or "LATERAL" in sql or "extract(year" in sql):
        pytest.skip("PostgreSQL syntax")
    verdict = check_sql(sql, dialect)
    assert verdict.ok, verdict.reason
    assert verdict.statement is not None
    assert check_sql(verdict.statement, dialect).statement == verdict.statement


def test_long_expressions_and_unions_are_rechecked_as_trees_not_by_a_bounded_recursion() -> None:
    for sql in (long_expression(2000), union_all(1000)):
        verdict = check_sql(sql, "postgresql")
        assert verdict.ok, verdict.reason
        assert (
            verdict.statement is not None
            and verdict.statement.count("+") + verdict.statement.count("UNION") >= 999
        )


# --- column references are never calls -------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT lo.lo_orderdate, sum(lo.lo_revenue) FROM lineorder lo GROUP BY lo.lo_orderdate",
        "SELECT a.txid_ref, a.pg_read_flag, a.dblink_id, a.set_config FROM audit a",
        "SELECT lineorder.lo_revenue FROM lineorder",
        "SELECT public.lineorder.lo_revenue FROM public.lineorder",
        "SELECT j.lo_tax FROM (lineorder l JOIN dates d ON l.lo_orderdate = d.d_datekey) AS j",
        "SELECT x.lo_revenue FROM (SELECT lo_revenue FROM lineorder) x",
        "SELECT g.lo_x FROM generate_series(1, 3) AS g(lo_x)",
        "SELECT (SELECT max(i.lo_qty) FROM lineitem i WHERE i.lo_key = o.lo_key) FROM lineorder o",
        "SELECT * FROM lineorder o WHERE EXISTS (SELECT 1 FROM dates d WHERE d.txid_day = o.lo_orderdate)",
    ],
)
def test_alias_qualified_columns_named_like_denied_functions_are_accepted(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT x.pg_sleep FROM t",  # x is a column: pg_sleep(x) by attribute notation
        "SELECT t.c.pg_sleep FROM t",  # after the column: a field, or a call
        "SELECT (x).pg_sleep FROM t",
        "SELECT o.pg_sleep FROM t AS a",  # o is no range-table entry here
        "SELECT orders.pg_sleep FROM orders AS o",  # an alias hides the table's own name
        "SELECT (SELECT s.pg_sleep FROM u) FROM t AS k, LATERAL (SELECT 1) AS s2",
        "WITH c AS (SELECT x.pg_sleep FROM t) SELECT * FROM c, u AS x",  # CTEs do not see the FROM below
    ],
)
def test_attribute_notation_outside_a_range_table_qualifier_is_still_refused(sql: str) -> None:
    verdict = check_sql(sql, "postgresql")
    assert not verdict.ok and verdict.kind == UNSAFE and "pg_sleep" in (verdict.reason or "")


@pytest.mark.parametrize("dialect", ["mysql", "sqlite"])
def test_sqlglot_path_reads_qualified_columns_as_columns(dialect: str) -> None:
    verdict = check_sql("SELECT lo.lo_orderdate, SUM(lo.lo_revenue), a.sleep FROM lineorder lo, t a", dialect)
    assert verdict.ok, verdict.reason
    assert not check_sql("SELECT lo.sleep(1) FROM lineorder lo", dialect).ok


# --- kinds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELEC 1", SQL),
        ("SELECT * FROM WHERE", SQL),
        ("", SQL),
        ("-- nothing", SQL),
        ("SELECT 1; DELETE FROM t", UNSAFE),
        ("DELETE FROM t", UNSAFE),
        ("SELECT 1\x00", UNSAFE),
        ("SELECT '" + "x" * 200_000 + "'", LIMIT),
    ],
)
def test_each_refusal_has_its_kind(sql: str, kind: str, dialect: str) -> None:
    verdict = check_sql(sql, dialect)
    assert not verdict.ok and verdict.kind == kind, verdict.reason


def test_bind_parameters_are_an_sql_problem_not_unsafe() -> None:
    assert check_sql("SELECT * FROM t WHERE id = $1", "postgresql").kind == SQL


def test_measures_agree_between_parsers_on_the_shape_of_a_bomb() -> None:
    sql = cte_chain(10)
    pg_measures = measure_postgres(pglast.parse_sql(sql)[0].stmt)
    glot_measures = measure_sqlglot(sqlglot.parse_one(sql, read="sqlite"), "sqlite")
    mysql_measures = measure_sqlglot(sqlglot.parse_one(for_dialect(sql, "mysql"), read=MySQLFamily), "mysql")
    assert pg_measures.relations == glot_measures.relations == mysql_measures.relations == 1023
    assert pg_measures.query_depth == glot_measures.query_depth == 11


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT list_sum(range(10000000)) FROM orders",
        "SELECT len(generate_series(1, 50000000)) FROM orders",
        "SELECT len(list_resize([1], 50000000)) FROM orders",
        # a lambda over a constant list runs once per element (1.5 GB in this process, measured)
        "SELECT list_transform(range(300), lambda x: repeat('a', 1000000)) FROM orders",
        # a function of DuckDB's whose result can be of any size, with no reviewed bound
        "SELECT bar(1, 0, 10, 100000000)",
        # a reduction carries its result from step to step: a || a doubles it (28 steps: 1.6 GB in this process)
        "SELECT length(list_reduce(list_transform(range(28), x -> 'x'), (a, b) -> a || a))",
        "SELECT length(array_reduce(['x', 'x', 'x'], (acc, v) -> concat(acc, v, acc)))",
    ],
)
def test_duckdb_list_ranges_of_constants_are_bounded_and_table_ranges_are_not_counted(sql: str) -> None:
    verdict = check_sql(sql, "duckdb")
    assert verdict.kind == LIMIT and verdict.reason is not None and "bytes of constants" in verdict.reason
    assert check_sql("SELECT * FROM range(1000000000)", "duckdb").ok  # a table function streams
    assert check_sql("SELECT range(1, 10, 2), list_resize([1], 3)", "duckdb").ok
    assert check_sql(
        "SELECT list_reduce([1, 2, 3], (a, b) -> a + b), list_reduce(['a', 'b'], (a, b) -> a || b)", "duckdb"
    ).ok
    accepted = check_sql(
        "SELECT lower('A'), upper('b'), concat('a', 'b'), strftime(DATE '2024-01-01', '%Y-%m'),"
        " date_trunc('month', current_date), substring('abc', 1, 2), trim(' x '), string_split('a,b', ','),"
        " list_value(1, 2), regexp_extract('abc', 'b'), md5('x'), round(1.234, 2), make_date(2024, 1, 1),"
        " list_transform([1, 2], lambda x: x + 1), list_transform(status, lambda c: upper(c)),"
        " current_date - INTERVAL 7 DAY FROM orders",
        "duckdb",
    )
    assert accepted.ok, accepted.reason


def test_the_constant_columns_of_views_settle_through_renames_column_lists_and_stars() -> None:
    """What a reader of each view sees (budget.settle_view_outputs over glot_view_outputs), by name."""
    definitions = {
        "params": ("SELECT 100000007 AS n, 40 AS width", []),
        "renamed": ("SELECT p.n AS k FROM params AS p", []),
        "renamed_twice": ("SELECT r.k AS j, r.k + 1 AS j1 FROM renamed AS r", []),
        "listed": ("SELECT 100000007", ["m"]),
        "unnamed": ("SELECT 100000007", []),
        "starred": ("SELECT * FROM params", ["a", "b"]),
        "table_column": ("SELECT n FROM t", []),
        "union": ("SELECT 100000007 AS u UNION ALL SELECT 1", []),
        "loop_a": ("SELECT z AS y FROM loop_b", []),
        "loop_b": ("SELECT y AS z FROM loop_a", []),
    }
    trees = {name: sqlglot.parse_one(sql, read="duckdb") for name, (sql, _) in definitions.items()}
    reads = {
        name: [t.name for t in tree.find_all(sqlglot.exp.Table) if t.name in trees]
        for name, tree in trees.items()
    }
    settled = settle_view_outputs(
        reads, lambda name, seed: glot_view_outputs(trees[name], seed, definitions[name][1])
    )

    def own(name: str) -> dict[str, int | str | None]:
        return {column: constant.value for column, constant in settled[name][1].items()}

    assert own("params") == {"n": 100000007, "width": 40}
    assert own("renamed") == {"k": 100000007}
    assert own("renamed_twice") == {"j": 100000007, "j1": None}  # 100000007 + 1: a constant of no known value
    assert set(settled["renamed_twice"][0]) == {"n", "width", "k"}  # the seed: what it reads, transitively
    assert own("listed") == {"m": 100000007} and own("unnamed") == {"100000007": 100000007}
    assert own("starred") == {"a": None, "b": None}  # either constant below: 100000007 or 40
    assert own("table_column") == {} and own("union") == {}
    assert own("loop_a") == own("loop_b") == {}  # a cycle is cut
    built = measure_sqlglot(
        sqlglot.parse_one("SELECT repeat('x', j) FROM renamed_twice", read="duckdb"),
        "duckdb",
        {**settled["renamed_twice"][0], **settled["renamed_twice"][1]},
    )
    assert built.constant_bytes > 100_000_000


# --- constant columns: output aliases the query reads back, renames of any depth ------------------------


def rename_chain(depth: int, value: int = 100_000_007) -> str:
    """`depth` derived tables around ``SELECT value AS c0``, each renaming the column of the one inside it."""
    sql = f"SELECT {value} AS c0"
    for i in range(1, depth + 1):
        sql = f"SELECT t{i}.c{i - 1} AS c{i} FROM ({sql}) t{i}"
    return f"SELECT length(repeat('x', d.c{depth})) FROM ({sql}) d"


def cte_rename_chain(depth: int, value: int = 100_000_007) -> str:
    """`depth` CTEs after ``c0 AS (SELECT value AS n0)``, each renaming the column of the one before it."""
    parts = [f"c0 AS (SELECT {value} AS n0)"] + [
        f"c{i} AS (SELECT n{i - 1} AS n{i} FROM c{i - 1})" for i in range(1, depth + 1)
    ]
    return "WITH " + ", ".join(parts) + f" SELECT length(repeat('x', n{depth})) FROM c{depth}"


SQLGLOT_DIALECTS = ("mysql", "sqlite", "duckdb", "clickhouse")


def measure(sql: str, dialect: str) -> Measures:
    if dialect == "postgresql":
        return measure_postgres(pglast.parse_sql(sql)[0].stmt)
    return measure_sqlglot(
        sqlglot.parse_one(sql, read=MySQLFamily if dialect == "mysql" else dialect), dialect
    )


@pytest.mark.parametrize("dialect", ("postgresql", *SQLGLOT_DIALECTS))
@pytest.mark.parametrize(
    "sql",
    [rename_chain(4), rename_chain(9), rename_chain(60), cte_rename_chain(4), cte_rename_chain(300)],
    ids=["derived_4", "derived_9", "derived_60", "cte_4", "cte_300"],
)
def test_a_constant_renamed_through_any_number_of_queries_is_still_that_constant(
    sql: str, dialect: str
) -> None:
    assert measure(sql, dialect).constant_bytes >= 100_000_007
    assert measure(sql.replace("100000007", "40"), dialect).constant_bytes < 1_000


@pytest.mark.parametrize("dialect", ("postgresql", *SQLGLOT_DIALECTS))
def test_a_renamed_constant_is_refused_with_limit(dialect: str) -> None:
    verdict = check_sql(rename_chain(5), dialect)
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "bytes of constants the planner would build" in verdict.reason
    small = check_sql(rename_chain(5, value=40), dialect)
    assert small.ok, small.reason


# An output's alias used as a value where the dialect lets a query read it back: DuckDB in later outputs, WHERE,
# GROUP BY, HAVING, ORDER BY and QUALIFY (and subqueries there); ClickHouse anywhere in the query, an alias given
# anywhere (later, in WHERE, by WITH <expression> AS n), subqueries in FROM included; MySQL/MariaDB in GROUP BY,
# HAVING and ORDER BY (MariaDB folds a HAVING at EXPLAIN); SQLite in WHERE and after. PostgreSQL reads an output
# name only as a bare ORDER BY/GROUP BY item, which builds nothing.
ALIASES_READ_BACK = [
    ("duckdb", "SELECT 100000007 AS n, length(repeat('x', n))"),
    ("duckdb", "SELECT 100000007 AS n, n AS m, length(repeat('x', m))"),
    ("duckdb", "SELECT 100000007 AS n FROM orders WHERE status = repeat('x', n)"),
    ("duckdb", "SELECT 100000007 AS n FROM orders GROUP BY ALL HAVING max(status) = repeat('x', n)"),
    ("duckdb", "SELECT 100000007 AS n FROM orders ORDER BY repeat('x', n)"),
    ("duckdb", "SELECT 100000007 AS n, (SELECT length(repeat('x', n)))"),
    ("duckdb", "SELECT length(repeat('x', n)) FROM (SELECT 100000007 AS k, k AS n) d"),
    ("clickhouse", "SELECT 100000007 AS n, length(repeat('x', n))"),
    ("clickhouse", "SELECT length(repeat('x', n)) AS l, 100000007 AS n"),
    ("clickhouse", "SELECT 1 WHERE length(repeat('x', n)) > 0 AND (100000007 AS n) > 0"),
    ("clickhouse", "WITH 100000007 AS n SELECT length(repeat('x', n))"),
    ("clickhouse", "SELECT 100000007 AS n, * FROM (SELECT length(repeat('x', n)) AS l)"),
    ("mysql", "SELECT 100000007 AS n FROM t HAVING length(repeat('x', n)) > 1"),
    ("mysql", "SELECT 100000007 AS n FROM t GROUP BY n, length(repeat('x', n))"),
    ("mysql", "SELECT 100000007 AS n FROM t ORDER BY length(repeat('x', n))"),
    ("sqlite", "SELECT 100000007 AS n FROM t WHERE length(zeroblob(n)) > 0"),
]


@pytest.mark.parametrize(("dialect", "sql"), ALIASES_READ_BACK)
def test_an_alias_of_a_constant_read_back_by_the_query_is_that_constant(dialect: str, sql: str) -> None:
    verdict = check_sql(sql, dialect)
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "bytes of constants the planner would build" in verdict.reason
    assert verdict.measures is not None and verdict.measures.constant_bytes >= 100_000_007
    small = check_sql(sql.replace("100000007", "40"), dialect)
    assert small.ok, small.reason


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("duckdb", "SELECT 80 AS width, repeat('-', width) AS rule, lpad(status, width, ' ') FROM orders"),
        ("duckdb", "SELECT status AS s, upper(s) AS s2, amount * 2 AS a2, a2 + 1 FROM orders WHERE a2 > 0"),
        ("mysql", "SELECT status, count(*) AS n FROM orders GROUP BY status HAVING n > 1 ORDER BY n"),
        ("clickhouse", "SELECT toStartOfMonth(now()) AS m, m + INTERVAL 1 MONTH AS m2, repeat('-', 40) AS r"),
        # a column named like the constant it is computed from, below: not the column itself
        ("postgresql", "SELECT upper(s) AS s FROM (SELECT upper(s) AS s FROM (SELECT 'a' AS s) a) b"),
        ("duckdb", "SELECT upper(s) AS s FROM (SELECT upper(s) AS s FROM (SELECT 'a' AS s) a) b"),
        ("postgresql", "SELECT x + 1 AS x FROM (SELECT x + 1 AS x FROM (SELECT 1 AS x) a) b"),
    ],
)
def test_aliases_and_renames_of_small_or_computed_values_stay_accepted(dialect: str, sql: str) -> None:
    verdict = check_sql(sql, dialect)
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize("dialect", ("postgresql", *SQLGLOT_DIALECTS))
def test_a_column_computed_from_the_constant_of_the_same_name_below_counts_what_it_computes(
    dialect: str,
) -> None:
    """The outer n is 1000 * 100000, not the 1000 below it (both are named n): 100 MB."""
    sql = "SELECT length(repeat('x', n)) FROM (SELECT n * 100000 AS n FROM (SELECT 1000 AS n) a) b"
    verdict = check_sql(sql, dialect)
    assert verdict.kind == LIMIT and verdict.measures is not None, verdict
    assert verdict.measures.constant_bytes >= 100_000_000


def test_two_constants_with_one_name_count_as_either_value() -> None:
    """DuckDB's range as a list value: with a step of 1 (not the larger 100000000), 100 million elements."""
    sql = "SELECT len(range(0, 100000000, s)) FROM (SELECT 1 AS s) a, (SELECT 100000000 AS s) b"
    verdict = check_sql(sql, "duckdb")
    assert verdict.kind == LIMIT and verdict.measures is not None, verdict
    assert verdict.measures.constant_bytes >= 800_000_000


@pytest.mark.parametrize("dialect", ("postgresql", "duckdb"))
def test_constant_columns_are_measured_without_copying_them_into_every_reference(dialect: str) -> None:
    """40 references to a, in each of 40 references to b, in each of 40 to c: 64,000 copies once inlined
    (the copies took 19 s and 370 MB here); measured on the tree, in a bounded number of passes."""
    terms = 40
    a, b, c = ("+".join([term] * terms) for term in ("1", "a", "b"))
    sql = f"SELECT length(repeat('x', c)) FROM (SELECT {c} AS c FROM (SELECT {b} AS b FROM (SELECT {a} AS a) x) y) z"
    started = time.perf_counter()
    verdict = check_sql(sql, dialect)
    assert time.perf_counter() - started < 1.0
    assert verdict.kind == LIMIT, verdict


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        # matched by name alone, each column below may be the other's output: they feed each other without end
        (
            "postgresql",
            "SELECT length(a.n) FROM (SELECT m || 'x' AS n FROM t) a, (SELECT n || 'x' AS m FROM u) b, "
            "(SELECT 'x' AS m) c",
        ),
        ("clickhouse", "SELECT 'x' AS b, concat(b, 'y') AS a, concat(a, 'z') AS b"),
    ],
)
def test_constant_columns_that_never_settle_fail_closed(dialect: str, sql: str) -> None:
    verdict = check_sql(sql, dialect)
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "could not be followed" in verdict.reason and "preflight.max_constant_bytes" in verdict.reason


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgresql", "SELECT repeat('x', column1) FROM (VALUES (100000007)) v"),
        ("duckdb", "SELECT repeat('x', col0) FROM (VALUES (100000007)) v"),
        # sqlglot reads it as SELECT * FROM (VALUES …): the * renamed
        ("duckdb", "WITH v(n) AS (VALUES (100000007)) SELECT repeat('x', n) FROM v"),
        ("sqlite", "SELECT zeroblob(column1) FROM (VALUES (100000007))"),
        ("mysql", "SELECT repeat('x', `100000007`) FROM (VALUES (100000007)) v"),  # MariaDB names it so
    ],
)
def test_an_unnamed_values_column_has_the_names_the_engines_give_it(dialect: str, sql: str) -> None:
    assert measure(sql, dialect).constant_bytes >= 100_000_007


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT printf('%*d', 100000000, 1)",
        "SELECT printf('%.*f', 100000000, 1.5)",
        "SELECT format('{:>{}}', 'x', 100000000)",
    ],
)
def test_a_width_given_by_an_argument_is_any_width(sql: str) -> None:
    """DuckDB pads to a width or precision its arguments give (length(printf('%*d', 1000, 1)) is 1000)."""
    verdict = check_sql(sql, "duckdb")
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "bytes of constants the planner would build" in verdict.reason
    accepted = check_sql("SELECT printf('%5d|%-8s|%%', 1, 'a'), format('{:>8}|{{}}', 'x')", "duckdb")
    assert accepted.ok, accepted.reason


# --- nested constants printed as text, the database's own values, SQLite's CTE copies ------------------

NESTED = "repeat([{'" + "k" * 5_000 + "': 1}], 1000)"  # 1,000 structs, each printing its 5,000-character key


def test_a_struct_key_counts_in_the_size_of_a_nested_constant() -> None:
    """DuckDB prints a struct's keys for every element: the keys are part of its size (audit B #8)."""
    measures = measure(f"SELECT length(CAST({NESTED} AS VARCHAR))", "duckdb")
    assert measures.constant_bytes >= 2 * 1000 * 5_000  # the list, then its text
    verdict = check_sql("SELECT CAST(repeat([{'" + "k" * 5_000 + "': 1}], 4000) AS VARCHAR)", "duckdb")
    assert verdict.kind == LIMIT and verdict.reason is not None
    assert "bytes of constants" in verdict.reason and "preflight.max_constant_bytes" in verdict.reason


@pytest.mark.parametrize(
    "text",
    [
        "CAST({} AS VARCHAR)",
        "CAST({} AS TEXT)",
        "{}::JSON",
        "CAST({} AS STRING)",
        "concat('', {})",
        "concat_ws(',', 'a', {})",
        "{} || ''",
        "format('{{}}', {})",
        "printf('%s', {})",
        "to_json({})",
        "array_to_string({}, ',')",
        "list_aggregate({}, 'string_agg', ',')",
    ],
)
def test_a_nested_constant_turned_into_text_builds_its_text(text: str) -> None:
    """Printing a list of structs builds at least its size again: each way of turning it into text counts."""
    alone = measure(f"SELECT {NESTED}", "duckdb").constant_bytes
    printed = measure(f"SELECT {text.format(NESTED)}", "duckdb").constant_bytes
    assert printed >= 2 * alone, (alone, printed)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT length(repeat(enum_first(NULL::e), 1000)) AS n",
        "SELECT repeat(enum_last(NULL::e), 2)",
        "SELECT repeat(CAST(enum_range(NULL::e) AS VARCHAR), 2)",
        "SELECT repeat(enum_range_boundary(NULL::e, NULL::e), 2)",
        "SELECT repeat(CAST(CAST(1 AS e) AS VARCHAR), 2)",
        "SELECT length(repeat(x, 1000)) FROM (SELECT enum_first(NULL::e) AS x) d",
        "SELECT CAST(enum_range(NULL::e) AS VARCHAR)",
    ],
)
def test_a_value_of_a_database_type_is_of_unknown_size(sql: str) -> None:
    """enum_first(NULL::e) is the database's label, of any size (audit B #2): what grows it is refused."""
    verdict = check_sql(sql, "duckdb")
    assert verdict.kind == LIMIT and verdict.reason is not None, verdict
    assert "bytes of constants" in verdict.reason


def test_values_of_database_types_that_nothing_grows_stay_accepted() -> None:
    for sql in (
        "SELECT enum_first(NULL::mood), enum_range(NULL::mood), enum_code('sad'::mood)",
        "SELECT * FROM orders WHERE status = 'paid'::order_status",
        "SELECT CAST(status AS VARCHAR), [1, 2]::VARCHAR, {'a': 1}::VARCHAR, CAST(42 AS VARCHAR) FROM orders",
        "SELECT list_value(1, 2), struct_pack(a := 1), map(['a'], [1]), to_json({'a': [1, 2]})",
        "SELECT array_to_string([1, 2, 3], ','), concat('a', [1, 2]), format('{}', [1, 2])",
    ):
        verdict = check_sql(sql, "duckdb")
        assert verdict.ok, (sql, verdict.reason)


def sqlite_chain(links: int, form: str = "sub") -> str:
    """Audit B #4: each CTE reads the previous one twice; SQLite copies it into both places before it plans."""
    parts = ["c0 AS (SELECT 1 AS x)"]
    for i in range(1, links + 1):
        read = f"(SELECT x FROM c{i - 1})" if form == "sub" else f"c{i - 1}"
        parts.append(f"c{i} AS (SELECT 1 AS x WHERE 1 IN {read} AND 1 IN {read})")
    return "WITH " + ", ".join(parts) + f" SELECT x FROM c{links}"


@pytest.mark.parametrize("links", [12, 16, 20])
@pytest.mark.parametrize("materialized", ["", "MATERIALIZED", "NOT MATERIALIZED"])
def test_sqlite_counts_every_cte_reference(links: int, materialized: str) -> None:
    chains = (sqlite_chain(links), sqlite_chain(links, "in"), cte_chain(links, materialized=materialized))
    for sql in (chain.replace(" AS  (", " AS (") for chain in chains):
        verdict = check_sql(sql, "sqlite")
        assert not verdict.ok and verdict.kind == LIMIT, (sql[:80], verdict.reason)
        assert verdict.reason is not None and "range-table entries (CTEs inlined)" in verdict.reason
        assert "preflight.max_relations" in verdict.reason
    assert check_sql(sqlite_chain(3), "sqlite").ok and check_sql(sqlite_chain(3, "in"), "sqlite").ok
    assert check_sql("WITH a AS (SELECT 1 AS x) SELECT * FROM a, a AS b, a AS c", "sqlite").ok
