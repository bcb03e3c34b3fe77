"""DuckDB preflight: file readers, replacement scans, COPY/ATTACH/INSTALL/LOAD/PRAGMA/SET refused; analytical SQL
planned with estimates."""

from __future__ import annotations

import time
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


# --- macros and views stored in the database ---------------------------------------------------------


@pytest.fixture
def hostile_engine(tmp_path: Path) -> Iterator[Engine]:
    """A database file holding macros, views that call them (directly, through
    another view, from another schema, as a table macro), a generated column that calls one, a view of a
    300 MB constant, and views over built-ins only (internal macros such as list_sum and date_add included)."""
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "hostile.duckdb"
    conn = duckdb.connect(str(path))
    for statement in (
        "CREATE TABLE t (x VARCHAR, n INTEGER)",
        "CREATE MACRO big(n) AS repeat('x', n)",
        "CREATE MACRO tm(n) AS TABLE SELECT * FROM range(n)",
        "CREATE VIEW v_big AS SELECT big(300000000) AS s",
        "CREATE VIEW v_v_big AS SELECT * FROM v_big",
        "CREATE VIEW v_tm AS SELECT * FROM tm(3)",
        "CREATE SCHEMA s",
        "CREATE VIEW s.v_big2 AS SELECT main.big(300000000) AS s",
        "CREATE TABLE g (x INTEGER, y VARCHAR AS (big(300000000)))",
        "CREATE VIEW v_const AS SELECT repeat('x', 300000000) AS s",
        "CREATE VIEW v_ok AS SELECT x, lower(x) AS l, list_sum([n, 1]) AS total, "
        "date_add(DATE '2020-01-01', INTERVAL 1 DAY) AS d FROM t",
        "CREATE VIEW v_v_ok AS SELECT * FROM v_ok",
        "CREATE TABLE g_ok (x INTEGER, y INTEGER AS (x + 1))",
    ):
        conn.execute(statement)
    conn.close()
    eng = create_profile_engine(Profile(name="hostile", database_url=SecretStr(f"duckdb:///{path}")))
    yield eng
    eng.dispose()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT * FROM t WHERE x = big(300000000)", "macro big() of the database"),
        ("SELECT * FROM t WHERE x = BIG(300000000)", "macro big() of the database"),
        ("SELECT * FROM t WHERE x = main.big(3)", "macro big() of the database"),
        ("SELECT * FROM v_big", "view main.v_big calls macro big() of the database"),
        ("SELECT * FROM v_v_big", "view main.v_big calls macro big() of the database"),
        ("SELECT * FROM s.v_big2", "view s.v_big2 calls macro big() of the database"),
        ("SELECT * FROM v_tm", "view main.v_tm calls table macro tm() of the database"),
        ("SELECT * FROM tm(3)", "table function tm() is not allowed"),  # the guard, before any catalog read
        # a non-recursive CTE's body reads the view of the same name, not itself
        ("WITH v_big AS (SELECT * FROM v_big) SELECT * FROM v_big", "view main.v_big calls macro big()"),
        ("SELECT x FROM g WHERE y = 'a'", "generated column main.g.y calls macro big() of the database"),
        ("SELECT * FROM v_const", "view main.v_const"),
    ],
)
def test_a_macro_or_a_huge_constant_stored_in_the_database_is_refused_before_duckdb_plans(
    hostile_engine: Engine, sql: str, why: str
) -> None:
    """Planning folds what a macro, view or generated column builds in this process: 300 MB each here."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_explain(hostile_engine, sql)
    assert not result.ok and result.error_kind in ("unsafe", "limit"), result
    assert why in (result.error or ""), result.error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: under 100 MB more


@pytest.fixture
def params_engine(tmp_path: Path) -> Iterator[Engine]:
    """A database file whose views hold constant columns (100 MB as a size, over the bound; 40, well under), read
    as written, through a column list, a renamed ``*``, another view and an earlier output's alias, and a
    constant generated column."""
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "params.duckdb"
    conn = duckdb.connect(str(path))
    for statement in (
        "CREATE TABLE t (x VARCHAR, n INTEGER)",
        "CREATE VIEW params AS SELECT 100000007 AS n, 40 AS width",
        "CREATE VIEW v_built AS SELECT repeat('x', p.n) AS r FROM params p",
        "CREATE VIEW v_alias AS SELECT 100000007 AS q, repeat('x', q) AS r",  # an earlier output's alias
        "CREATE VIEW listed (m) AS SELECT 100000007",
        "CREATE VIEW starred (k, w) AS SELECT * FROM params",
        "CREATE VIEW renamed AS SELECT k AS j FROM starred",
        "CREATE TABLE g (x INTEGER, c INTEGER AS (100000007))",
    ):
        conn.execute(statement)
    conn.close()
    eng = create_profile_engine(Profile(name="params", database_url=SecretStr(f"duckdb:///{path}")))
    yield eng
    eng.dispose()


def _reach(engine: Engine, sql: str) -> str | None:
    """reach_problem alone, on the engine's own session: the query is never planned."""
    from dbmeta_app.preflight.dialects.duckdb import reach_problem

    verdict = check_sql(sql, "duckdb")
    assert verdict.ok and verdict.statement is not None, verdict.reason
    statement = verdict.statement
    with engine.connect() as conn:
        return reach_problem(lambda q: list(conn.exec_driver_sql(q).fetchall()), statement)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SELECT length(repeat('x', p.n)) FROM params p", "with the constant columns of the views it reads"),
        ("SELECT lpad('x', p.n, 'y') FROM params AS p", "with the constant columns of the views it reads"),
        ("SELECT * FROM t WHERE x = (SELECT repeat('x', n) FROM params)", "constant columns of the views"),
        ("SELECT length(r) FROM v_built", "view main.v_built"),
        ("SELECT length(r) FROM v_alias", "view main.v_alias"),
        ("SELECT length(repeat('x', m)) FROM listed", "constant columns of the views"),
        ("SELECT length(repeat('x', s.k)) FROM starred s", "constant columns of the views"),
        ("SELECT length(repeat('x', j)) FROM renamed", "constant columns of the views"),
        ("SELECT length(repeat('x', c)) FROM g", "constant columns of the views"),
    ],
)
def test_a_view_s_constant_column_used_as_a_size_is_refused_before_duckdb_plans(
    params_engine: Engine, sql: str, why: str
) -> None:
    """DuckDB binds the view into the query and folds the call in this process: refused before it plans (checked
    without planning first, so that a regression never makes this process build 100 MB)."""
    import resource

    problem = _reach(params_engine, sql)
    assert problem is not None and "preflight.max_constant_bytes" in problem, problem
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_explain(params_engine, sql)
    assert not result.ok and result.error_kind == "unsafe", result
    assert why in (result.error or "") and "preflight.max_constant_bytes" in (result.error or ""), (
        result.error
    )
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: under 50 MB more


@pytest.mark.integration
def test_a_small_constant_column_of_a_view_is_still_planned(params_engine: Engine) -> None:
    for sql in (
        "SELECT repeat('-', p.width) FROM params p",
        "SELECT repeat('-', width) FROM params WHERE n > 0",
    ):
        assert _reach(params_engine, sql) is None, sql
        result = run_explain(params_engine, sql)
        assert result.ok, (sql, result.error)


@pytest.mark.integration
@pytest.mark.parametrize(("levels", "accepted"), [(8, True), (9, False)])
def test_views_are_followed_up_to_eight_levels(tmp_path: Path, levels: int, accepted: bool) -> None:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "chain.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE t (x INTEGER)")
    for level in range(levels, 0, -1):  # v1 reads v2 … reads t
        below = "t" if level == levels else f"v{level + 1}"
        conn.execute(f"CREATE VIEW v{level} AS SELECT x FROM {below}")
    conn.close()
    engine = create_profile_engine(Profile(name="chain", database_url=SecretStr(f"duckdb:///{path}")))
    try:
        result = run_explain(engine, "SELECT x FROM v1")
    finally:
        engine.dispose()
    if accepted:
        assert result.ok, result.error
    else:
        assert result.error_kind == "unsafe" and "nested more than 8 levels" in (result.error or ""), result


@pytest.mark.integration
def test_a_macro_refusal_says_the_service_cannot_vouch_for_it(hostile_engine: Engine) -> None:
    result = run_explain(hostile_engine, "SELECT * FROM t WHERE x = big(300000000)")
    assert result.error_kind == "unsafe"
    assert result.error == (
        "refused: macro big() of the database is not allowed in a preflight query: "
        "the service cannot vouch for what it runs"
    )


@pytest.mark.integration
def test_built_in_macros_and_views_over_built_ins_are_still_planned(hostile_engine: Engine) -> None:
    for sql in (
        "SELECT list_sum([1, 2, 3]), date_add(DATE '2020-01-01', INTERVAL 1 DAY)",  # built-in (internal) macros
        "SELECT x, l, total, d FROM v_v_ok",
        "SELECT y FROM g_ok WHERE x = 1",
        "SELECT lower(x) FROM t WHERE x = repeat('7', 8)",
    ):
        result = run_explain(hostile_engine, sql)
        assert result.ok, (sql, result.error)


# --- the caller's own constant columns: aliases read back, renames of any depth ---------------------------


def _renamed(depth: int, value: int) -> str:
    sql = f"SELECT {value} AS c0"
    for i in range(1, depth + 1):
        sql = f"SELECT t{i}.c{i - 1} AS c{i} FROM ({sql}) t{i}"
    return f"SELECT length(repeat('x', d.c{depth})) FROM ({sql}) d"


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 100000007 AS n, length(repeat('x', n))",
        "SELECT 100000007 AS n FROM orders WHERE CAST(id AS VARCHAR) = repeat('x', n)",
        "SELECT 100000007 AS n FROM orders ORDER BY repeat('x', n)",
        _renamed(4, 100000007),
        _renamed(12, 100000007),
    ],
)
def test_a_constant_the_query_aliases_or_renames_is_refused_before_duckdb_plans(
    engine: Engine, sql: str
) -> None:
    """DuckDB reads an output's alias back (a later output, WHERE, ORDER BY …) and pulls renames up, then folds the
    call in this process (``SELECT 50000000 AS n, length(repeat('x', n))``: peak RSS 64 → 352 MB, measured): refused
    before it plans (the guard is asked first, so that a regression never makes this process build 100 MB)."""
    import resource

    verdict = check_sql(sql, "duckdb")
    assert not verdict.ok and verdict.kind == "limit", verdict
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_explain(engine, sql)
    assert not result.ok and result.error_kind == "limit", result
    assert "preflight.max_constant_bytes" in (result.error or ""), result.error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB: under 50 MB more
    small = run_explain(engine, sql.replace("100000007", "40"))
    assert small.ok, small.error


# --- a database that shadows the service's own built-ins (audit #18, #9) ---------------------------------


def _duck(tmp_path: Path, statements: list[str], name: str = "shadow") -> Engine:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / f"{name}.duckdb"
    conn = duckdb.connect(str(path))
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()
    return create_profile_engine(Profile(name=name, database_url=SecretStr(f"duckdb:///{path}")))


@pytest.mark.integration
@pytest.mark.parametrize(
    "shadow",
    [
        # the catalog function the macro check reads: the database would answer its own safety check
        "CREATE MACRO duckdb_functions() AS TABLE "
        "SELECT 'none' AS function_name, 'macro' AS function_type, true AS internal WHERE false",
        "CREATE MACRO duckdb_views() AS TABLE SELECT 'none' AS schema_name WHERE false",
        "CREATE MACRO lower(s) AS 'nothing'",
    ],
)
def test_a_macro_shadowing_a_catalog_function_does_not_switch_the_macro_check_off(
    tmp_path: Path, shadow: str
) -> None:
    engine = _duck(
        tmp_path, ["CREATE TABLE t (x VARCHAR)", "CREATE MACRO big(x) AS length(repeat(x, 1000))", shadow]
    )
    try:
        result = run_explain(engine, "SELECT big('x')")
    finally:
        engine.dispose()
    assert not result.ok and result.error_kind == "unsafe", result
    assert "of the database" in (result.error or ""), result.error


@pytest.mark.integration
@pytest.mark.parametrize(
    ("macro", "sql"),
    [
        ('"+"(a, b)', "SELECT 1 + 1"),
        ('"-"(a, b)', "SELECT 3 - 1"),
        ('"||"(a, b)', "SELECT 'a' || 'b'"),
        ('"~~"(a, b)', "SELECT 'a' LIKE 'b'"),
        ('"left"(a, n)', "SELECT 1"),  # not called by the query: the shadowing alone refuses the database
        ("upper(s)", "SELECT x FROM t"),
    ],
)
def test_a_macro_named_like_a_built_in_or_an_operator_refuses_every_query(
    tmp_path: Path, macro: str, sql: str
) -> None:
    """DuckDB binds a macro of the database in place of the built-in or operator of that name (``SELECT 1 + 1``
    ran the database's ``"+"``): no query of such a database is planned; the refusal names the macro."""
    engine = _duck(tmp_path, ["CREATE TABLE t (x VARCHAR)", f"CREATE MACRO {macro} AS 'macro ran'"])
    try:
        result = run_explain(engine, sql)
    finally:
        engine.dispose()
    name = macro.split("(")[0].strip('"')
    assert not result.ok and result.error_kind == "unsafe", result
    assert f"{name}()" in (result.error or "") and "built-in" in (result.error or ""), result.error


# --- stored definitions: bounded parse work, no crash (audit #8, #7) ----------------------------------


@pytest.mark.integration
def test_a_view_that_takes_longer_than_the_budget_to_parse_is_still_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each preflight keeps what it started: a definition whose parse alone outlasts VIEW_WORK_SECONDS is parsed
    and measured in one go (a check between a parse and its use threw the parse away at every preflight). The
    view has its own definition: the process's memo keeps what other tests measured."""
    from dbmeta_app.preflight.dialects import duckdb as rules

    engine = _duck(tmp_path, ["CREATE TABLE t (a INTEGER)", "CREATE VIEW v1 AS SELECT a + 23 AS b FROM t"])
    real = rules.sqlglot.parse_one

    def slow(sql: str, *args: object, **kwargs: object) -> object:
        if "a + 23" in sql:
            time.sleep(0.1)  # longer than the budget on its own
        return real(sql, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rules, "VIEW_WORK_SECONDS", 0.05)
    monkeypatch.setattr(rules.sqlglot, "parse_one", slow)
    try:
        results = [run_explain(engine, "SELECT b FROM v1") for _ in range(4)]
    finally:
        engine.dispose()
    assert results[-1].ok, [r.error for r in results]


@pytest.mark.integration
def test_a_view_definition_over_the_size_cap_is_refused_without_parsing_it(tmp_path: Path) -> None:
    """A 3.9 MB view definition took 34 s and 1.6 GB to parse and measure: one over the cap is refused unread."""
    from dbmeta_app.preflight.dialects import duckdb as rules

    values = ", ".join(str(i) for i in range(rules.VIEW_DEFINITION_MAX // 6))
    engine = _duck(
        tmp_path,
        ["CREATE TABLE t (a INTEGER)", f"CREATE VIEW v_long AS SELECT a FROM t WHERE a IN ({values})"],
    )
    try:
        result = run_explain(engine, "SELECT a FROM v_long")
    finally:
        engine.dispose()
    assert not result.ok and result.error_kind == "unsafe", result
    assert "view main.v_long" in (result.error or "") and "characters" in (result.error or ""), result.error


@pytest.mark.integration
@pytest.mark.parametrize(
    ("ddl", "sql", "where"),
    [
        ("CREATE VIEW v_deep AS SELECT {deep} AS x FROM t", "SELECT x FROM v_deep", "view main.v_deep"),
        ("CREATE TABLE g (a INTEGER, y INTEGER AS ({deep}))", "SELECT a FROM g", "generated column main.g.y"),
    ],
)
def test_a_deeply_nested_stored_definition_is_refused_not_a_crash(
    tmp_path: Path, ddl: str, sql: str, where: str
) -> None:
    """A view or generated column nested 300 calls deep raised RecursionError (HTTP 500): refused instead."""
    deep = "abs(" * 300 + "a" + ")" * 300
    engine = _duck(tmp_path, ["CREATE TABLE t (a INTEGER)", ddl.format(deep=deep)])
    try:
        result = run_explain(engine, sql)
    finally:
        engine.dispose()
    assert not result.ok and result.error_kind == "unsafe", result
    assert where in (result.error or ""), result.error


@pytest.mark.integration
def test_view_work_is_memoised_and_charged_to_a_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing stored definitions is charged to VIEW_WORK_SECONDS (views left over are refused, the next preflight
    goes on) and memoised per definition: an unchanged view is not parsed again."""
    from dbmeta_app.preflight.dialects import duckdb as rules

    engine = _duck(tmp_path, ["CREATE TABLE t (a INTEGER)", "CREATE VIEW v1 AS SELECT a + 17 AS b FROM t"])
    parsed: list[str] = []
    real = rules.sqlglot.parse_one

    def counting(sql: str, *args: object, **kwargs: object) -> object:
        parsed.append(sql)
        return real(sql, *args, **kwargs)  # type: ignore[arg-type]

    try:
        monkeypatch.setattr(rules, "VIEW_WORK_SECONDS", -1.0)
        late = run_explain(engine, "SELECT b FROM v1")
        assert late.error_kind == "unsafe" and "not measured yet" in (late.error or ""), late
        monkeypatch.setattr(rules, "VIEW_WORK_SECONDS", 2.0)
        monkeypatch.setattr(rules.sqlglot, "parse_one", counting)
        assert run_explain(engine, "SELECT b FROM v1").ok
        first = [sql for sql in parsed if "a + 17" in sql]
        assert first, parsed
        parsed.clear()
        assert run_explain(engine, "SELECT b FROM v1").ok
        assert not [sql for sql in parsed if "a + 17" in sql], parsed
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT length(repeat(enum_first(NULL::e), 1000)) AS n",  # audit B #2
        "SELECT length(CAST(enum_range(NULL::e) AS VARCHAR)) AS n",
        "SELECT length(repeat(CAST(x AS VARCHAR), 1000)) FROM (SELECT enum_last(NULL::e) AS x) d",
        "SELECT length(repeat(f, 1000)) FROM v_first",  # a view's column of the database's label
        # audit B #8: a struct's key printed for every element of the list
        "SELECT length(CAST(repeat([{'" + "k" * 5000 + "': 1}], 4000) AS VARCHAR)) AS r",
    ],
)
def test_the_database_s_enum_labels_and_printed_struct_keys_are_counted(tmp_path: Path, sql: str) -> None:
    """A database ENUM label (100 kB here) is of unknown size to the budget: what grows it is refused before DuckDB
    folds it in this process; plain reads of enums are still planned."""
    engine = _duck(
        tmp_path,
        [
            "CREATE TYPE e AS ENUM ('" + "E" * 100_000 + "', 'b')",
            "CREATE TYPE mood AS ENUM ('happy', 'sad')",
            "CREATE TABLE t (id INTEGER, m mood, l mood[])",
            "CREATE VIEW v_first AS SELECT enum_first(NULL::e) AS f",
        ],
        name="enums",
    )
    try:
        result = run_explain(engine, sql)
        assert not result.ok and result.error_kind in ("limit", "unsafe"), result
        assert "preflight.max_constant_bytes" in (result.error or ""), result.error
        for ordinary in (
            "SELECT * FROM t WHERE m = 'sad'::mood",
            "SELECT enum_range(NULL::mood), enum_first(NULL::e) IS NULL, CAST(m AS VARCHAR), l::VARCHAR FROM t",
            "SELECT [1, 2]::VARCHAR, {'a': [1, 2]}::VARCHAR, concat('n=', 1), 'a' || 'b', f IS NULL FROM v_first",
        ):
            planned = run_explain(engine, ordinary)
            assert planned.ok, (ordinary, planned.error)
    finally:
        engine.dispose()
